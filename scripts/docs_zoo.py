"""Write the zoo's pages of the documentation from the cards: docs/zoo.md's table and one page per entry.

    python scripts/docs_zoo.py            # rewrites docs/zoo/<name>.md and the table in docs/zoo.md
"""

import json
from pathlib import Path

from keras_ae import cards
from zoo_table import table

DOCS = Path(__file__).resolve().parents[1] / "docs"
TABLE_START, TABLE_END = "<!-- zoo table: python scripts/docs_zoo.py -->", "<!-- end of the zoo table -->"


def entry_page(name):
    """One entry's page: what it is, how to load it, its numbers with their command, its training and its terms."""
    card = cards.model_card(name)
    metrics, training = card.get("metrics", {}), card.get("training", {})
    lines = [f"# {name}", "", card.get("description", ""), "", "```python", "import keras_ae", "",
             f'model = keras_ae.load("{name}")', "```", ""]
    if metrics:
        lines += [f"**{metrics.get('headline', '')}** on {metrics.get('test_examples', '?')} test examples, measured by", "",
                  f"    {metrics.get('command', '')}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in metrics.items() if key not in ("command", "headline")]
        lines.append("")
    validation = training.get("validation_metrics")
    if validation:
        lines += ["Its validation part (the choices rest on it): "
                  + ", ".join(f"{key} {value}" for key, value in validation.items()), ""]
    if training:
        lines += ["Trained by", "", f"    {training.get('command', '')}", "",
                  f"{training.get('stopped_at_epoch', training.get('epochs'))} epochs (best {training.get('best_epoch', 'the last')}), "
                  f"{training.get('precision', '')}, {training.get('wall_time_seconds', 0) / 60:.1f} minutes on {training.get('hardware', '')}, "
                  f"{training.get('date', '')}.", ""]
    lines += ["The card, as the zoo holds it:", "", "```json", json.dumps({key: card[key] for key in ("model", "network", "data", "recipe")
                                                                             if key in card}, indent=2), "```", ""]
    if card.get("terms"):
        lines += ["Terms: " + card["terms"], ""]
    return "\n".join(lines)


def main():
    (DOCS / "zoo").mkdir(exist_ok=True)
    names = cards.list_models()
    for stale in (DOCS / "zoo").glob("*.md"):
        if stale.stem not in names:
            stale.unlink()
    for name in names:
        (DOCS / "zoo" / f"{name}.md").write_text(entry_page(name))
    page = (DOCS / "zoo.md").read_text()
    start, end = page.index(TABLE_START), page.index(TABLE_END)
    links = "Each entry's own page: " + ", ".join(f"[`{name}`](zoo/{name}.md)" for name in names) + "."
    body = "\n".join([*table(), "", links])
    (DOCS / "zoo.md").write_text(page[:start + len(TABLE_START)] + "\n" + body + "\n" + page[end:])


if __name__ == "__main__":
    main()
