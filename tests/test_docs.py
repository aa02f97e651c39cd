"""The documentation site builds strictly, every internal link and image of every page resolves, the API reference lists
every public class, the zoo's, families' and command reference pages are generated from their sources, and the home page renders in headless Chromium."""

import html.parser
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from PIL import Image

import docs_cli
import docs_families
import docs_zoo
import keras_ae
from keras_ae import cards
from test_gallery import chromium, run_chromium

ROOT = Path(__file__).resolve().parents[1]


class Links(html.parser.HTMLParser):
    """Every href and src of a page."""

    def __init__(self):
        super().__init__()
        self.targets = []

    def handle_starttag(self, tag, attributes):
        self.targets += [value for name, value in attributes if name in ("href", "src") and value]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site") / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_every_internal_link_and_image_of_every_page_resolves(site):
    pages = sorted(page for page in site.rglob("*.html") if page.name != "404.html")  # the 404 page links from the site root
    assert len(pages) >= 17 + len(cards.list_models())  # the pages of the nav, and one per zoo entry
    broken = []
    for page in pages:
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            address = urlparse(target)
            if address.scheme or target.startswith(("#", "mailto:", "data:")):
                continue
            path = (page.parent / unquote(address.path)).resolve()
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{page.relative_to(site)} -> {target}")
    assert not broken, broken[:20]


def test_the_api_reference_and_family_pages_list_every_public_class(site):
    page = (site / "api" / "index.html").read_text(encoding="utf-8")
    public = [name for name in keras_ae.models.__all__ if name[:1].isupper() and name != "VariationalAutoencoder"]

    def documented(name):  # a model class on its family's page, the rest on the API page
        module = getattr(keras_ae.models, name).__module__.split(".")[-1]
        family_page = site / "families" / module / "index.html"
        text = family_page.read_text(encoding="utf-8") if family_page.exists() else page
        return f"keras_ae.models.{module}.{name}" in text

    missing = [name for name in public if not documented(name)]
    assert not missing, missing
    for function in ("keras_ae.cards.load", "keras_ae.training.train", "keras_ae.exporting.export", "keras_ae.anomaly.Detector"):
        assert function in page, function


def test_the_zoo_pages_are_the_cards_own():
    for name in cards.list_models():
        assert (ROOT / "docs" / "zoo" / f"{name}.md").read_text() == docs_zoo.entry_page(name), \
            f"docs/zoo/{name}.md is stale: run python scripts/docs_zoo.py"
    assert sorted(path.stem for path in (ROOT / "docs" / "zoo").glob("*.md")) == cards.list_models()


def test_the_family_pages_are_the_modules_own():
    found = docs_families.families()
    for module, classes in found.items():
        assert (ROOT / "docs" / "families" / f"{module}.md").read_text() == docs_families.family_page(module, classes)[1], \
            f"docs/families/{module}.md is stale: run python scripts/docs_families.py"
    navigation = (ROOT / "mkdocs.yml").read_text()
    assert all(f"families/{module}.md" in navigation for module in found), "a family page is missing from mkdocs.yml's nav"


def test_each_family_page_names_what_its_zoo_entries_logged():
    for classes in docs_families.families().values():
        for family in classes:
            for name, _ in docs_families.entries_of(family):
                logged = {key.removeprefix("val_") for key in cards.model_card(name)["training"]["final_losses"]}
                assert logged <= set(family.metric_names), (name, logged)


def test_the_command_reference_is_the_parsers_own():
    assert (ROOT / "docs" / "cli-reference.md").read_text() == docs_cli.reference(), \
        "docs/cli-reference.md is stale: run python scripts/docs_cli.py"


def test_the_home_page_renders_in_headless_chromium(site, tmp_path):
    browser = chromium()
    shot = tmp_path / "home.png"
    result = run_chromium(browser, tmp_path, "--window-size=1200,900", "--virtual-time-budget=10000", f"--screenshot={shot}",
                          (site / "index.html").as_uri())
    assert shot.exists(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype="float32")
    assert pixels.shape == (900, 1200) and pixels.std() > 10  # text and navigation, not a blank page
