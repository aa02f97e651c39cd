"""Write one documentation page per family from its module: docs/families/<module>.md and the families index.

    python scripts/docs_families.py

A page shows the module's docstring (paper, objective, a short example) and each model class's constructor through
mkdocstrings, the values its training logs (the class's `metric_names`), and the zoo entries of the family with their
headline numbers, read from the cards.
"""

import inspect
from pathlib import Path

import keras_ae.models
from keras_ae import cards
from keras_ae.models import BaseAutoencoder

DOCS = Path(__file__).resolve().parents[1] / "docs"


def families():
    """{module name: [model classes defined there]} for every family module in keras_ae.models."""
    found = {}
    for value in keras_ae.models.families().values():
        if value is not BaseAutoencoder:
            found.setdefault(value.__module__.rsplit(".", 1)[1], []).append(value)
    return {module: sorted(classes, key=lambda family: inspect.getsourcelines(family)[1]) for module, classes in sorted(found.items())}


def entries_of(family):
    """The zoo entries whose card names this class, with their headlines."""
    rows = []
    for name in cards.list_models():
        card = cards.model_card(name)
        if card["model"]["class_name"] == family.__name__:
            rows.append((name, card.get("metrics", {}).get("headline", "")))
    return rows


def family_page(module, classes):
    title = (inspect.getmodule(classes[0]).__doc__ or module).strip().splitlines()[0]
    lines = [f"# {', '.join(family.__name__ for family in classes)}", "", f"::: keras_ae.models.{module}", "    options:",
             "      show_root_heading: false", "      members: [" + ", ".join(family.__name__ for family in classes) + "]", ""]
    for family in classes:
        lines += [f"## {family.__name__} in training and in the zoo", "",
                  "Logged each epoch by `fit` (and with a `val_` prefix on validation data): "
                  + ", ".join(f"`{metric}`" for metric in family.metric_names) + ".", ""]
        rows = entries_of(family)
        if rows:
            lines += ["| zoo entry | headline (test split) |", "|---|---|"]
            lines += [f"| [`{name}`](../zoo/{name}.md) | {headline} |" for name, headline in rows]
        else:
            lines.append(f"No zoo entry is a {family.__name__}; the [benchmarks](../benchmarks.md) train it.")
        lines.append("")
    return title, "\n".join(lines)


def main():
    folder = DOCS / "families"
    folder.mkdir(exist_ok=True)
    found = families()
    for stale in folder.glob("*.md"):
        if stale.stem not in found and stale.stem != "index":
            stale.unlink()
    index = ["# The families", "", "Each family is one module of `keras_ae.models`: the Keras model (its objective and train step) "
             "and, beside it, its task (what it measures, draws, exports and which commands it supports).", ""]
    for module, classes in found.items():
        title, page = family_page(module, classes)
        (folder / f"{module}.md").write_text(page)
        index.append(f"- [{', '.join(family.__name__ for family in classes)}]({module}.md): {title}")
    (folder / "index.md").write_text("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
