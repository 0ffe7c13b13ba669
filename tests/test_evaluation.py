"""Evaluation: metrics against hand-computed values, label files, the original project's files, run, calibrate."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, FIXTURES, ROOT

from classifier.classes import NONE
from classifier.labels import LabelFileError, folder_labels, match, parse_label, read_labels
from evaluation.metrics import evaluate


def row(top, p, second="butterfly", q=0.0):
    """A probability row: ``p`` on class ``top``, ``q`` on ``second``, the rest spread evenly."""
    from classifier.classes import CLASSES
    r = np.full(10, (1 - p - q) / 8)
    r[CLASSES.index(top)], r[CLASSES.index(second)] = p, q
    return r


LABELS = ["cat", "cat", "cat", "dog", "dog", NONE, "other: wolf", "sheep"]
PREDS = ["cat", "dog", "cat", "dog", "dog", "dog", "cat", None]  # the sheep photo was unreadable
PROBS = np.array([row("cat", .9), row("dog", .55, "cat", .3), row("cat", .9), row("dog", .9), row("dog", .9),
                  row("dog", .5), row("cat", .9), np.zeros(10)])


def test_metrics_by_hand():
    r = evaluate(LABELS, PREDS, PROBS, threshold=0.6)
    assert (r["n_images"], r["n_scored"]) == (8, 5)
    assert r["accuracy"] == pytest.approx(4 / 5)
    cat = dict(r["per_class"]["cat"])
    assert cat.pop("recall_ci95")[0] <= 2 / 3 and cat.pop("precision_ci95") == [1.0, 1.0]  # cat: never mispredicted
    lo, hi = r["per_class"]["dog"]["precision_ci95"]
    assert lo <= 2 / 3 <= hi < 1.01
    assert cat == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r["per_class"]["dog"]["precision"] == pytest.approx(2 / 3) and r["per_class"]["dog"]["recall"] == 1
    # balanced accuracy: the mean recall of the classes present (cat 2/3, dog 1), not the share of photos right
    assert r["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    lo, hi = r["balanced_accuracy_ci95"]
    assert lo <= (2 / 3 + 1) / 2 <= hi <= 1
    assert r["macro_precision"] == pytest.approx(5 / 6) and r["macro_recall"] == pytest.approx(5 / 6)
    assert r["macro_f1"] == pytest.approx(0.8) and r["weighted_f1"] == pytest.approx(0.8)
    assert r["excluded"] == {"null": 1, "other": 1, "unreadable": 1}
    assert r["other_labels"] == {"wolf": 1}
    m = np.array(r["confusion_matrix"]["matrix"])
    assert m[1, 1] == 2 and m[1, 4] == 1 and m[4, 4] == 2 and m.sum() == 5
    assert r["top3_accuracy"] == 1.0
    assert r["expected_calibration_error"] == pytest.approx(0.1 * 0.8 + 0.55 * 0.2)
    lo, hi = r["accuracy_ci95"]
    assert 0 <= lo <= 0.8 <= hi <= 1
    with_none = r["open_set"].pop("confusion_matrix")  # under .6: the cat called dog at .55, the none photo
    m = np.array(with_none["matrix"])
    assert with_none["labels"][-1] == NONE and m.shape == (11, 11) and m.sum() == 6
    assert (m[1, 1], m[1, 10], m[4, 4], m[10, 10]) == (2, 1, 2, 1)
    separation = r["open_set"].pop("separation")  # in-set tops .9 .55 .9 .9 .9 against the none photo's .5
    assert r["open_set"] == {"null_images": 1, "null_predicted_as": {"dog": 1}, "threshold": 0.6,
                             "coverage": 0.8, "selective_accuracy": 1.0, "null_rejected": 1,
                             "null_rejected_share": 1.0}
    assert separation == pytest.approx({"auroc": 1.0, "none_accepted": 0.0, "threshold": 0.55 + 0.2 * 0.35,
                                        "keep": 0.95, "n_in": 5, "n_none": 1})


def test_metrics_of_none_of_ten_photos_only():
    # An open-set check: every photo is "none of the 10", so nothing is scored, but the rejections are counted.
    r = evaluate([NONE, NONE, NONE], ["cat", "dog", None], np.array([row("cat", .95), row("dog", .5), np.zeros(10)]),
                 threshold=0.9)
    assert r["n_scored"] == 0 and r["accuracy"] is None and r["weighted_f1"] is None
    assert r["open_set"]["null_images"] == 2 and r["open_set"]["null_rejected"] == 1
    assert r["open_set"]["coverage"] is None and r["excluded"]["null"] == 3


def test_labels_aliases_null_and_other():
    assert parse_label("ragno") == "spider" and parse_label("spider") == "spider"
    assert parse_label("null") == NONE and parse_label(None) == NONE
    assert parse_label("猫") == "cat" and parse_label("quail") == "other: quail"
    assert parse_label("spider", aliases=False) == "other: spider"
    assert parse_label("ragno", aliases=False) == "spider"
    assert folder_labels(["cane/1", "none/car", "wolf/2", "17"]) == {"cane/1": "dog", "none/car": NONE,
                                                                      "wolf/2": "other: wolf"}
    labels, missing, unlabelled = match(["a/17", "a/18", "b/19"], {"17": "cat", "b/19": "dog", "20": "cow"})
    assert labels == {"a/17": "cat", "b/19": "dog"} and missing == ["20"] and unlabelled == ["a/18"]


@pytest.mark.parametrize("text, words", [
    ('{"1": "cat", "2": ', "not valid JSON at line 1"),
    ('["cat", "dog"]', "expected a JSON object"),
    ('{"1": "cat", "1": "dog"}', "key '1' appears 2 times"),
    ('{"1": "cat", "2": 7}', "label of '2' is int"),
])
def test_bad_label_files_name_the_place(tmp_path, text, words):
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(LabelFileError, match=words) as e:
        read_labels(path)
    assert path.name in str(e.value) and str(tmp_path) not in str(e.value)  # the file, not where it lies (i18n.public)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "evaluation", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def test_compare_on_the_original_files_excerpt(tmp_path):
    labels, preds = FIXTURES / "seed_results_excerpt.json", FIXTURES / "seed_predictions_excerpt.json"
    result = run_cli("compare", "--labels", str(labels), "--predictions", str(preds), "--out", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    # 346 entries: 220 class names, 36 "spider", 73 "null", 17 stray names. Aliases on: spider is scored.
    assert (report["n_images"], report["n_scored"]) == (346, 256)
    assert report["excluded"] == {"null": 73, "other": 17, "unreadable": 0}
    assert report["accuracy"] == pytest.approx(255 / 256)
    assert report["open_set"]["null_images"] == 73
    for name in ("classification_report.txt", "confusion_matrix.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    # As the original predict script did: "spider" is not in its class list, so it is dropped (counted).
    result = run_cli("compare", "--labels", str(labels), "--predictions", str(preds), "--out", str(tmp_path / "b"),
                     "--original-vocabulary")
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["n_scored"] == 220 and report["excluded"]["other"] == 53
    assert report["accuracy"] == pytest.approx(219 / 220)


def test_compare_two_label_sets(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"1": "cat", "2": "cat", "3": "null", "4": "ragno"}))
    (tmp_path / "b.json").write_text(json.dumps({"1": "dog", "2": "cat", "3": "sheep", "4": "spider"}))
    result = run_cli("compare", "--labels", str(tmp_path / "a.json"), "--labels2", str(tmp_path / "b.json"),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["changed"] == 2
    assert report["per_class"]["cat"] == {"a": 2, "b": 1, "kept": 1, "changed_to": {"dog": 1}}
    assert report["per_class"]["none"]["changed_to"] == {"sheep": 1}


@pytest.fixture(scope="module")
def labelled_set(tmp_path_factory):
    """Class folders with the example photos, a none/ folder of non-animals, and an unreadable file."""
    root = tmp_path_factory.mktemp("set")
    for c in ("cat", "dog", "sheep", "spider", "cow"):
        (root / c).mkdir()
        shutil.copy(EXAMPLES / f"{c}.jpg", root / c / "a.jpg")
    (root / "ragno").mkdir()
    shutil.copy(EXAMPLES / "spider.jpg", root / "ragno" / "b.jpg")
    (root / "none").mkdir()
    for name in ("coffee_cup", "rocket", "astronaut"):
        shutil.copy(FIXTURES / "reference" / f"{name}.png", root / "none" / f"{name}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return root


def test_run_writes_every_output(labelled_set, tmp_path):
    out = tmp_path / "eval"
    result = run_cli("run", "--images", str(labelled_set), "--out", str(out), "--threshold", "0.9", "--tta")
    assert result.returncode == 0, result.stderr
    assert "broken" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert (report["n_images"], report["n_scored"]) == (10, 6)
    assert report["accuracy"] == 1.0 and report["excluded"] == {"null": 3, "other": 0, "unreadable": 1}
    assert report["open_set"]["null_images"] == 3 and report["tta"] is True
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions["cat/a"] == "cat" and predictions["ragno/b"] == "spider"
    assert "dog/broken" not in predictions
    for name in ("classification_report.txt", "probabilities.csv", "per_image.csv", "confusion_matrix.png",
                 "errors.png"):
        assert (out / name).stat().st_size > 0
    # The open-set share is a measured figure, printed for the README.
    print("none-of-10 rejected at 0.9:", report["open_set"]["null_rejected"], "of 3")


def test_calibrate_writes_a_usable_file(labelled_set, tmp_path):
    out = tmp_path / "calibration.json"
    result = run_cli("calibrate", "--images", str(labelled_set), "--out", str(out))
    assert result.returncode == 0, result.stderr
    cal = json.loads(out.read_text())
    assert cal["n_images"] == 6 and 0.05 < cal["temperature"] < 20 and 0 < cal["threshold"] <= 1
    assert cal["nll_after"] <= cal["nll_before"] + 1e-9


def test_run_with_bad_label_file_is_a_clear_error(labelled_set, tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('{"a": "cat", "a": "dog"}')
    result = run_cli("run", "--images", str(labelled_set), "--labels", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "appears 2 times" in result.stderr


def test_the_source_class_layout_is_read_and_reported_per_source(tmp_path):
    """<source>/<class>/ (as shared/data/animals, as training reads it): labels from the class folder, and
    accuracy per source beside the total, in report.json and the CLI's summary."""
    from classifier.labels import source_of

    keys = ["oxford/cat/1", "oxford/dog/2", "baidu/gatto/3", "cat/4", "none/x", "zoo/wolf/5"]
    assert folder_labels(keys) == {"oxford/cat/1": "cat", "oxford/dog/2": "dog", "baidu/gatto/3": "cat",
                                   "cat/4": "cat", "none/x": NONE, "zoo/wolf/5": "other: zoo"}
    assert [source_of(k) for k in keys] == ["oxford", "oxford", "baidu", None, None, None]
    data = tmp_path / "animals"
    for source, names in (("oxford", ("cat", "dog")), ("baidu", ("sheep", "horse", "cow"))):
        for name in names:
            (data / source / name).mkdir(parents=True)
            shutil.copy(EXAMPLES / f"{name}.jpg", data / source / name / "1.jpg")
    shutil.copy(EXAMPLES / "dog.jpg", data / "baidu" / "cow" / "2.jpg")  # a dog labelled cow: one miss in baidu
    r = subprocess.run([sys.executable, "-m", "evaluation", "run", "--images", str(data), "--out",
                        str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_scored"] == 6 and report["accuracy"] == pytest.approx(5 / 6)
    per = report["per_source"]
    assert per["oxford"]["n_scored"] == 2 and per["oxford"]["accuracy"] == 1.0
    assert per["baidu"]["n_scored"] == 4 and per["baidu"]["accuracy"] == 0.75
    assert per["baidu"]["accuracy_ci95"][0] < 0.75 <= per["baidu"]["accuracy_ci95"][1]
    assert "source baidu: accuracy 0.750" in r.stdout and "on 4 images" in r.stdout


def test_photos_shipped_in_assets_are_never_trained_or_validated_on():
    import csv

    from training.data import read_keys, read_split

    split = read_split(ROOT / "assets" / "model" / "split-a10.csv")
    excluded = read_keys(ROOT / "assets" / "model" / "exclude.txt")
    shipped = {}
    for folder in ("examples", "demo"):
        rows = list(csv.DictReader((ROOT / "assets" / folder / "sources.csv").open()))
        assert {r["file"] for r in rows} == {p.name for p in (ROOT / "assets" / folder).glob("*.jpg")}
        shipped.update({r["origin"]: f"{folder}/{r['file']}" for r in rows})
    assert len(shipped) == 110  # 10 examples and 100 demo photos, no photo twice
    used = {k: f for k, f in shipped.items() if k not in excluded and split.get(k) in ("train", "val")}
    assert not used


def test_risk_coverage_follows_the_threshold_down_the_scores():
    from evaluation.metrics import at_threshold, risk_coverage

    curve = risk_coverage([0.9, 0.8, 0.7, 0.6], [True, True, False, True], none_scores=[0.65, 0.95])
    assert list(curve["threshold"]) == [0.95, 0.9, 0.8, 0.7, 0.65, 0.6]
    assert list(curve["coverage"]) == [0, 0.25, 0.5, 0.75, 0.75, 1.0]
    assert np.allclose(curve["selective_accuracy"][1:], [1, 1, 2 / 3, 2 / 3, 0.75])
    assert list(curve["none_accepted"]) == [0.5, 0.5, 0.5, 0.5, 1.0, 1.0]
    assert at_threshold(curve, 0.75) == {"threshold": 0.75, "coverage": 0.5, "selective_accuracy": 1.0,
                                         "none_accepted": 0.5}
    assert at_threshold(curve, 0.0)["coverage"] == 1.0 and at_threshold(curve, 0.99)["coverage"] == 0.0


def test_scoring_no_photo_is_an_empty_report_not_an_error():
    """After a restart, before the predictions are back, Review impact scores labels against no prediction at all:
    nothing is scored, nothing fails."""
    from evaluation.metrics import review_change

    assert evaluate([], [])["n_scored"] == 0
    change = review_change({"0": "dog", "1": NONE}, {"0": "cat", "1": NONE}, {}, n_boot=10)
    assert (change["before"]["n_scored"], change["after"]["n_scored"]) == (0, 0)
    assert change["before"]["accuracy"] is None and change["changed"] == 1


def test_the_confusion_picture_and_its_table_count_by_one_rule_and_titles_count_what_was_scored(
        tmp_path, default_classifier, monkeypatch):
    """A gray square labelled cat (its top probability about 0.26, under the default's calibrated threshold) is
    answered none: in the picture, in the table of counts beside it, in the photos its cell opens, and in the
    picture against the labels before review too. Each picture's title counts its own report's scored photos."""
    from PIL import Image

    from classifier.classes import CLASSES, display_name
    from evaluation import plots
    from evaluation.run import evaluate_folder
    from studio.evaluate import counts_table

    folder = tmp_path / "set"
    folder.mkdir()
    animals = ("cat", "dog", "elephant", "horse", "sheep")
    for c in animals:
        shutil.copy(EXAMPLES / f"{c}.jpg", folder / f"{c}.jpg")
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(folder / "gray.png")
    after = {**{c: c for c in animals}, "gray": "cat"}
    before = {**after, "cat": "dog", "horse": NONE}  # the review fixed a label and named the horse
    drawn = []
    real = plots.confusion_matrix_figure
    monkeypatch.setattr(plots, "confusion_matrix_figure",
                        lambda matrix, labels, title: drawn.append((np.asarray(matrix), labels, title))
                        or real(matrix, labels, title))
    out = tmp_path / "eval"
    report = evaluate_folder(folder, out, classifier=default_classifier, labels=after, before=before)
    assert report["open_set"]["threshold"] == pytest.approx(default_classifier.threshold)
    (picture, names, title), (old_picture, old_names, old_title) = drawn
    cat, none = CLASSES.index("cat"), len(CLASSES)
    assert names == old_names == [*CLASSES, NONE] and picture[cat, none] == 1  # the gray square: none of the 10
    table = counts_table(report)
    assert list(table.columns)[-1] == display_name(NONE)
    assert (table.iloc[:, 1:].to_numpy() == picture).all()  # the table holds what the picture draws
    assert "6 scored images" in title and picture[:none].sum() == 6 and picture[none].sum() == 0
    assert old_picture[cat, none] == 1 and old_picture[none].sum() == 1  # the same rule before review
    assert "5 scored images and 1 labelled none" in old_title and old_picture.sum() == 6
    from studio.evaluate import cell_at, cell_images

    assert cell_at(out, [cat, none + 1]) == ("cat", NONE)  # a click on the cell opens the photos it counts
    assert len(cell_images(out, "cat", NONE)) == 1 and cell_images(out, "cat", "cat")[0][1].startswith("cat ·")
