"""A browsable static page of the zoo: one card per entry with its numbers, the commands behind them, and its pictures."""

import html
import os
import shutil
from pathlib import Path

from keras_ae import cards, demo, weights

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; background: #f6f7f9; color: #1d2330; }
h1 { margin-bottom: 0.2rem; } .lead { color: #555; margin-top: 0; }
.entries { display: grid; grid-template-columns: repeat(auto-fill, minmax(34rem, 1fr)); gap: 1.2rem; }
.entry { background: white; border-radius: 10px; padding: 1rem 1.2rem; box-shadow: 0 1px 3px #0002; }
.entry h2 { margin: 0 0 0.3rem; font-size: 1.2rem; } .tags span { background: #e8edf7; border-radius: 4px; padding: 0 6px; margin-right: 4px; font-size: 0.85rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; } td { padding: 2px 10px 2px 0; } td.value { font-variant-numeric: tabular-nums; }
code, pre { background: #f0f2f5; border-radius: 4px; padding: 2px 5px; font-size: 0.85rem; } pre { padding: 6px; overflow-x: auto; }
figure { margin: 0.5rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; } figcaption { font-size: 0.85rem; color: #555; }
button { font-size: 0.8rem; margin-left: 6px; }
"""
TRAINING_CURVES = "Training curves"  # the card's own training run, not the bundled test examples
COPY_SCRIPT = "function copyText(id){navigator.clipboard.writeText(document.getElementById(id).textContent);}"


def _metrics_table(metrics):
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td class='value'>{html.escape(str(value))}</td></tr>"
        for key, value in metrics.items() if key not in ("command", "headline")
    )
    return f"<table>{rows}</table>"


def _entry(card, pictures, folder):
    name = card.name
    dataset, binarize = (card.data.dataset, card.data.binarize) if card.data else ("", None)
    load_line = f'keras_ae.load("{name}")'
    metrics = card.metrics
    commands = [("measured by", metrics.get("command")), ("trained by", card.training.get("command"))]
    command_lines = "".join(f"<div>{label}: <code>{html.escape(command)}</code></div>" for label, command in commands if command)
    figures = "".join(
        f"<figure><img src='{html.escape(Path(os.path.relpath(path, folder)).as_posix())}' alt='{html.escape(title)} of {name}'>"
        f"<figcaption>{html.escape(title)} ({'its training run' if title == TRAINING_CURVES else 'bundled test examples'})"
        "</figcaption></figure>"
        for title, path in pictures.items()
    )
    return (
        f"<section class='entry' id='{name}'><h2>{name}</h2>"
        f"<div class='tags'><span>{html.escape(card.model.class_name)}</span><span>{html.escape(str(dataset))}</span>"
        f"{'<span>binarized: ' + html.escape(str(binarize)) + '</span>' if binarize else ''}</div>"
        f"<p>{html.escape(card.description or '')}</p>"
        f"<div>Load: <code id='load-{name}'>{html.escape(load_line)}</code><button onclick=\"copyText('load-{name}')\">copy</button></div>"
        f"<h3>Measured on the full test split</h3>{_metrics_table(metrics) if metrics else '<p>not measured yet</p>'}{command_lines}"
        f"{figures}</section>"
    )


def write(out_dir="gallery"):
    """Write `out_dir/index.html` and its pictures (drawn from the bundled weights and test images); return its path."""
    folder = Path(out_dir)
    sections = []
    for name in cards.list_models():
        shown = demo.show(name, folder / "pictures")
        card, pictures = (shown[0], shown[2]) if shown else (cards.find_preset(name).card, {})
        curves = weights.ZOO_DIR / name / "training_curves.png"  # in a checkout; the wheel ships no curves
        if curves.exists():
            (folder / "pictures").mkdir(parents=True, exist_ok=True)
            pictures = {**pictures, TRAINING_CURVES: Path(shutil.copyfile(curves, folder / "pictures" / f"{name}_training_curves.png"))}
        sections.append(_entry(card, pictures, folder))
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>keras-ae zoo</title>"
        f"<style>{STYLE}</style><script>{COPY_SCRIPT}</script></head><body>"
        "<h1>keras-ae zoo</h1><p class='lead'>Every entry loads offline with <code>import keras_ae</code> and the line on its card. "
        "Numbers are from the card (full test split, with the command that measured them); pictures are drawn "
        "from the bundled weights on the 500 bundled test examples of each dataset.</p>"
        f"<main class='entries'>{''.join(sections)}</main></body></html>\n"
    )
    path = folder / "index.html"
    weights.atomic_copy(lambda temporary: Path(temporary).write_text(page), path)
    return path

