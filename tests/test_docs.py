"""The README and docs/ against what they describe: every figure names the model it shows, and that is the model
the app serves; every figure is listed, every listed figure exists; the README stays short and its links lead
somewhere. Nothing is launched: ``tools/screenshots.py`` makes the figures and ``docs/figures.json``."""

import json
import re

import pytest
from conftest import ROOT

from classifier.modelfile import content_hash, model_meta
from settings import Settings

DOCS = ROOT / "docs"
INDEX = DOCS / "figures.json"
IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
REFRESH = "run `python tools/screenshots.py` (it rewrites docs/figures.json)"


def figures():
    return json.loads(INDEX.read_text())["figures"]


def served_default():
    """The model a plain start serves (``MODEL_PATH`` unset): its path, name and content hash."""
    path = Settings().model_path
    return path, model_meta(path)["name"], content_hash(path)


def links(markdown_file):
    """The relative targets of a Markdown file's links and images (``[text](target)``), anchors cut off."""
    text = markdown_file.read_text()
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    return [t.split("#")[0] for t in targets if t.split("#")[0] and not re.match(r"[a-z]+:", t)]


def test_every_figure_names_the_served_default_model():
    path, name, digest = served_default()
    stale = [f["file"] for f in figures() if f.get("model_hash") != digest]
    assert not stale, (f"the served default is {name} ({digest}, {path.name}), but these figures show another model "
                       f"(docs/figures.json): {stale}; {REFRESH}")
    assert {f.get("model") for f in figures()} == {name}


def test_every_listed_figure_exists_and_says_how_it_was_made():
    for entry in figures():
        assert (ROOT / entry["file"]).is_file(), f"{entry['file']}, listed in docs/figures.json, is missing; {REFRESH}"
        assert entry.get("command", "").startswith("python "), f"{entry['file']}: no command that made it"


def test_every_image_under_docs_is_listed():
    listed = {f["file"] for f in figures()}
    images = {str(p.relative_to(ROOT)) for p in DOCS.rglob("*") if p.suffix.lower() in IMAGES}
    assert not images - listed, (f"images under docs/ that docs/figures.json does not list (which command made them, "
                                 f"with which model?): {sorted(images - listed)}")


def test_the_readme_is_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 300, f"README.md has {lines} lines (at most 300): move the detail into docs/"


@pytest.mark.parametrize("page", ["README.md", *(str(p.relative_to(ROOT)) for p in sorted(DOCS.glob("*.md")))])
def test_links_lead_somewhere(page):
    source = ROOT / page
    missing = [t for t in links(source) if not (source.parent / t).exists()]
    assert not missing, f"{page} links to files that do not exist: {missing}"
