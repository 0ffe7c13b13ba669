"""The review queue's finer ranking (labeling/curation.py) in the product: by review_scores once a set's features
exist, out of fold for a training set, the copies filter, the command line's JSON, and the API of a launched app.

The set: 40 photos of the demo (cat, dog, butterfly, elephant: their true classes, from its sources.csv), photo 27
(a cat) labelled "dog" (the GLM's mistake), and a mirrored, cropped, smaller copy of photo 49 (an elephant)."""

import csv
import json
import shutil
import subprocess
import sys
import time
from dataclasses import astuple

import pytest
from conftest import ROOT
from PIL import Image, ImageOps

from classifier.serving import ModelSlot
from labeling import curation
from labeling.review import Filters, Review
from labeling.suspects import model_key
from settings import Settings
from studio.review_view import copy_lines, present, ranking_line, view

DEMO = ROOT / "assets" / "demo"
CLASSES4 = ("cat", "dog", "butterfly", "elephant")
FLIP, COPY, ORIGINAL = "27", "copy49", "49"
ALL = Filters(status="all")


def make_set(folder):
    """The 41 photos and their results.json (27 flipped); returns ``{key: true class}``."""
    folder.mkdir(parents=True)
    truth = {}
    for r in csv.DictReader((DEMO / "sources.csv").open()):
        if r["class"] in CLASSES4:
            shutil.copy(DEMO / r["file"], folder / r["file"])
            truth[r["file"][:-4]] = r["class"]
    img = Image.open(folder / f"{ORIGINAL}.jpg").convert("RGB")
    w, h = img.size
    ImageOps.mirror(img.crop((w // 20, h // 20, w, h))).resize((w * 3 // 4, h * 3 // 4)).save(
        folder / f"{COPY}.jpg", quality=70)
    truth[COPY] = "elephant"
    labels = dict(truth, **{FLIP: "dog"})
    assert truth[FLIP] == "cat"
    (folder / "results.json").write_text(json.dumps(labels))
    return truth


@pytest.fixture(scope="module")
def photos(tmp_path_factory, default_classifier):
    """The set's folder and its features' cache (computed once here, by the default model, as the app would)."""
    from evaluation.copies import features

    base = tmp_path_factory.mktemp("ranking")
    folder = base / "data" / "datasets" / "train"
    truth = make_set(folder)
    key = model_key(default_classifier)
    cache = curation.features_cache(base / "data" / "labels.db", key)
    _, _, readable, errors = features(sorted(folder.glob("*.jpg")), cache=cache)
    assert len(readable) == 41 and not errors and cache.exists()
    return {"folder": folder, "truth": truth, "cache": cache, "key": key, "base": base}


def review_of(photos, tmp_path, slot=None, folders=()):
    """A review of the set (and ``folders``) in a fresh DATA_DIR, given the features' cache."""
    data = tmp_path / "data"
    (data / "features").mkdir(parents=True)
    shutil.copy(photos["cache"], data / "features" / photos["cache"].name)
    review = Review(Settings(data_dir=data), slot or ModelSlot(None))
    for folder in (photos["folder"], *folders):
        review.import_folder(None, folder, author="import")
    return review


def settled(review, out_of_fold=False, timeout=300):
    """The queue once the predictions, the features and the scores are all computed."""
    deadline = time.time() + timeout
    review.predict_in_background(wait=timeout)
    while time.time() < deadline:
        review.ranked(out_of_fold)  # asks for what is missing
        assert review.curation.wait(deadline - time.time())
        rows = review.ranked(out_of_fold)
        if review.curation.wait(0.01) and getattr(review.curation, "_thread", None) is None:
            return rows
    raise AssertionError("the ranking did not settle")


def keys(rows):
    return [r["key"] for r in rows]


def test_the_queue_ranks_by_review_scores_once_the_features_exist_and_says_so(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(curation, "RESCORE_SECONDS", 0)  # every change scored again at once
    tiny = tmp_path / "tiny"  # a second data set, too small for a probe of its own: the model's ranking
    tiny.mkdir()
    for name in ("cat", "dog", "sheep"):
        shutil.copy(ROOT / "assets" / "examples" / f"{name}.jpg", tiny / f"{name}.jpg")
    (tiny / "results.json").write_text(json.dumps({"cat": "cat", "dog": "dog", "sheep": "sheep"}))
    review = review_of(photos, tmp_path, folders=[tiny])
    rows = settled(review)
    train = [r for r in rows if r["dataset"] == "train"]
    assert train[0]["key"] == FLIP and train[0]["ranking"] == "review" and train[0]["score"] < 0.1
    assert rows[0]["key"] == FLIP  # the whole store's queue, both sets merged by score
    assert all(r["ranking"] == "review" for r in train) and {r["ranking"] for r in rows if r["dataset"] == "tiny"} \
        == {"suspects"}
    _, details, _, session = present(review, review.start("ann", ALL))
    assert "`train/27.jpg`" in details and "Ranked by label quality" in details and "mirror image" in details
    tiny_row = next(r for r in rows if r["dataset"] == "tiny")
    line = ranking_line(review, tiny_row, ALL, "en")
    assert "served model's probability of the label" in line and "fewer than 20 labelled photos" in line
    assert "按服务模型给该标签的概率排序" in ranking_line(review, tiny_row, ALL, "zh")
    # the LLM's answer counts where it is a second opinion: a reviewer kept "dog", the LLM then says cat
    image = train[0]["id"]
    review.store.decide(image, "dog", "ann")
    kept = next(r for r in settled(review) if r["id"] == image)
    assert kept["label"] == "dog" and kept["source"] == "human"
    review.store.add_event(image, "cat", "llm", author="glm", model="glm-4v", prompt_version="v1", raw_reply="cat")
    asked = next(r for r in settled(review) if r["id"] == image)
    assert asked["label"] == "dog" and asked["llm_label"] == "cat" and asked["score"] < kept["score"]
    # a reviewer's decision is the label from then on: fixed, the photo is no suspect any more
    review.store.decide(image, "cat", "bob")
    fixed = settled(review)
    assert next(r for r in fixed if r["id"] == image)["score"] > 0.5 and fixed[0]["key"] != FLIP


def test_a_training_set_is_ranked_out_of_fold(photos, tmp_path):
    slot = ModelSlot(None)
    slot.get().meta["trained_on"] = [str(photos["folder"])]  # a served model that learnt this set, labels and all
    review = review_of(photos, tmp_path, slot)
    rows = settled(review)
    assert rows[0]["key"] == FLIP and {r["ranking"] for r in rows} == {"out_of_fold"}
    _, details, _, _ = present(review, review.start("ann", ALL))
    assert "`train/27.jpg`" in details and "Ranked out of fold" in details
    assert "the served model learnt this data set's photos" in details
    assert "queue is blind" not in details and "its own ranking is blind" not in details
    listed = review.suspects(ALL)
    assert listed["suspects"][0]["key"] == FLIP and listed["suspects"][0]["ranking"] == "out_of_fold"


def test_any_set_is_ranked_out_of_fold_when_asked_and_the_served_models_view_is_left_out(photos, tmp_path):
    review = review_of(photos, tmp_path)
    test_mode = {r["id"]: r["score"] for r in settled(review)}
    rows = settled(review, out_of_fold=True)
    assert rows[0]["key"] == FLIP and {r["ranking"] for r in rows} == {"out_of_fold"}
    assert {r["id"]: r["score"] for r in rows} != test_mode  # other probabilities: the served model's are not used
    _, details, _, _ = present(review, review.start("ann", Filters(status="all", out_of_fold=True)))
    assert "Ranked out of fold" in details and "as asked" in details
    assert review.queue(ALL)[0]["ranking"] == "review"  # the tick off: the test set's ranking again


def test_the_copies_filter_lists_a_planted_copy_and_the_leak_check_unavailable_says_so(photos, tmp_path):
    from classifier.modelfile import DEFAULT_MODEL

    review = review_of(photos, tmp_path)
    settled(review)
    assert keys(review.queue(Filters(status="all", copies="groups"))) in ([ORIGINAL, COPY], [COPY, ORIGINAL])
    leaked = set(keys(review.queue(Filters(status="all", copies="leaked"))))
    assert leaked and not leaked & {ORIGINAL, COPY}  # photos of the default's training index (Caltech-101's)
    assert set(keys(review.queue(Filters(status="all", copies="copies")))) == leaked | {ORIGINAL, COPY}
    _, details, _, session = present(review, review.start("ann", Filters(status="unreviewed", copies="groups")))
    first = session["current"]
    other = COPY if review.store.state([first])[0]["key"] == ORIGINAL else ORIGINAL
    assert f"**Near-copies** of this photo in the store: `train/{other}.jpg`" in details
    leak_row = next(r for r in review.queue(ALL) if r["key"] in leaked)
    assert "A near-copy of a photo the served model was trained on" in " ".join(copy_lines(review, leak_row))
    # left out as a copy, it leaves the unreviewed copies; the other one stays
    groups = Filters(status="unreviewed", copies="groups")
    _, details, _, session = present(review, review.leave_out(session, "copy", groups))
    assert [r["id"] for r in review.queue(Filters(status="unreviewed", copies="groups"))] == [session["current"]]
    assert session["current"] != first and review.store.state([first])[0]["label"] == "out: copy"
    # a model without an index of its training photos: the leak check is unavailable, not "no leaks"
    model = tmp_path / "retrained.npz"
    shutil.copy(DEFAULT_MODEL, model)
    review.curation.copies = curation.find_copies(review.curation.feats, model)
    assert review.curation.copies.unavailable and review.curation.copies.leaks is None
    review._reranked = (None, None)
    assert review.queue(Filters(status="all", copies="leaked")) == []
    assert len(review.queue(Filters(status="all", copies="copies"))) == 2  # the copies within the store still
    _, details, _ = view(review, None, [], "en", filters=Filters(copies="leaked"))
    assert "Nothing left in this queue" in details and "leak check is **unavailable**" in details
    assert "泄漏检查**不可用**" in view(review, None, [], "zh", filters=Filters(copies="copies"))[1]
    assert review.suspects(Filters(copies="leaked"))["leak_check"] == "unavailable"


def test_train_offers_the_reviewed_labels_and_never_learns_the_photos_left_out(photos, tmp_path):
    from studio.common import store_labels
    from studio.train import labels_line
    from training import layout
    from training.runs import RunStore

    review = review_of(photos, tmp_path)
    ids = {r["key"]: r["id"] for r in review.state()}
    review.store.decide(ids[FLIP], "cat", "ann")  # the flip fixed
    review.store.leave_out(ids[COPY], "copy", "ann")  # the copy left out
    settings = Settings(data_dir=tmp_path / "data", data_roots=(str(photos["folder"].parent),))
    folder = str(photos["folder"])
    line = labels_line(settings, folder, "reviewed")
    assert "labels of **train**, reviewed where decided" in line and "40 photos labelled (2 reviewed" in line
    assert "1 left out by reviewers (a copy of another photo 1) and 0 without a usable label" in line
    assert "审核者排除的 1 张（是另一张照片的副本 1）" in labels_line(settings, folder, "reviewed", "zh")
    before = labels_line(settings, folder, "before")  # as if no one had reviewed: the copy and the flip too
    assert "41 photos labelled" in before and "0 left out by reviewers and" in before
    assert labels_line(settings, folder, "file").startswith("Trains on the folder's own labels")
    labels = store_labels(settings, photos["folder"], "reviewed").labels
    run, _ = RunStore(settings).plan(folder, "efficientnet_lite2", 1, 0, 1, labels=labels, head="linear")
    trained = json.loads((run / layout.LABELS).read_text())
    assert trained[FLIP] == "cat" and COPY not in trained and len(trained) == 40


def test_the_command_line_prints_the_ranked_keys_with_scores_as_json(photos, tmp_path):
    db = tmp_path / "labels.db"
    (tmp_path / "features").mkdir()
    shutil.copy(photos["cache"], tmp_path / "features" / photos["cache"].name)

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "labeling", *args, "--db", str(db)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return r.stdout

    cli("import", "--images", str(photos["folder"]))
    listed = json.loads(cli("suspects", "--dataset", "train", "--json", "--top", "5"))
    assert listed["dataset"] == "train" and listed["photos"] == 41 and len(listed["suspects"]) == 5
    first = listed["suspects"][0]
    assert first["key"] == FLIP and first["ranking"] == "review" and first["label"] == "dog"
    assert first["score"] < 0.1 and first["predicted"] == "cat" and first["rank"] == 1
    scores = [s["score"] for s in listed["suspects"]]
    assert scores == sorted(scores)
    listed = json.loads(cli("suspects", "--dataset", "train", "--out-of-fold", "--json", "--top", "41"))
    assert listed["suspects"][0]["key"] == FLIP and {s["ranking"] for s in listed["suspects"]} == {"out_of_fold"}
    copies = {s["key"]: s["copies"] for s in listed["suspects"] if s["copies"]}
    assert copies == {ORIGINAL: [f"train/{COPY}.jpg"], COPY: [f"train/{ORIGINAL}.jpg"]}
    r = subprocess.run([sys.executable, "-m", "labeling", "suspects", "--db", str(db)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "--out suspects.csv, or --json" in r.stderr


def test_the_ranking_and_the_copies_through_the_api_of_a_launched_app(photos, tmp_path):
    from gradio_client import Client
    from test_review_app import launch

    def prepare(data):
        shutil.copytree(photos["folder"], data / "datasets" / "train")

    proc, url, data = launch(tmp_path, prepare, ADMIN_PASSWORD="pw-4-ranking")
    try:
        client = Client(url, verbose=False)
        client.predict("ann", "pw-4-ranking", *astuple(ALL), api_name="/review_start")
        message, _ = client.predict("pw-4-ranking", "datasets/train", api_name="/import")
        assert "Imported 41 images" in message
        with pytest.raises(Exception, match="admin password"):  # guarded as the other label events
            client.predict("nope", *astuple(ALL), api_name="/review_suspects")
        deadline = time.time() + 400
        while time.time() < deadline:
            listed = client.predict("pw-4-ranking", *astuple(ALL), api_name="/review_suspects")
            if listed["suspects"] and listed["suspects"][0]["ranking"] == "review" \
                    and listed["suspects"][0]["dataset"] == "train":
                break
            time.sleep(0.5)
        assert listed["suspects"][0]["key"] == FLIP and listed["suspects"][0]["score"] < 0.1, listed["suspects"][:3]
        groups = client.predict("pw-4-ranking", *astuple(Filters(status="all", copies="groups")),
                                api_name="/review_suspects")
        assert sorted(s["key"] for s in groups["suspects"]) == [ORIGINAL, COPY] and groups["leak_check"] == "ready"
        oof = client.predict("pw-4-ranking", *astuple(Filters(status="all", out_of_fold=True)),
                             api_name="/review_suspects")
        deadline = time.time() + 120
        while oof["suspects"][0]["ranking"] != "out_of_fold" and time.time() < deadline:
            time.sleep(0.5)
            oof = client.predict("pw-4-ranking", *astuple(Filters(status="all", out_of_fold=True)),
                                 api_name="/review_suspects")
        assert oof["suspects"][0]["key"] == FLIP and oof["suspects"][0]["ranking"] == "out_of_fold"
        _, details, _ = client.predict("ann", "pw-4-ranking", *astuple(Filters(status="all", copies="groups")),
                                       api_name="/review_start")
        assert "**Near-copies** of this photo in the store" in details
        # all of it from the served LiteRT interpreter: TensorFlow was never loaded (no Grad-CAM warm-up in tests)
        assert "libtensorflow_framework" not in open(f"/proc/{proc.pid}/maps").read()
    finally:
        proc.terminate()
        proc.wait(30)
