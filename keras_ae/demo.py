"""The offline demo: every bundled model on a bundled sample of real test images, as pictures and numbers."""

from pathlib import Path

import numpy as np

from keras_ae import cards, data, evaluate, plot
from keras_ae.models import DenoisingAutoencoder, VAE


def run(out_dir="demo_output"):
    """Write PNG pictures to `out_dir` and print each model's metrics on the bundled sample; return the metrics."""
    out = Path(out_dir)
    results = {}
    print(f"{'model':<24} {'sample':>6} {'MSE':>8} {'PSNR dB':>8}  more")
    for name in cards.list_models():
        card = cards.model_card(name)
        if not card["weights"].get("sha256"):
            print(f"{name:<24} skipped: no trained weights yet")
            continue
        model = cards.load(name)
        images, labels = data.bundled_sample(card["data"]["dataset"])
        shaped = images.reshape((len(images), *model.input_shape_per_example))
        metrics = evaluate.reconstruction_metrics(model, shaped)
        plot.reconstructions(model, shaped, out / f"{name}_reconstructions.png")
        more = ""
        if isinstance(model, DenoisingAutoencoder):
            metrics.update(evaluate.denoising_metrics(model, shaped))
            plot.denoising_triplets(model, shaped, out / f"{name}_denoising.png")
            more = f"noisy {metrics['psnr_noisy_db']:.2f} dB -> denoised {metrics['psnr_denoised_db']:.2f} dB"
        if isinstance(model, VAE):
            binary = evaluate.binarized(shaped, seed=0) if card["data"].get("binarize") else shaped
            metrics["negative_elbo_nats"] = float(np.mean(model.negative_elbo(binary)))
            plot.samples(model, out / f"{name}_samples.png")
            plot.interpolation(model, shaped[:5], shaped[5:10], out / f"{name}_interpolation.png")
            more = f"negative ELBO {metrics['negative_elbo_nats']:.2f} nats"
            if model.latent_dim == 2:
                plot.latent_manifold(model, out / f"{name}_manifold.png")
                plot.latent_scatter(model, shaped, labels, out / f"{name}_latent_scatter.png")
        print(f"{name:<24} {len(shaped):>6} {metrics['reconstruction_mse']:>8.5f} {metrics['psnr_db']:>8.2f}  {more}", flush=True)
        results[name] = metrics
    print(f"pictures in {out.resolve()}")
    return results
