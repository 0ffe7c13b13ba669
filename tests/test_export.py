"""The default model exported as float16 TFLite and as ONNX answers as the Keras model does on the committed
photos: the same top-1, raw probabilities (before the calibration temperature) within 1e-3."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

from classifier.export import bundle, export
from classifier.images import decode
from classifier.modelfile import read_calibration


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export(cache_dir=tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def reference():
    from classifier.model import load_model

    model, _ = load_model()
    pixels = np.stack([decode(p, model.input_shape[1]) for p in sorted(EXAMPLES.glob("*.jpg"))])
    return pixels, model.predict(pixels, verbose=0)


def test_float16_tflite_answers_as_keras(exported, reference):
    from ai_edge_litert.interpreter import Interpreter

    pixels, expected = reference
    interpreter = Interpreter(model_path=str(exported["tflite"]))
    image, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(image["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(image["index"], pixels)
    interpreter.invoke()
    probs = interpreter.get_tensor(out["index"])
    assert (probs.argmax(1) == expected.argmax(1)).all() and np.abs(probs - expected).max() < 1e-3
    assert exported["tflite"].stat().st_size < 0.6 * exported["onnx"].stat().st_size  # float16: about half


def test_a_tflite_with_probabilities_only_still_gives_features_through_keras(exported):
    """The download's .tflite has one output (as any made elsewhere may): served as it is, and the features the
    review's curation needs then come from Keras."""
    from classifier.modelfile import DEFAULT_MODEL
    from classifier.predictor import Classifier, LiteEngine
    from evaluation.copies import features

    served = Classifier(LiteEngine(exported["tflite"]), path=str(DEFAULT_MODEL))
    assert not served.has_features and served.predict(str(EXAMPLES / "cat.jpg")).argmax() == 1
    with pytest.raises(ValueError, match="no features"):
        served.features([EXAMPLES / "cat.jpg"])
    rows, probs, readable, errors = features([EXAMPLES / "cat.jpg"], served)
    assert rows.shape == (1, 2 * 1280) and probs.shape == (1, 20) and not errors and probs[0, :10].argmax() == 1


def test_an_earlier_conversion_is_made_again_a_models_own_is_served_as_it_is(exported, tmp_path):
    """A .tflite cached by an earlier version (probabilities only) is converted again with the features; a model's
    own .tflite beside it is never touched."""
    from classifier.modelfile import DEFAULT_MODEL, content_hash, shipped_tflite
    from classifier.predictor import Classifier, LiteEngine

    cached, brought = tmp_path / "cached" / "default.npz", tmp_path / "brought" / "default.npz"
    for model in (cached, brought):
        model.parent.mkdir()
        shutil.copy(DEFAULT_MODEL, model)
    stale = tmp_path / "cache" / f"default-{content_hash(cached)}.tflite"
    stale.parent.mkdir()
    shutil.copy(exported["tflite"], stale)
    shutil.copy(exported["tflite"], shipped_tflite(brought))
    assert Classifier.load(cached, "litert", stale.parent).has_features and "features" in LiteEngine(stale).outputs
    own = Classifier.load(brought, "litert", stale.parent)
    assert not own.has_features and shipped_tflite(brought).read_bytes() == exported["tflite"].read_bytes()


def test_onnx_answers_as_keras(exported, reference):
    from onnxruntime import InferenceSession

    pixels, expected = reference
    session = InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    probs = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    assert (probs.argmax(1) == expected.argmax(1)).all() and np.abs(probs - expected).max() < 1e-3


def test_the_download_says_what_the_files_take_and_give(exported, tmp_path):
    files = bundle(cache_dir=exported["onnx"].parent)  # converted already: copies of the cached files
    assert bundle(cache_dir=exported["onnx"].parent) == files  # a second download: the same files, none added
    assert oct(Path(files[0]).parent.parent.stat().st_mode & 0o777) == "0o700"  # this user's alone
    card = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert sorted(f.rsplit(".", 1)[-1] for f in files) == ["json", "onnx", "tflite"]
    assert card["input"]["shape"] == [None, 384, 384, 3] and card["classes"][1] == "cat"
    calibration = read_calibration(None)  # the default's: its temperature is folded into the head
    assert card["none_threshold"] == pytest.approx(calibration["threshold"]) and card["temperature"] == 1.0
    assert "folded 11th class" in card["output"]
