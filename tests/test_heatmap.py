"""Grad-CAM on the real default model: the heat lies on the animal it explains, folded and unfolded BatchNorm and
the .npz and .keras forms give the same map, and the app serves it."""

import numpy as np
import pytest
from conftest import EXAMPLES
from PIL import Image

from classifier.heatmap import Explainer, overlay
from classifier.images import decode


def half(name, side=260):
    """The middle half (a tall strip) of an example photo's centre square."""
    im = Image.open(EXAMPLES / f"{name}.jpg").convert("RGB")
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((side, side))
    return im.crop((side // 4, 0, 3 * side // 4, side))


@pytest.fixture(scope="module")
def explainer():
    return Explainer.load()


@pytest.fixture(scope="module")
def cat_and_dog():
    """A cat on the left half and a dog on the right half of one square photo."""
    photo = Image.new("RGB", (260, 260))
    photo.paste(half("cat"), (0, 0))
    photo.paste(half("dog"), (130, 0))
    return photo


def test_the_heat_for_each_class_lies_on_its_animal_not_on_the_brightest_or_busiest_part(explainer, cat_and_dog):
    pixels = decode(cat_and_dog, explainer.size)
    cams, probs = explainer.heatmaps(np.stack([pixels, pixels]), ["cat", "dog"])
    w = cams.shape[2] // 2
    left = cams[:, :, :w].sum((1, 2)) / (cams[:, :, :w].sum((1, 2)) + cams[:, :, -w:].sum((1, 2)))
    assert left[0] > 0.7, f"cat's heat on the cat's half: {left[0]:.2f}"
    assert left[1] < 0.3, f"dog's heat on the dog's half: {1 - left[1]:.2f}"
    # the same photo, two different maps: it is the class that moves the heat, not the picture's brightness
    assert np.abs(cams[0] - cams[1]).max() > 0.5 and cams.min() >= 0 and cams.max() == pytest.approx(1.0)


def test_folded_unfolded_npz_and_keras_give_the_same_heatmap(explainer, cat_and_dog, tmp_path):
    from classifier.model import load_model

    pixels = np.stack([decode(cat_and_dog, explainer.size), decode(EXAMPLES / "horse.jpg", explainer.size)])
    reference, probs = explainer.heatmaps(pixels, ["cat", None])
    model, meta = load_model()
    model.save(tmp_path / "default.keras")
    for other in (Explainer(model, fused=False), Explainer.load(tmp_path / "default.keras")):
        cams, other_probs = other.heatmaps(pixels, ["cat", None])
        assert np.abs(cams - reference).max() < 1e-3 and np.abs(other_probs - probs).max() < 1e-4
    assert explainer.classes[int(np.argmax(probs[1]))] == "horse"


def test_the_served_model_draws_the_same_heatmap_in_its_own_pass(cat_and_dog):
    """The default's linear head: each class's map comes out of the served float16 .tflite (a closed form of the
    gradient), the unfolded Keras model's to float16's rounding; Keras' closed form closer still (maps of a class
    the photo hardly shows are scaled up from little, so their rounding shows most)."""
    from classifier.heatmap import ServedExplainer, explainer
    from classifier.predictor import Classifier

    pixels = np.stack([decode(p, 384) for p in (cat_and_dog, EXAMPLES / "horse.jpg", *sorted(EXAMPLES.glob("*.jpg")))])
    labels = ["cat", None] + [None, "dog"] * 5
    reference, probs = Explainer.load(fused=False).heatmaps(pixels, labels)
    for engine, tolerance in (("litert", 0.1), ("keras", 0.05)):
        served = explainer(Classifier.load(None, engine))
        assert isinstance(served, ServedExplainer)
        cams, served_probs = served.heatmaps(pixels, labels)
        gap = np.abs(cams - reference)
        assert gap.max() < tolerance and gap.mean() < tolerance / 50, (engine, gap.max(), gap.mean())
        assert np.abs(served_probs - probs).max() < 5e-3


def test_explain_lays_the_top_class_heat_over_the_photo_in_its_own_shape(explainer):
    picture, shown, top = explainer.explain(EXAMPLES / "elephant.jpg", side=320)
    photo = Image.open(EXAMPLES / "elephant.jpg")
    assert shown == top[0] == "elephant" and len(top) == 5
    assert max(picture.size) == min(320, max(photo.size))
    assert abs(picture.size[0] / picture.size[1] - photo.size[0] / photo.size[1]) < 0.02
    flat = overlay(np.full((10, 10, 3), 100.0), np.zeros((3, 3)))  # no heat: the photo is left as it is
    assert np.asarray(flat).max() == 100


def test_grad_cam_is_warmed_in_the_background_after_the_first_answer(tmp_path, monkeypatch):
    """For a model whose heatmap needs Keras (a dense head), the served app loads Grad-CAM as it starts
    (``app.make_server(warm=True)``, what ``python app.py`` runs), but only once the first answer has left or after a
    wait: the first heatmap asked for is then as quick as the next, and the first answer is not slowed by
    TensorFlow's import."""
    import time

    from fastapi.testclient import TestClient

    import app
    from classifier.classes import CLASSES
    from classifier.model import build_classifier
    from classifier.serving import ModelSlot
    from settings import Settings
    from studio.classify import classify_image

    model = build_classifier("efficientnet_lite0")  # a dense head: Grad-CAM needs Keras' gradients
    model.save(tmp_path / "dense.keras")
    slot = ModelSlot(tmp_path / "dense.keras", engine="keras")
    warming = slot.warm(wait=60)
    time.sleep(0.5)
    assert warming.is_alive() and slot._explainer == (None, None)  # waits for the first answer
    monkeypatch.setattr("studio.classify.upload_path", lambda image, lang, mb: image)  # a photo of the app's own
    classify_image(slot, str(EXAMPLES / "cat.jpg"))
    warming.join(120)
    path, explainer = slot._explainer
    assert path == slot.get().path and explainer._explain.experimental_get_tracing_count() == 1  # loaded, traced
    assert slot.explainer() is explainer and slot.explainer().explain(EXAMPLES / "cat.jpg")[1] in CLASSES

    asked = []
    monkeypatch.setattr(ModelSlot, "warm", lambda self, wait=0: asked.append(wait))
    settings = Settings(data_dir=tmp_path, data_roots=(tmp_path / "datasets",))
    with TestClient(app.make_server(settings, warm=True)):
        pass
    with TestClient(app.make_server(settings)):  # what the tests build: no TensorFlow in the background
        pass
    assert asked == [app.WARM_AFTER]
    assert Settings.from_env({}).warm_grad_cam and not Settings.from_env({"GRAD_CAM_WARM": "0"}).warm_grad_cam
