"""Print the zoo as a markdown table, every number read from the cards; each family says which columns it adds.

    python scripts/zoo_table.py
"""

from keras_ae import cards


def epochs_run(training):
    """The epochs that ran, against the cap where early stopping ended sooner, and the epoch whose weights were kept."""
    ran = training.get("stopped_at_epoch", training["epochs"])
    cap = f" of {training['epochs']}" if ran != training["epochs"] else ""
    best = f" (best {training['best_epoch']})" if training.get("best_epoch") not in (None, ran) else ""
    return f"{ran}{cap} ep{best}"


def table():
    """The table's lines."""
    entries = [(name, cards.model_card(name)) for name in cards.list_models()]
    columns = {}
    for _, card in entries:
        columns.update(cards.task_of(card).card_columns())
    headings = ["entry", "model", "data", *columns, "linear probe", "anomaly AUROC / accuracy", "train time"]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for name, card in entries:
        metrics, training = card.get("metrics", {}), card.get("training", {})
        own = cards.task_of(card).card_columns()
        cells = [own[heading](metrics) if heading in own else "" for heading in columns]
        probe = f"{metrics['linear_probe_accuracy']:.4f}" if "linear_probe_accuracy" in metrics else ""
        detection = f"{metrics['auroc']:.4f} / {metrics['detection_accuracy']:.3f}" if "detection_accuracy" in metrics else ""
        start = card.get("recipe", {}).get("initial_weights")
        after = f" after `{start['preset']}`" if start else ""  # a fine-tuning run's cost adds to its starting preset's
        cost = f"{epochs_run(training)}{after}, {training['wall_time_seconds'] / 60:.1f} min" if training else "not trained"
        lines.append("| " + " | ".join([f"`{name}`", card["model"]["class_name"], card["data"]["dataset"], *cells, probe, detection, cost]) + " |")
    return lines


def main():
    print("\n".join(table()))


if __name__ == "__main__":
    main()
