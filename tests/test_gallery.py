"""The browsable zoo: `keras-ae gallery` writes a static page that a real headless Chromium renders whole."""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from keras_ae import cards, cli

REPORT_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const report = {
    entries: [...document.querySelectorAll("section.entry")].map(section => ({
      id: section.id,
      images: [...section.querySelectorAll("img")].map(image => ({src: image.getAttribute("src"), width: image.naturalWidth})),
      text: section.innerText,
    })),
  };
  const out = document.createElement("pre");
  out.id = "report";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>
"""


def chromium():
    """Debian's chromium; required where KERAS_AE_BROWSER names it (CI), else skipped with the way to install it."""
    required = os.environ.get("KERAS_AE_BROWSER")
    path = required or shutil.which("chromium")
    if not path or not os.path.exists(path):
        if required:
            pytest.fail(f"KERAS_AE_BROWSER={required} does not exist")
        pytest.skip("no headless browser: apt-get install chromium (or set KERAS_AE_BROWSER)")
    return path


def run_chromium(browser, tmp_path, *arguments):
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--allow-file-access-from-files", *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gallery")
    assert cli.main(["gallery", "--out", str(folder)]) == 0
    return folder


def test_every_entry_and_every_picture_renders_in_headless_chromium(gallery, tmp_path):
    browser = chromium()
    page = (gallery / "index.html").read_text()
    (gallery / "checked.html").write_text(page.replace("</body>", REPORT_SCRIPT + "</body>"))
    result = run_chromium(browser, tmp_path, "--virtual-time-budget=20000", "--dump-dom", (gallery / "checked.html").as_uri())
    match = re.search(r'<pre id="report">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stderr[-2000:]
    entries = json.loads(html.unescape(match.group(1)))["entries"]
    assert [entry["id"] for entry in entries] == cards.list_models()
    for entry in entries:
        card = cards.model_card(entry["id"])
        assert entry["images"] and all(image["width"] > 0 for image in entry["images"]), entry["images"]
        assert f'keras_ae.load("{entry["id"]}")' in entry["text"]
        assert card["description"] in entry["text"] and card["metrics"]["command"] in entry["text"]
        key = "reconstruction_mse" if "ratings" not in card["data"] else "ndcg@100" if "ndcg@100" in card["metrics"] else "rmse"
        assert f"{card['metrics'][key]}" in entry["text"], key
    by_name = {entry["id"]: {image["src"] for image in entry["images"]} for entry in entries}
    assert "pictures/vae_mnist_samples.png" in by_name["vae_mnist"]
    assert "pictures/dae_mnist_denoising.png" in by_name["dae_mnist"]
    assert "pictures/vae2d_mnist_manifold.png" in by_name["vae2d_mnist"]


def test_the_page_draws_something_in_a_screenshot(gallery, tmp_path):
    browser = chromium()
    shot = tmp_path / "gallery.png"
    result = run_chromium(browser, tmp_path, "--window-size=1400,1000", "--virtual-time-budget=20000",
                          f"--screenshot={shot}", (gallery / "index.html").as_uri())
    assert shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype="float32")
    assert pixels.shape == (1000, 1400) and pixels.std() > 10  # text, cards and digits, not a blank page
