"""``python -m evaluation curate`` (evaluation/curation.py) on a small real set with a planted copy: the copy found,
leaks checked against the default model's training index or "unavailable" for a model without one, the figures
without the leaked photos, the cache, the map and its limit; the Evaluate tab's part and the MCP tool are in
tests/test_app.py (a launched app)."""

import json
import shutil

import numpy as np
import pytest
from conftest import EXAMPLES
from PIL import Image, ImageOps

from classifier.classes import CLASSES
from classifier.modelfile import DEFAULT_MODEL
from evaluation import curation
from evaluation.__main__ import main
from settings import Layout


def planted_set(folder):
    """Six Classify examples in class folders, and a mirrored, resized copy of the cat among them."""
    for c in ("cat", "dog", "horse", "sheep", "elephant", "spider"):
        (folder / c).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{c}.jpg", folder / c / "1.jpg")
    cat = Image.open(EXAMPLES / "cat.jpg").convert("RGB")
    ImageOps.mirror(cat).resize((cat.width * 2 // 3, cat.height * 2 // 3)).save(folder / "cat" / "copy.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    planted_set(data / "datasets" / "planted")
    return data


def curate_json(capsys, monkeypatch, data, *args):
    monkeypatch.setenv("DATA_DIR", str(data))
    main(["curate", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_the_cli_finds_the_planted_copy_and_checks_leaks_against_the_models_index(data, capsys, monkeypatch):
    report = curate_json(capsys, monkeypatch, data, "planted")  # by its folder's name alone
    assert report["dataset"] == "datasets/planted" and report["counts"]["photos"] == 7
    assert report["groups"] == [["cat/1", "cat/copy"]] and report["counts"]["copy_groups"] == 1
    assert report["leaks"]["status"] == "checked" and report["counts"]["leaks"] == len(report["leaks"]["by_key"])
    assert all(hit["distance"] <= report["threshold"] for hit in report["leaks"]["by_key"].values())
    figures = report["figures"]
    assert figures["labels"] == "file" and figures["all"]["n_scored"] == 7
    assert figures["without_leaks"]["n_scored"] == 7 - figures["leaked_labelled"]
    assert str(data) not in json.dumps(report) and "/tmp" not in json.dumps(report)  # no server path
    # cached per model and set: the features with the probabilities, and the report
    files = sorted(p.name for p in (data / "features").rglob("*") if p.is_file())
    assert len(files) == 2 and all(f.startswith("planted-") for f in files)


def test_an_unreadable_photo_is_left_out_and_not_decoded_again(tmp_path):
    layout, folder = Layout(tmp_path / "data"), tmp_path / "set"
    (folder / "cat").mkdir(parents=True)
    shutil.copy(EXAMPLES / "cat.jpg", folder / "cat" / "1.jpg")
    (folder / "cat" / "broken.jpg").write_bytes(b"not a photo")
    items = [("cat/1", str(folder / "cat" / "1.jpg")), ("cat/broken", str(folder / "cat" / "broken.jpg"))]
    keys, rows, probs, unreadable = curation.photo_features(items, None, layout, folder)
    assert keys == ["cat/1"] and unreadable == ["cat/broken"]
    assert rows.shape == (1, 2 * 1280) and probs.shape == (1, 10) and CLASSES[probs[0].argmax()] == "cat"
    decoded = []
    again = curation.photo_features(items, None, layout, folder, progress=lambda i, n: decoded.append(n))
    assert again[0] == keys and again[3] == unreadable and not decoded  # both from the caches


def test_a_model_without_a_training_index_says_unavailable_never_none(data, tmp_path, capsys, monkeypatch):
    model = tmp_path / "bare.npz"
    shutil.copy(DEFAULT_MODEL, model)  # the same bytes, no index beside it: the features are read from the cache
    report = curate_json(capsys, monkeypatch, data, str(data / "datasets" / "planted"), "--model", str(model))
    assert report["leaks"]["status"] == "unavailable" and "by_key" not in report["leaks"]
    assert report["counts"]["leaks"] is None and "unavailable" in report["leaks"]["reason"]
    assert report["groups"] == [["cat/1", "cat/copy"]]
    monkeypatch.setenv("DATA_DIR", str(data))
    main(["curate", "planted", "--model", str(model)])
    text = capsys.readouterr().out
    assert "1 groups of copies within the set (2 photos)" in text and "leak check unavailable" in text


def test_across_sets_the_map_and_its_limit(data, tmp_path):
    layout = Layout(data)
    folder = data / "datasets" / "planted"
    other = tmp_path / "other"
    (other / "cat").mkdir(parents=True)
    shutil.copy(EXAMPLES / "cat.jpg", other / "cat" / "again.jpg")
    curation.photo_features([("cat/again", str(other / "cat" / "again.jpg"))], None, layout, other)
    report = curation.curate(folder, None, layout, "planted", others={"other": other, "planted": folder})
    assert {(a["key"], a["dataset"], a["other_key"]) for a in report["across"]} == \
        {("cat/1", "other", "cat/again"), ("cat/copy", "other", "cat/again")}
    assert report["figures"] is None  # no labels given
    coords = curation.map_coordinates(folder, None, layout)
    assert coords["xy"].shape == (7, 2) and coords["method"] == "pca" and not coords["sampled"]
    assert len(set(coords["keys"])) == 7 and coords["probs"].shape == (7, 10)
    again = curation.map_coordinates(folder, None, layout)
    np.testing.assert_array_equal(again["xy"], coords["xy"])  # from the cache
    with pytest.raises(curation.MapTooLarge) as too_large:
        curation.map_coordinates(folder, None, layout, limit=5)
    assert "at most 5" in str(too_large.value.said("en")) and "随机抽样" in too_large.value.said("zh")
    sample = curation.map_coordinates(folder, None, layout, sample=True, limit=5)
    assert len(sample["keys"]) == 5 and sample["sampled"] and sample["photos"] == 7
    assert curation.read_report(layout, folder)["groups"] == report["groups"]
    with pytest.raises(curation.NotComputed):
        curation.read_report(layout, other)
