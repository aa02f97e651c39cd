"""Print the zoo as a markdown table, every number read from the cards (which the training and evaluation scripts wrote).

    python scripts/zoo_table.py
"""

from keras_ae import cards


def cell(metrics, key, digits):
    value = metrics.get(key)
    return "" if value is None else f"{value:.{digits}f}"


def main():
    print("| entry | model | data | MSE/pixel | PSNR dB | denoising PSNR dB (noisy -> out) | sparsity (mean / near-zero) "
          "| -ELBO nats | NLL nats (IWAE k) | linear probe | train time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in cards.list_models():
        card = cards.model_card(name)
        metrics, training = card.get("metrics", {}), card.get("training", {})
        denoise = f"{cell(metrics, 'psnr_noisy_db', 2)} -> {cell(metrics, 'psnr_denoised_db', 2)} ({metrics['noise']})" if "noise" in metrics else ""
        sparse = f"{cell(metrics, 'mean_code_activation', 3)} / {cell(metrics, 'near_zero_code_fraction', 3)}" if "mean_code_activation" in metrics else ""
        nll = f"{cell(metrics, 'iwae_nll_nats', 2)} (k={metrics['iwae_samples']})" if "iwae_nll_nats" in metrics else ""
        cost = f"{training['epochs']} ep, {training['wall_time_seconds'] / 60:.1f} min" if training else "not trained"
        print(f"| `{name}` | {card['model']['class_name']} | {card['data']['dataset']} | {cell(metrics, 'reconstruction_mse', 4)} "
              f"| {cell(metrics, 'psnr_db', 2)} | {denoise} | {sparse} | {cell(metrics, 'negative_elbo_nats', 2)} | {nll} "
              f"| {cell(metrics, 'linear_probe_accuracy', 4)} | {cost} |")


if __name__ == "__main__":
    main()
