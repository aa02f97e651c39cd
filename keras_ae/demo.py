"""The offline demo: every bundled model on a bundled sample of real test images, as pictures and numbers."""

from pathlib import Path

from keras_ae import cards, evaluate, kinds
from keras_ae.models import Task


def bundled(card):
    """The bundled sample of a card's data as its data kind reads it, or None where the package ships none."""
    return kinds.of(cards.task_of(card)).bundled(card, tuple(card.network.input_shape if card.network else ()))


def skip_reason(card):
    """Why the demo cannot show an entry offline (no weights, or no bundled sample of its data), or None."""
    if not card.weights.sha256:
        return "no trained weights yet"
    if bundled(card) is None:
        return f"no bundled sample of {card.data.dataset} (its data is not shipped); see `keras-ae info {card.name}`"
    return None


def show(name, out_dir):
    """One zoo entry on its bundled sample: (card, its family's metrics, {title: picture path}); None if `skip_reason`."""
    card = cards.find_preset(name).card
    if skip_reason(card):
        return None
    model = cards.load(name)
    arrays = bundled(card)
    metrics = {**evaluate.shared_measures(card, model, arrays, probe=False, iwae_samples=0), "test_examples": len(arrays["examples"])}
    task = cards.task_of(card)(model)
    return card, metrics, task.draw(arrays["examples"], arrays["labels"], out_dir, name)


def run(out_dir="demo_output"):
    """Write PNG pictures to `out_dir` and print each model's metrics on the bundled sample; return the metrics."""
    out = Path(out_dir)
    results = {}
    print(f"{'model':<24} {'sample':>6} {'MSE':>8} {'PSNR dB':>8}  more")
    for name in cards.list_models():
        shown = show(name, out)
        if shown is None:
            print(f"{name:<24} skipped: {skip_reason(cards.find_preset(name).card)}")
            continue
        card, metrics, _ = shown
        headline = cards.task_of(card).headline(metrics)
        more = "" if headline == Task.headline(metrics) else headline
        if "detection_accuracy" in metrics:
            more = f"anomaly AUROC {metrics['auroc']:.3f}, accuracy {metrics['detection_accuracy']:.3f} at the card's threshold"
        psnr = f"{metrics['psnr_db']:>8.2f}" if "psnr_db" in metrics else f"{'':>8}"
        print(f"{name:<24} {metrics['test_examples']:>6} {metrics['reconstruction_mse']:>8.5f} {psnr}  {more}", flush=True)
        results[name] = metrics
    print(f"pictures in {out.resolve()}")
    return results
