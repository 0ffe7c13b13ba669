"""``python -m evaluation predict`` on a few images: original keys and format, CSV, unreadable files listed."""

import csv
import json
import shutil
import subprocess
import sys

from conftest import EXAMPLES, FIXTURES, ROOT

from classifier.classes import CLASSES


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "evaluation", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_predict_class_folders_and_flat_names(tmp_path):
    images = tmp_path / "images"
    for c in ("cat", "spider", "sheep"):
        (images / c).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{c}.jpg", images / c / "001.jpg")
    shutil.copy(EXAMPLES / "dog.jpg", images / "17.jpg")
    (images / "18.jpg").write_bytes(b"")  # unreadable: listed on stderr, in neither output
    shutil.copy(FIXTURES / "reference" / "rocket.png", images / "19.png")  # none of the ten
    out, probs = tmp_path / "predictions.json", tmp_path / "probabilities.csv"
    result = run_cli("predict", "--images", str(images), "--out", str(out), "--probs", str(probs))
    assert result.returncode == 0, result.stderr
    predictions = json.loads(out.read_text())
    assert predictions == {"17": "dog", "19": "null", "cat/001": "cat", "sheep/001": "sheep", "spider/001": "spider"}
    assert "18" in result.stderr and "empty" in result.stderr
    rows = list(csv.reader(probs.open()))
    assert rows[0] == ["key", *CLASSES]
    assert [r[0] for r in rows[1:]] == ["17", "19", "cat/001", "sheep/001", "spider/001"]
    # the ten probabilities; what they leave below 1 is the default's folded "none of the ten" (the rocket's)
    sums = {r[0]: sum(map(float, r[1:])) for r in rows[1:]}
    assert sums.pop("19") < 0.5 and all(0.9 < v <= 1 + 1e-3 for v in sums.values())


def test_missing_folder_is_a_clear_error(tmp_path):
    result = run_cli("predict", "--images", str(tmp_path / "nope"), "--out", str(tmp_path / "p.json"))
    assert result.returncode != 0 and "does not exist" in result.stderr
