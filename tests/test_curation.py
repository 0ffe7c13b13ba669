"""Copies and leaks (evaluation/copies.py), label quality from several views (labeling/quality.py) and out-of-fold
probabilities of a training set (training/out_of_fold.py), on the default model's features of real photos: the
Classify examples, the chelsea fixture, and copies of two of them made here."""

import io
import shutil

import numpy as np
import pytest
from conftest import EXAMPLES, FIXTURES
from PIL import Image, ImageOps

from classifier.classes import CLASSES
from classifier.modelfile import DEFAULT_MODEL
from evaluation import copies
from labeling.quality import (
    fittable,
    label_quality_scores,
    neighbour_label_probabilities,
    review_scores,
    suspects_first,
    with_none,
)
from training.out_of_fold import out_of_fold


def _crop(img):  # 10% off the width and the height, more on the left and top
    w, h = img.size
    return img.crop((int(w * 0.07), int(h * 0.06), w - int(w * 0.03), h - int(h * 0.04)))


def _jpeg(img, quality=40):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


TRANSFORMS = {
    "resize": lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "crop": _crop,
    "jpeg": _jpeg,
    "mirror": ImageOps.mirror,
    "all": lambda im: _jpeg(ImageOps.mirror(_crop(im)).resize((im.width * 3 // 4, im.height * 3 // 4)), 60),
}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The 10 examples and chelsea (distinct photos), then the five copies of cat.jpg and of dog.jpg; their
    embeddings and features, the default model's (served through LiteRT) and its probabilities of each."""
    folder = tmp_path_factory.mktemp("copies")
    distinct = sorted(EXAMPLES.glob("*.jpg")) + [FIXTURES / "chelsea.png"]
    planted = []
    for name in ("cat", "dog"):
        img = Image.open(EXAMPLES / f"{name}.jpg").convert("RGB")
        for kind, make in TRANSFORMS.items():
            planted.append(folder / f"{name}-{kind}.png")
            make(img).save(planted[-1])
    cache = folder / "features.npz"
    rows, probs, paths, errors = copies.features(distinct + planted, cache=cache)
    assert not errors and len(paths) == len(distinct) + len(planted) and cache.exists()
    emb = copies.embed(distinct + planted, cache=cache)  # from the cache: no model needed
    k = probs.shape[1] // 2
    return {"emb": emb, "rows": rows, "n": len(distinct), "paths": [str(p) for p in distinct + planted],
            "probs": with_none(probs[:, :k]), "mirror_probs": with_none(probs[:, k:])}


def _row(photos, name):
    return next(i for i, p in enumerate(photos["paths"]) if p.endswith(f"/{name}"))


def test_copies_found_under_each_transform_and_distinct_photos_not_paired(photos):
    emb = photos["emb"]
    pairs = {(i, j): d for i, j, d in copies.copy_pairs(emb.own, emb.mirror)}
    for name in ("cat", "dog"):
        original = _row(photos, f"{name}.jpg")
        for kind in TRANSFORMS:
            copy = _row(photos, f"{name}-{kind}.png")
            assert (original, copy) in pairs, (name, kind)
    n = photos["n"]
    assert not [p for p in pairs if p[1] < n], "distinct photos paired"
    groups = copies.copy_groups(emb.own, emb.mirror)
    assert sorted(map(sorted, groups)) == sorted(
        [sorted([_row(photos, f"{name}.jpg")] + [_row(photos, f"{name}-{k}.png") for k in TRANSFORMS])
         for name in ("cat", "dog")])


def test_leaks_against_a_models_training_index_and_unavailable_without_one(photos, tmp_path):
    emb = photos["emb"]
    model = tmp_path / "model.npz"
    shutil.copy(DEFAULT_MODEL, model)
    with pytest.raises(copies.LeakCheckUnavailable, match="unavailable"):
        copies.check_leaks(emb.own, emb.mirror, model)
    assert copies.load_index(model) is None
    # trained on cat.jpg and chelsea: the copies of cat.jpg leak, the dog's and the other examples do not
    trained = [_row(photos, "cat.jpg"), _row(photos, "chelsea.png")]
    index = copies.build_index(emb.own[trained], ["cat/a.jpg", "cat/chelsea.png"], ["s", "s"], ["cat", "cat"], model)
    path = copies.save_index(index, copies.index_path(model))
    assert path.name == "model.training-index.npz" and path.stat().st_size < 20_000
    found = copies.check_leaks(emb.own, emb.mirror, model)
    leaked = {photos["paths"][f["row"]].rsplit("/", 1)[1] for f in found}
    assert leaked == {"cat.jpg", "chelsea.png"} | {f"cat-{k}.png" for k in TRANSFORMS}
    assert all(f["label"] == "cat" and f["distance"] <= copies.THRESHOLD for f in found)
    # the model changed since the index was made (retrained): its training photos may differ, so unavailable
    model.write_bytes(model.read_bytes() + b"\0")
    assert copies.load_index(model) is None
    with pytest.raises(copies.LeakCheckUnavailable):
        copies.check_leaks(emb.own, emb.mirror, model)


def test_the_default_model_carries_its_training_index():
    index = copies.load_index()
    assert index is not None and len(index) == 3485 + 1866  # its card's photos (out_of_fold.json, calibration)
    assert index.embeddings.shape == (len(index), 1280)
    np.testing.assert_allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    assert copies.index_path().stat().st_size < 10e6 and index.meta["model"] == "a10-probe384-mirror"


def _labels(photos):
    """Each photo's class from its file name (chelsea is a cat)."""
    return np.array([CLASSES.index("cat") if "chelsea" in p else CLASSES.index(p.rsplit("/", 1)[1].split("-")[0]
                                                                                .split(".")[0])
                     for p in photos["paths"]])


def test_a_planted_flip_ranks_first(photos):
    emb, probs, mirror_probs = photos["emb"], photos["probs"], photos["mirror_probs"]
    labels = _labels(photos)
    flipped = _row(photos, "cat-crop.png")
    labels[flipped] = CLASSES.index("dog")  # the GLM's mistake
    near = neighbour_label_probabilities(emb.own, labels, probs.shape[1], k=5)
    assert near.shape == probs.shape and np.allclose(near.sum(1), 1)
    assert near[flipped, CLASSES.index("cat")] > 0.5  # its copies say cat
    scores = label_quality_scores(labels, probs, mirror_probs, neighbours=near)
    assert suspects_first(scores)[0] == flipped and scores.min() >= 0 and scores.max() <= 1
    # an LLM that answered cat for it lowers its score; one that answered dog would lift it
    llm = np.full(len(labels), -1)
    llm[flipped] = CLASSES.index("cat")
    assert label_quality_scores(labels, probs, mirror_probs, neighbours=near, llm=llm)[flipped] < scores[flipped]
    llm[flipped] = CLASSES.index("dog")
    assert label_quality_scores(labels, probs, mirror_probs, neighbours=near, llm=llm)[flipped] > scores[flipped]
    # the whole review from features: the served model's probabilities, the set's own probe, two passes
    rows = photos["rows"]
    d = rows.shape[1] // 2
    scores = review_scores(rows[:, :d], rows[:, d:], labels, probs, mirror_probs, cs=(1.0,))
    assert suspects_first(scores)[0] == flipped


def test_the_margin_ranks_a_confident_rival_before_a_crowd():
    """A label with one confident rival is more suspect than one among many weak look-alikes, by the margin; by
    self-confidence alone the other way round; an unknown method is refused."""
    probs = np.array([[0.30, 0.25, 0.25, 0.20],   # label 0: low, but no other class likelier
                      [0.40, 0.60, 0.00, 0.00]])  # label 0: another class is likelier
    labels = np.array([0, 0])
    margin = label_quality_scores(labels, probs)
    assert suspects_first(margin)[0] == 1 and margin[0] > 0.5 > margin[1]
    np.testing.assert_allclose(margin, [(1 + 0.05) / 2, (1 - 0.20) / 2])
    confidence = label_quality_scores(labels, probs, method="self_confidence")
    np.testing.assert_allclose(confidence, [0.30, 0.40])
    # whole-number weights weigh the same as floats
    np.testing.assert_allclose(label_quality_scores(labels, probs, probs, weights={"model": 2}), margin)
    with pytest.raises(ValueError, match="normalized_margin"):
        label_quality_scores(labels, probs, method="margin")
    with pytest.raises(ValueError, match=r"set_probs has shape \(1, 4\)"):  # not broadcast over the photos
        label_quality_scores(labels, probs, set_probs=probs[:1])
    with pytest.raises(ValueError, match="weights must be 0 or more"):
        label_quality_scores(labels, probs, weights={"model": 0})


def test_a_set_whose_suspects_are_a_whole_class_keeps_its_first_pass():
    """Twenty cats and three photos of cats labelled dog: the first pass finds the three, and the refit without them
    would have one class to learn; the first pass stands (it used to fail, and the set fell back to the model)."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.uniform(0, 2, 16) + rng.normal(0, 0.3, (23, 16))).astype(np.float32)
    labels = np.array([CLASSES.index("cat")] * 20 + [CLASSES.index("dog")] * 3)
    assert not fittable(labels[:20]) and fittable(labels)
    scores = review_scores(x, x, labels, cs=(0.1,))
    assert np.isfinite(scores).all() and set(suspects_first(scores)[:3]) == {20, 21, 22}


def test_out_of_fold_probabilities_of_a_training_set(photos):
    rows = photos["rows"]
    d = rows.shape[1] // 2
    labels = np.where(np.isin(_labels(photos), [CLASSES.index("cat"), CLASSES.index("dog")]), _labels(photos), -1)
    flipped = _row(photos, "dog-jpeg.png")
    labels[flipped] = CLASSES.index("cat")
    c, probs, mirror_probs = out_of_fold(rows[:, :d], labels, rows[:, d:], cs=(1.0,), folds=3)
    assert c == 1.0 and probs.shape == mirror_probs.shape == (len(labels), len(CLASSES) + 1)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    # its copies, labelled dog in other folds, outvote its own label
    assert probs[flipped, CLASSES.index("dog")] > probs[flipped, CLASSES.index("cat")]
    # left out of the fits, it is scored by a probe fitted on all the others, which never saw it
    leave_out = np.zeros(len(labels), bool)
    leave_out[flipped] = True
    _, again, _ = out_of_fold(rows[:, :d], labels, rows[:, d:], cs=(1.0,), folds=3, leave_out=leave_out)
    assert again[flipped, CLASSES.index("dog")] > 0.5
    scores = review_scores(rows[:, :d], rows[:, d:], np.where(labels < 0, len(CLASSES), labels), cs=(1.0,))
    assert suspects_first(scores)[0] == flipped


def test_a_store_with_no_readable_photo_has_no_copies_and_no_leaks():
    """Every photo unreadable: the features are an empty table, and the copies of it are none (not a ValueError)."""
    from labeling.curation import Copies, StoreFeatures, find_copies

    empty = np.zeros((0, 0), np.float32)
    feats = StoreFeatures([], empty, empty, np.zeros((0, 11)), np.zeros((0, 11)), [])
    assert find_copies(feats, DEFAULT_MODEL) == Copies({}, {})
