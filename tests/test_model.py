"""The classifier: head layout, save/load in both forms, one prediction path, the shipped default model."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES
from PIL import Image

from classifier.backbones import BACKBONES
from classifier.classes import CLASSES
from classifier.images import ImageError
from classifier.model import build_classifier, load_model, save_compact
from classifier.modelfile import DEFAULT_MODEL, model_meta, read_calibration


@pytest.fixture(scope="module")
def trained_like():
    """A classifier whose head weights are not the initial ones (as after training)."""
    model = build_classifier()
    rng = np.random.default_rng(1)
    for var in model.get_layer("head").weights:
        var.assign(rng.normal(0, 0.05, var.shape).astype("float32") + np.asarray(var))
    return model


def test_head_is_the_original_design():
    head = build_classifier().get_layer("head")
    kinds = [(type(layer).__name__, getattr(layer, "units", None) or getattr(layer, "rate", None))
             for layer in head.layers]
    assert kinds == [("Dropout", 0.5), ("Dense", 512), ("BatchNormalization", None), ("Dropout", 0.3),
                     ("Dense", 256), ("Dense", 10)]
    assert head.layers[1].activation.__name__ in ("swish", "silu")  # keras names swish silu
    assert head.layers[-1].activation.__name__ == "softmax"


def test_keras_file_round_trip_in_safe_mode(tmp_path, trained_like):
    trained_like.save(tmp_path / "m.keras")
    model, meta = load_model(tmp_path / "m.keras")
    assert meta["name"] == "m"
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(model(x), trained_like(x), atol=1e-6)


def test_compact_file_stores_only_the_head_and_predicts_the_same(tmp_path, trained_like):
    stored = save_compact(trained_like, tmp_path / "m.npz", {"backbone": "efficientnet_lite0", "name": "t"})
    assert stored and all(path.startswith("head/") for path in stored)
    assert (tmp_path / "m.npz").stat().st_size < 10e6
    model, meta = load_model(tmp_path / "m.npz")
    assert meta["name"] == "t"
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(trained_like(x)))


def test_compact_float16_and_a_reloaded_keras_model(tmp_path, trained_like):
    trained_like.save(tmp_path / "m.keras")
    reloaded, _ = load_model(tmp_path / "m.keras")  # its variables are named differently from a fresh build
    save_compact(reloaded, tmp_path / "h.npz", {"backbone": "efficientnet_lite0"}, dtype="float16")
    model, _ = load_model(tmp_path / "h.npz")
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(trained_like(x)), atol=2e-3)


def test_default_model_is_small_and_described():
    assert DEFAULT_MODEL.stat().st_size < 10e6
    for f in Path(DEFAULT_MODEL).parents[1].rglob("*"):
        assert f.stat().st_size < 10e6, f
    # described: what it is, what it knows, and how it measured, on its card (the app's model line reads it)
    meta = model_meta(DEFAULT_MODEL)
    assert meta["name"] and meta["backbone"] in BACKBONES and meta["classes"] == list(CLASSES) and meta["recipe"]
    assert set(meta["per_class_recall"]) == set(CLASSES)
    # its figures are its run's report, shipped beside it: balanced accuracy first, out of fold
    report = json.loads((DEFAULT_MODEL.parent / meta["report"]).read_text())
    assert meta["measured_on"] == "out-of-fold" and meta["test_images"] == report["n_scored"] > 3000
    assert meta["balanced_accuracy"] == report["balanced_accuracy"] > 0.97
    assert meta["per_class_recall"] == {c: m["recall"] for c, m in report["per_class"].items()}
    calibration = read_calibration(DEFAULT_MODEL)
    assert 0 < calibration["threshold"] < 1 and calibration["temperature"] > 0


def test_the_default_brings_its_own_tflite_and_serving_it_imports_no_tensorflow(tmp_path):
    """A fresh start (what every Space restart is): the shipped float16 .tflite serves as it is, no conversion."""
    import subprocess
    import sys

    from classifier.modelfile import shipped_tflite

    assert shipped_tflite(DEFAULT_MODEL).exists() and shipped_tflite(DEFAULT_MODEL).stat().st_size < 10e6
    code = ("import sys, json; from classifier.predictor import Classifier; c = Classifier.load(); "
            "p = c.predict('assets/examples/cat.jpg'); "
            "print(json.dumps([c.engine_name, c.size, c.top_k(p, 1)[0][0], "
            "[m for m in ('tensorflow', 'keras') if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(DEFAULT_MODEL).parents[2], capture_output=True,
                         text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "MODEL_CACHE": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == ["LiteRT", 384, "cat", []]
    assert not any(tmp_path.iterdir())  # nothing converted


def test_default_model_gets_every_example_right(default_classifier):
    paths = sorted(EXAMPLES.glob("*.jpg"))
    assert [p.stem for p in paths] == list(CLASSES)
    probs = default_classifier.predict([str(p) for p in paths])
    assert probs.shape == (10, 10)
    # the ten probabilities; what they leave below 1 is the folded "none of the ten" class (small on animals)
    assert (probs.sum(1) <= 1 + 1e-5).all() and (probs.sum(1) > 0.9).all()
    assert [CLASSES[i] for i in probs.argmax(1)] == list(CLASSES)
    assert default_classifier.meta["accuracy"] > 0.9


def test_one_prediction_path_for_path_pil_bytes_and_batch(default_classifier):
    path = EXAMPLES / "cat.jpg"
    single = default_classifier.predict(str(path))
    assert single.shape == (10,)
    for source in (Image.open(path), path.read_bytes(), path):
        np.testing.assert_allclose(default_classifier.predict(source), single, atol=1e-5)
    batch = default_classifier.predict([str(path), str(EXAMPLES / "dog.jpg")])
    np.testing.assert_allclose(batch[0], single, atol=1e-5)
    assert default_classifier.top_k(single, 3)[0][0] == "cat"
    assert len(default_classifier.top_k(single, 3)) == 3


def test_predict_files_streams_and_reports_bad_files(default_classifier, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    paths = [str(EXAMPLES / f"{c}.jpg") for c in CLASSES] + [str(bad)]
    out = list(default_classifier.predict_files(paths, batch_size=3))
    assert [p for p, _ in out] == paths
    assert isinstance(out[-1][1], ImageError)
    assert [CLASSES[int(r.argmax())] for _, r in out[:-1]] == list(CLASSES)


def test_predict_raises_clear_error_for_bad_input(default_classifier):
    with pytest.raises(ImageError):
        default_classifier.predict(b"")


def test_inference_model_folds_batchnorm_and_matches(trained_like):
    from classifier.model import inference_model
    fast = inference_model(trained_like)
    assert not any(layer.name.endswith("_bn") for layer in fast.layers[1].layers)
    x = np.random.default_rng(2).uniform(0, 255, (3, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(trained_like(x)), atol=1e-4)
    assert fast.get_layer("head") is trained_like.get_layer("head")


def test_the_model_line_shows_balanced_accuracy_read_off_the_models_card(default_classifier):
    from classifier.predictor import Classifier
    from studio.classify import model_line

    meta = default_classifier.meta
    report = json.loads((DEFAULT_MODEL.parent / meta["report"]).read_text())  # the run's own report
    line = model_line(default_classifier)
    assert (f"balanced accuracy {report['balanced_accuracy']:.1%} (accuracy {report['accuracy']:.1%}) out of fold "
            f"on {report['n_scored']} photos") in line
    assert "平衡准确率" in model_line(default_classifier, "zh")
    # a run measured on test photos, its card without a balanced figure: its recalls' mean is
    card = {"name": "r", "accuracy": 0.9, "test_images": 40, "measured_on": "test",
            "per_class_recall": {c: 0.8 + 0.02 * i for i, c in enumerate(CLASSES)}}
    line = model_line(Classifier(default_classifier.engine, card))
    assert "balanced accuracy 89.0% (accuracy 90.0%) on 40 held-out photos" in line


def test_the_model_files_form_is_written_where_it_is_read(tmp_path):
    """A run's metadata and calibration are written by ``classifier.modelfile``, beside the model file, as it reads
    them; no other module names those files."""
    from conftest import ROOT

    from classifier.modelfile import write_calibration, write_meta

    model = tmp_path / "model.keras"
    write_meta(model, {"name": "r1", "classes": list(CLASSES)})
    write_calibration(model, {"temperature": 1.2, "threshold": 0.6})
    assert model_meta(model)["name"] == "r1" and read_calibration(model) == {"temperature": 1.2, "threshold": 0.6}
    named = [str(p.relative_to(ROOT)) for pkg in ("training", "evaluation", "labeling", "studio")
             for p in (ROOT / pkg).rglob("*.py") if '"calibration.json"' in p.read_text() or
             '"model.json"' in p.read_text()]
    assert named == []


def test_the_model_carries_its_answer_rule():
    """The "none of the 10" cut is the model's: its calibrated threshold, else the app's fallback, given once."""
    from classifier.predictor import LOW_CONFIDENCE, Classifier, none_threshold
    from settings import Settings

    assert Settings().low_confidence == LOW_CONFIDENCE and none_threshold(None) == LOW_CONFIDENCE
    calibrated = Classifier.load(fallback=0.3)
    assert calibrated.none_threshold == read_calibration(DEFAULT_MODEL)["threshold"] != 0.3
    plain = Classifier(calibrated.engine, calibrated.meta, fallback=0.3)  # no calibration
    assert plain.none_threshold == 0.3 and none_threshold(0.0, 0.3) == 0.0  # a cut of 0 is a cut, not "none"
    assert plain.answer(np.full(10, 0.1), plain.none_threshold) == "none"


def test_a_table_of_answers_follows_the_one_rule():
    """answers() is answer() for each row: the top class, none under the cut, never none without one."""
    from classifier.classes import CLASSES
    from classifier.predictor import answer, answers

    table = np.random.default_rng(0).dirichlet(np.full(10, 0.3), 500)
    for cut in (None, 0.0, 0.5, 0.9):
        expected = ["none" if cut is not None and max(row) < cut else CLASSES[list(row).index(max(row))]
                    for row in table]
        assert answers(table, CLASSES, cut) == expected == [answer(row, CLASSES, cut) for row in table]
    said = answers(table, CLASSES, 0.5)
    assert "none" in said and set(said) - {"none"} <= set(CLASSES) and "none" not in answers(table, CLASSES, None)
    assert answers(np.zeros((0, 10)), CLASSES, 0.5) == []


def test_under_mixed_precision_the_keras_engine_gives_every_output_in_float32_where_it_must():
    """A GPU trains in mixed float16; the Keras engine a run predicts its validation photos with then still builds
    (the linear head's class maps computed in float32) and gives float32 probabilities and maps."""
    import keras

    from classifier.predictor import Classifier

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        out = Classifier.from_keras(build_classifier("efficientnet_lite0", head="linear")).engine.run(
            np.zeros((1, 224, 224, 3), np.float32))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out["probabilities"].dtype == out["cams"].dtype == np.float32
    assert out["cams"].shape == (1, 7, 7, 10) and out["features"].shape == (1, 1280)
