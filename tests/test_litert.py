"""Serving through LiteRT: the same probabilities and features as Keras, converted once, TensorFlow never imported to
serve, to compute features or to draw a linear head's heatmap."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, FIXTURES, ROOT

from classifier.images import decode
from classifier.predictor import Classifier, convert

PHOTOS = sorted(EXAMPLES.glob("*.jpg")) + sorted((FIXTURES / "reference").glob("*.png"))


def pixels(size):
    return np.stack([decode(str(p), size) for p in PHOTOS])


def engines_agree(path, cache, tolerance=1e-4, features=True):
    lite, keras_ = Classifier.load(path, "litert", cache), Classifier.load(path, "keras")
    assert (lite.engine_name, keras_.engine_name) == ("LiteRT", "Keras")
    x = pixels(lite.size)
    for tta in (False, True):
        a, b = lite.predict_pixels(x, tta), keras_.predict_pixels(x, tta)
        assert np.abs(a - b).max() <= tolerance, (tta, np.abs(a - b).max())
        assert (a.argmax(1) == b.argmax(1)).all()
    one = lite.predict_pixels(x[:1])  # alone or in a batch: the same answer
    assert np.abs(one[0] - lite.predict_pixels(x)[0]).max() <= 1e-6
    if not features:
        return lite, keras_
    # the pooled features of each photo and its mirror image, from the same pass (the review's curation reads them)
    (lf, lp, readable, _), (kf, kp, _, _) = (c.features(PHOTOS, mirror=True) for c in (lite, keras_))
    assert lf.shape == kf.shape == (len(PHOTOS), 2 * 1280) and lp.shape == (len(PHOTOS), 20)
    assert readable == [str(p) for p in PHOTOS] and np.abs(lp - kp).max() <= 3 * tolerance
    assert np.abs(lf - kf).max() <= 0.02 * np.abs(kf).max()
    return lite, keras_


def test_default_model_litert_equals_keras(tmp_path):
    """The default brings its .tflite in float16 (under 10 MB): within 5e-3 of Keras' float32, the same top-1."""
    lite, _ = engines_agree(None, tmp_path, tolerance=5e-3)
    assert lite.predict(str(EXAMPLES / "cat.jpg")).argmax() == lite.classes.index("cat")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A freshly trained tiny run: the default architecture, one epoch on the example photos, saved as .keras."""
    import keras

    from classifier.classes import CLASSES
    from classifier.model import build_classifier

    keras.utils.set_random_seed(0)
    model = build_classifier()
    x = np.stack([decode(str(EXAMPLES / f"{c}.jpg"), 224) for c in CLASSES])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, np.arange(10), epochs=1, batch_size=10, verbose=0)
    run = tmp_path_factory.mktemp("run")
    model.save(run / "model.keras")
    (run / "model.json").write_text(json.dumps({"name": "tiny", "backbone": "efficientnet_lite0"}))
    return run / "model.keras"


def test_a_fresh_run_litert_equals_keras_with_its_calibration(tiny_run, tmp_path):
    plain, _ = engines_agree(tiny_run, tmp_path)
    assert plain.name == "tiny"
    calibrated = tmp_path / "calibrated"
    calibrated.mkdir()
    shutil.copy(tiny_run, calibrated / "model.keras")
    (calibrated / "calibration.json").write_text(json.dumps({"temperature": 0.5, "threshold": 0.6}))
    lite, keras_ = engines_agree(calibrated / "model.keras", tmp_path, features=False)  # (no temperature on them)
    assert lite.temperature == keras_.temperature == 0.5 and lite.threshold == 0.6
    x = pixels(lite.size)
    assert np.abs(lite.predict_pixels(x) - plain.predict_pixels(x)).max() > 1e-3  # the temperature did apply


@pytest.fixture(scope="module")
def unshipped(tmp_path_factory):
    """The default model's file without the .tflite it brings: served through a conversion of its own."""
    from classifier.modelfile import DEFAULT_MODEL, calibration_path

    folder = tmp_path_factory.mktemp("unshipped")
    for f in (DEFAULT_MODEL, calibration_path(DEFAULT_MODEL)):
        shutil.copy(f, folder / f.name)
    return folder / DEFAULT_MODEL.name


def test_converted_once_and_served_without_tensorflow(unshipped, tmp_path):
    first = convert(unshipped, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert first.parent == tmp_path and convert(unshipped, tmp_path) == first
    assert first.stat().st_mtime_ns == stamp  # cached by content
    code = ("import sys; from classifier.predictor import Classifier; "
            f"c = Classifier.load({str(unshipped)!r}, 'litert', {str(tmp_path)!r}); "
            f"c.predict({str(EXAMPLES / 'dog.jpg')!r}); f = c.features([{str(EXAMPLES / 'dog.jpg')!r}])[0]; "
            "from classifier.heatmap import explainer; "
            f"shown = explainer(c).explain({str(EXAMPLES / 'dog.jpg')!r})[1]; "
            "print(c.engine_name, f.shape[1], shown, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["LiteRT", "1280", "dog", "False", "False"], out.stderr


def test_without_litert_keras_serves_and_says_so(tmp_path):
    code = ("import sys; sys.modules['ai_edge_litert'] = None; from classifier.predictor import Classifier; "
            f"c = Classifier.load(None, 'litert', {str(tmp_path)!r}); print(c.engine_name)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["Keras"] and "not installed here: serving through Keras" in out.stderr
    with pytest.raises(ValueError, match="unknown engine 'onnx'"):
        Classifier.load(None, "onnx")


def test_a_damaged_cached_conversion_is_made_again(unshipped, tmp_path):
    cached = convert(unshipped, tmp_path)
    cached.write_bytes(b"not a flatbuffer")
    clf = Classifier.load(unshipped, "litert", tmp_path)
    assert clf.engine_name == "LiteRT" and cached.stat().st_size > 1_000_000
    assert clf.predict(str(EXAMPLES / "cat.jpg")).argmax() == clf.classes.index("cat")
