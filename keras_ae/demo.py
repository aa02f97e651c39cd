"""The offline demo: every bundled model on a bundled sample of real test images, as pictures and numbers."""

from pathlib import Path

import numpy as np

from keras_ae import cards, data, evaluate
from keras_ae.models import BaseAutoencoder


def skip_reason(card):
    """Why the demo cannot show an entry offline (no weights, or no bundled sample of its data), or None."""
    if not card["weights"].get("sha256"):
        return "no trained weights yet"
    if not data.has_bundled_sample(card["data"]["dataset"]):
        return f"no bundled sample of {card['data']['dataset']} (its data is not shipped); see `keras-ae info {card['name']}`"
    return None


def show(name, out_dir):
    """One zoo entry on its bundled sample: (card, its family's metrics, {title: picture path}); None if `skip_reason`."""
    card = cards.model_card(name)
    if skip_reason(card):
        return None
    model = cards.load(name)
    images, labels = data.bundled_sample(card["data"]["dataset"])
    images = images.reshape((len(images), *model.input_shape_per_example))
    inputs = np.asarray(data.binarize_images(images, evaluate.EVALUATION_BINARIZATION[card["data"].get("binarize")]))
    conditioned = {"labels": labels} if card["data"].get("with_labels") else {}
    metrics = model.measure(images, inputs, **conditioned, **evaluate.evaluation_settings(card, model, {"iwae_samples": 0}))
    if card.get("anomaly"):
        metrics.update(evaluate.detection_metrics(card["anomaly"], evaluate.per_example(model.anomaly_score, inputs), labels))
    metrics["test_examples"] = len(images)
    return card, metrics, model.draw(images, labels, out_dir, name)


def run(out_dir="demo_output"):
    """Write PNG pictures to `out_dir` and print each model's metrics on the bundled sample; return the metrics."""
    out = Path(out_dir)
    results = {}
    print(f"{'model':<24} {'sample':>6} {'MSE':>8} {'PSNR dB':>8}  more")
    for name in cards.list_models():
        shown = show(name, out)
        if shown is None:
            print(f"{name:<24} skipped: {skip_reason(cards.model_card(name))}")
            continue
        card, metrics, _ = shown
        headline = cards.model_class(card).headline(metrics)
        more = "" if headline == BaseAutoencoder.headline(metrics) else headline
        if "detection_accuracy" in metrics:
            more = f"anomaly AUROC {metrics['auroc']:.3f}, accuracy {metrics['detection_accuracy']:.3f} at the card's threshold"
        psnr = f"{metrics['psnr_db']:>8.2f}" if "psnr_db" in metrics else f"{'':>8}"
        print(f"{name:<24} {metrics['test_examples']:>6} {metrics['reconstruction_mse']:>8.5f} {psnr}  {more}", flush=True)
        results[name] = metrics
    print(f"pictures in {out.resolve()}")
    return results
