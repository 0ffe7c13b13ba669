"""The label store, import/export, undo and leases, and the GLM auto-labeler against a real local HTTP server."""

import csv
import json
import subprocess
import sys
import threading
import time

import pytest
from conftest import FIXTURES, ROOT
from fake_openai import FakeGLM, error, ok, sleep
from PIL import Image

from classifier.classes import CLASSES, NONE
from classifier.labels import LabelFileError, parse_label
from labeling.glm import GLMLabeler
from labeling.llm import BatchStopped, OpenAICompatibleLabeler, autolabel, encode_image, parse_reply
from labeling.providers import labeler_from
from labeling.store import LabelStore

KEY = "sk-test-0123456789-SECRET"


def make_images(folder, keys):
    folder.mkdir(parents=True, exist_ok=True)
    for i, key in enumerate(keys):
        Image.new("RGB", (8, 8), (i * 37 % 256, i * 91 % 256, (i // 7) * 53 % 256)).save(folder / f"{key}.png")
    return folder


@pytest.fixture()
def store(tmp_path):
    return LabelStore(tmp_path / "labels.db")


def test_import_export_round_trip_on_the_original_excerpt(store, tmp_path):
    labels_file = FIXTURES / "seed_results_excerpt.json"
    original = json.loads(labels_file.read_text())
    images = make_images(tmp_path / "testdata", list(original)[:-3] + ["extra"])  # 3 labels lack an image
    result = store.import_folder(images, labels_file)
    assert result["added"] == len(original) - 2 and result["labels_added"] == len(original) - 3
    assert len(result["labels_without_image"]) == 3 and result["images_without_label"] == ["extra"]
    again = store.import_folder(images, labels_file)
    assert again["added"] == 0 and again["labels_added"] == 0  # idempotent
    exported = store.export_results(tmp_path / "out.json")
    for key, value in original.items():
        if key in exported:
            assert parse_label(exported[key]) == parse_label(value), key
    assert exported[next(k for k, v in original.items() if v in ("ragno", "spider") and k in exported)] == "spider"
    assert exported[next(k for k, v in original.items() if v == "null")] == "null"
    assert exported[next(k for k, v in original.items() if v == "quail")] == "quail"  # unresolved, as it came
    assert store.export_history(tmp_path / "history.csv") == len(original) - 3


def test_bad_label_file_imports_nothing(store, tmp_path):
    images = make_images(tmp_path / "imgs", ["1", "2"])
    bad = tmp_path / "results.json"
    bad.write_text('{"1": "cat", "2": ["dog"]}')
    with pytest.raises(LabelFileError, match="label of '2'"):
        store.import_folder(images, bad)
    assert store.stats()["total"] == 0


def test_decisions_accept_correct_undo(store, tmp_path):
    images = make_images(tmp_path / "imgs", ["1", "2", "3"])
    (tmp_path / "r.json").write_text(json.dumps({"1": "cat", "2": "cat", "3": "null"}))
    store.import_folder(images, tmp_path / "r.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.decide(ids["1"], "dog", "ann")
    store.decide(ids["2"], "cat", "ann")
    by_key = {r["key"]: r for r in store.state()}
    assert (by_key["1"]["label"], by_key["1"]["status"]) == ("dog", "corrected")
    assert (by_key["2"]["label"], by_key["2"]["status"]) == ("cat", "accepted")
    assert by_key["3"]["label"] == NONE and by_key["3"]["status"] == "unreviewed"
    assert store.undo("ann") == [ids["2"]]
    assert store.undo("ann") == [ids["1"]]
    by_key = {r["key"]: r for r in store.state()}
    assert by_key["1"]["label"] == "cat" and by_key["1"]["status"] == "unreviewed"  # back to unreviewed
    undo_events = store.query("SELECT label, undoes FROM events WHERE undoes IS NOT NULL ORDER BY id")
    assert [e["label"] for e in undo_events] == ["cat", "cat"] and all(e["undoes"] for e in undo_events)
    batch = store.accept_many([ids["1"], ids["2"], ids["3"]], "bob")
    assert store.stats()["accepted"] == 3 and batch
    assert sorted(store.undo("bob")) == sorted(ids.values())  # one undo reverts the whole batch
    assert store.stats()["reviewed"] == 0
    with pytest.raises(ValueError):
        store.decide(ids["1"], "wolf", "ann")


def test_two_reviewers_get_different_images_and_lose_nothing(store, tmp_path):
    images = make_images(tmp_path / "imgs", [str(i) for i in range(40)])
    store.import_folder(images)
    order = [r["id"] for r in sorted(store.state(), key=lambda r: r["id"])]
    decided = {"ann": [], "bob": []}
    both = threading.Barrier(2)

    def review(name):
        # Each reviewer has its own connection per call, as two app sessions or processes would.
        both.wait()  # start together: on a loaded machine one thread could otherwise do all 40 first
        while True:
            since = store.version()[0]
            todo = [r["id"] for r in LabelStore(store.path).state() if r["status"] == "unreviewed"]
            image = store.claim_next([i for i in order if i in todo], name, since)
            if image is None:
                return
            store.decide(image, "cat", name)
            decided[name].append(image)
            time.sleep(0.005)  # a person takes a moment: lets the other reviewer's claims interleave

    threads = [threading.Thread(target=review, args=(n,)) for n in decided]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(decided["ann"] + decided["bob"]) == sorted(order)  # every image once: none lost, none twice
    assert decided["ann"] and decided["bob"]
    assert store.query("SELECT COUNT(*) AS n FROM events WHERE source = 'human'")[0]["n"] == 40


@pytest.mark.parametrize("reply, label", [
    ("dog", "dog"), ("Dog.", "dog"), ("```json\n{\"label\": \"cat\"}\n```", "cat"), ("这是一只猫。", "cat"),
    ("The photo shows a sheep grazing in a field.", "sheep"), ("ragno", "spider"), ("none", NONE),
    ("无", NONE), ("It could be a cat or a dog.", None), ("I cannot tell.", None), ("", None),
])
def test_parse_reply(reply, label):
    assert parse_reply(reply) == label


@pytest.fixture()
def glm():
    server = FakeGLM()
    yield server
    server.stop()


def setup_batch(tmp_path, n):
    store = LabelStore(tmp_path / "labels.db")
    images = make_images(tmp_path / "imgs", [str(i) for i in range(n)])
    store.import_folder(images)
    payloads = {r["key"]: encode_image(r["file"]) for r in store.state()}
    return store, payloads


def llm_labels(store):
    return {r["key"]: (r["llm_label"], r["llm_status"]) for r in store.state()}


def test_autolabel_replies_retries_and_filters(glm, tmp_path):
    store, b64 = setup_batch(tmp_path, 7)
    glm.script(b64["0"], ok("dog"))
    glm.script(b64["1"], ok("```\ncat\n```"))
    glm.script(b64["2"], ok("这是一头牛"))
    glm.script(b64["3"], ok("I am not sure what this is"))
    glm.script(b64["4"], error(429, "1302", "rate limited"), error(429, "1302", "rate limited"), ok("horse"))
    glm.script(b64["5"], error(400, "1301", "unsafe content"))
    glm.script(b64["6"], ok("", finish_reason="sensitive"))
    labeler = GLMLabeler(KEY, glm.url, "glm-4.6v-flash", backoff=0.01)
    summary = autolabel(store, labeler, concurrency=2)
    assert llm_labels(store) == {"0": ("dog", "ok"), "1": ("cat", "ok"), "2": ("cow", "ok"),
                                 "3": (None, "unparseable"), "4": ("horse", "ok"), "5": (None, "content_filter"),
                                 "6": (None, "sensitive")}
    assert summary["retries"] == 2 and summary["labelled"] == 4 and summary["failed"] == 0
    assert glm.calls[_d(b64["5"])] == 1  # content filter: never retried
    assert all(r["prefixed"] for r in glm.requests) and "squirrel" in glm.requests[0]["text"]
    raw = store.query("SELECT raw_reply, model, prompt_version FROM events WHERE source = 'llm' ORDER BY id")
    assert raw[0]["model"] == "glm-4.6v-flash" and raw[0]["prompt_version"]
    # Resumable: nothing left to do, no request sent.
    before = len(glm.requests)
    assert autolabel(store, labeler)["total"] == 0 and len(glm.requests) == before


def _d(b64):
    import base64
    import hashlib
    return hashlib.sha1(base64.b64decode(b64)).hexdigest()


@pytest.mark.parametrize("response, words", [
    (error(429, "1113", "余额不足"), "no balance"),
    (error(401, "1002", f"invalid api key {KEY}"), "ZHIPUAI_API_KEY"),
    (error(400, "1211", "model not found"), "LLM_MODEL"),
])
def test_autolabel_stops_on_fatal_codes_without_leaking_the_key(glm, tmp_path, response, words):
    store, b64 = setup_batch(tmp_path, 4)
    for payload in b64.values():
        glm.script(payload, response)
    summary = autolabel(store, GLMLabeler(KEY, glm.url, "m", backoff=0.01), concurrency=1)
    assert words in summary["stopped"] and KEY not in json.dumps(summary)
    assert len(glm.requests) == 1  # stopped at once, no retry of a fatal code
    assert all(v == (None, None) for v in llm_labels(store).values())
    headers = {k.lower(): v for k, v in glm.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"  # sent only as the header


def test_timeouts_and_a_server_that_dies_mid_batch_lose_nothing(glm, tmp_path):
    store, b64 = setup_batch(tmp_path, 6)
    glm.script(b64["0"], sleep(2, ok("dog")), ok("cat"))  # first attempt times out, the retry answers
    labeler = GLMLabeler(KEY, glm.url, "m", timeout=0.5, backoff=0.01, max_attempts=2)
    done = autolabel(store, labeler, limit=3, concurrency=1)
    assert done["labelled"] == 3 and llm_labels(store)["0"] == ("cat", "ok")
    glm.stop()  # the server dies; the rest fail after their retries and are not recorded
    dead = autolabel(store, GLMLabeler(KEY, glm.url, "m", timeout=0.5, backoff=0.01, max_attempts=2))
    assert dead["failed"] == 3 and dead["labelled"] == 0
    assert sum(v[1] == "ok" for v in llm_labels(store).values()) == 3  # finished labels kept
    revived = FakeGLM()
    try:
        rerun = autolabel(store, GLMLabeler(KEY, revived.url, "m", backoff=0.01))
        assert rerun["total"] == 3 and rerun["labelled"] == 3  # resumed: only the missing ones
    finally:
        revived.stop()
    assert all(v == ("dog", "ok") or k == "0" for k, v in llm_labels(store).items())


def test_no_key_is_a_clear_error():
    with pytest.raises(BatchStopped, match="ZHIPUAI_API_KEY"):
        GLMLabeler("", "http://127.0.0.1:9/", "m")


def test_cli_import_autolabel_export_without_leaking_the_key(glm, tmp_path):
    images = make_images(tmp_path / "imgs", ["1", "2", "3"])
    db, env = tmp_path / "l.db", {"ZHIPUAI_API_KEY": KEY, "PATH": "/usr/bin:/bin"}

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "labeling", *args], cwd=ROOT, capture_output=True, text=True,
                           env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert KEY not in r.stdout + r.stderr
        return r

    assert cli("import", "--db", str(db), "--images", str(images)).returncode == 0
    r = cli("autolabel", "--db", str(db), "--base-url", glm.url, "--limit", "2", "--backoff", "0.01")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["labelled"] == 2
    r = cli("export", "--db", str(db), "--out", str(tmp_path / "o.json"), "--csv", str(tmp_path / "h.csv"))
    assert r.returncode == 0 and json.loads((tmp_path / "o.json").read_text()) == {"1": "dog", "2": "dog"}
    history = (tmp_path / "h.csv").read_text() + db.read_bytes().decode("latin-1")
    assert KEY not in history
    stats = json.loads(cli("stats", "--db", str(db)).stdout)
    assert stats["total"] == 3 and stats["llm_labelled"] == 2 and stats["reviewed"] == 0


def test_rank_puts_likely_wrong_labels_first():
    import numpy as np

    from classifier.classes import CLASSES
    from labeling.suspects import rank

    def p(c, v):
        r = np.full(10, (1 - v) / 9, np.float32)
        r[CLASSES.index(c)] = v
        return r

    rows = [{"id": 1, "key": "a", "label": "cat"}, {"id": 2, "key": "b", "label": "dog"},
            {"id": 3, "key": "c", "label": "cat"}, {"id": 4, "key": "d", "label": "none"},
            {"id": 5, "key": "e", "label": "other: wolf"}, {"id": 6, "key": "f", "label": "cow"}]
    probs = {1: p("cat", .99), 2: p("cat", .9), 3: p("cat", .4), 4: p("horse", .95), 5: p("dog", .9),
             6: p("cow", .6)}
    ranked = rank(rows, probs, CLASSES, 0.5)
    assert [r["key"] for r in ranked] == ["e", "b", "d", "c", "f", "a"]
    assert ranked[1]["predicted"] == "cat" and ranked[1]["disagree"] and ranked[1]["rank"] == 2
    assert ranked[-1]["p_label"] == pytest.approx(0.99)


def test_suspects_cli_caches_predictions(tmp_path):
    import shutil

    from conftest import EXAMPLES
    images = tmp_path / "imgs"
    images.mkdir()
    for c in ("cat", "dog", "sheep"):
        shutil.copy(EXAMPLES / f"{c}.jpg", images / f"{c}.jpg")
    (tmp_path / "r.json").write_text(json.dumps({"cat": "dog", "dog": "dog", "sheep": "sheep"}))
    db = tmp_path / "l.db"
    run = lambda *a: subprocess.run([sys.executable, "-m", "labeling", *a], cwd=ROOT, capture_output=True,  # noqa
                                    text=True, timeout=300)
    assert run("import", "--db", str(db), "--images", str(images), "--labels", str(tmp_path / "r.json")).returncode == 0
    r = run("suspects", "--db", str(db), "--top", "2", "--out", str(tmp_path / "s.csv"))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert list(rows[0]) == ["dataset", "key", "path", "current_label", "source", "predicted", "p_label",
                             "p_predicted", "rank"]
    assert rows[0]["dataset"] == "imgs" and rows[0]["path"] == "cat.jpg"  # no server path in the file
    assert rows[0]["key"] == "cat" and rows[0]["predicted"] == "cat" and rows[0]["current_label"] == "dog"
    assert len(rows) == 2
    assert LabelStore(db).query("SELECT COUNT(*) AS n FROM predictions")[0]["n"] == 3


def test_evaluation_run_scores_against_the_store_before_and_after_review(tmp_path):
    import shutil

    from conftest import EXAMPLES
    images = tmp_path / "testdata"
    images.mkdir()
    for i, c in enumerate(("cat", "dog", "sheep")):
        shutil.copy(EXAMPLES / f"{c}.jpg", images / f"{i}.jpg")
    (tmp_path / "r.json").write_text(json.dumps({"0": "dog", "1": "dog", "2": "sheep"}))  # the LLM's mistake on 0
    store = LabelStore(tmp_path / "l.db")
    store.import_folder(images, tmp_path / "r.json")
    store.decide(next(r["id"] for r in store.state() if r["key"] == "0"), "cat", "ann")
    accuracy = {}
    for source in ("llm", "current"):
        out = tmp_path / source
        r = subprocess.run([sys.executable, "-m", "evaluation", "run", "--images", str(images), "--db",
                            str(tmp_path / "l.db"), "--label-source", source, "--out", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        accuracy[source] = json.loads((out / "report.json").read_text())["accuracy"]
    assert accuracy == {"llm": pytest.approx(2 / 3), "current": 1.0}


def test_raw_base64_without_data_prefix(glm, tmp_path):
    store, _ = setup_batch(tmp_path, 1)
    autolabel(store, GLMLabeler(KEY, glm.url, "m", data_prefix=False))
    assert glm.requests[0]["prefixed"] is False and llm_labels(store)["0"] == ("dog", "ok")


def test_review_ranks_again_only_when_something_changed_and_sees_other_processes(tmp_path):
    import shutil

    from conftest import EXAMPLES

    from classifier.serving import ModelSlot
    from labeling.review import Filters, Review
    from settings import Settings

    images = tmp_path / "imgs"
    images.mkdir()
    for c in ("cat", "dog", "sheep"):
        shutil.copy(EXAMPLES / f"{c}.jpg", images / f"{c}.jpg")
    (images / "broken.jpg").write_bytes(b"not a photo")
    (tmp_path / "r.json").write_text(json.dumps({"cat": "dog", "dog": "dog", "sheep": "sheep", "broken": "cat"}))
    settings = Settings(data_dir=tmp_path)
    review = Review(settings, ModelSlot(None))
    review.store.import_folder(images, tmp_path / "r.json")
    opened = review.ranked()  # at once: the predictions start in the background
    assert len(opened) == 4
    review.predict_in_background(wait=120)
    assert review.predicting is None and not review._predict_lock.locked()
    first = review.ranked()
    assert first[0]["key"] == "cat" and review.ranked() is first  # browsing: no new ranking
    probs = review._probs[1]
    review.ranked()
    assert review._probs[1] is probs  # nothing new: the broken image (no prediction) is not decoded again
    assert review.store.query("SELECT COUNT(*) AS n FROM predictions")[0]["n"] == 3
    review.queue(Filters(sort="key"))
    assert [r["key"] for r in review.ranked()] == [r["key"] for r in first]  # sorting a queue keeps the ranking
    # Another process (a second app, the CLI) decides: the next reading sees it.
    other = LabelStore(tmp_path / "labels.db")
    other.decide(first[0]["id"], "cat", "someone else")
    again = review.ranked()
    assert again is not first and next(r for r in again if r["key"] == "cat")["status"] == "corrected"
    assert review.store.stats(review.state())["corrected"] == 1
    # Read again image by image (only those with new events), the state stays what a full read gives.
    by_key = {r["key"]: r["id"] for r in first}
    other.decide(by_key["dog"], "none", "someone else")
    other.decide(by_key["sheep"], "sheep", "someone else")
    review.state()
    other.undo("someone else")
    other.accept_many([by_key["broken"]], "ann")
    fields = ("id", "label", "status", "reviewer", "source")
    assert [[r[f] for f in fields] for r in review.state()] == [[r[f] for f in fields] for r in other.state()]
    assert {r["key"]: r["status"] for r in review.state()} == {
        "cat": "corrected", "dog": "corrected", "sheep": "unreviewed", "broken": "accepted"}


def test_two_flat_folders_with_the_same_file_names_keep_their_own_labels(store, tmp_path):
    flat = make_images(tmp_path / "a" / "flat", ["0", "1", "2"])
    flat2 = make_images(tmp_path / "b" / "flat", ["0", "1"])
    (flat / "results.json").write_text(json.dumps({"0": "cat", "1": "cat", "2": "cat"}))
    (flat2 / "results.json").write_text(json.dumps({"0": "horse", "1": "null"}))
    first = store.import_folder(flat, flat / "results.json")
    second = store.import_folder(flat2, flat2 / "results.json")
    assert (first["dataset"], second["dataset"]) == ("flat", "flat-2")  # same folder name, another data root
    assert second["added"] == 2 and second["labels_added"] == 2
    assert store.labels(dataset="flat") == {"0": "cat", "1": "cat", "2": "cat"}  # untouched
    assert store.labels(dataset="flat-2") == {"0": "horse", "1": NONE}
    assert store.labels(dataset=str(flat2)) == store.labels(dataset="flat-2")  # by folder too
    again = store.import_folder(flat, flat / "results.json")
    assert again["dataset"] == "flat" and again["added"] == 0 and again["labels_added"] == 0
    assert sorted(r["uid"] for r in store.state()) == ["flat-2/0.png", "flat-2/1.png", "flat/0.png", "flat/1.png",
                                                       "flat/2.png"]
    with pytest.raises(ValueError, match="2 data sets .*name one"):
        store.export_results(tmp_path / "r.json")
    assert store.export_results(tmp_path / "r.json", "flat-2") == {"0": "horse", "1": "null"}
    with pytest.raises(ValueError, match="no data set 'nope'.*flat, flat-2"):
        store.labels(dataset="nope")


def test_a_store_from_the_previous_version_is_migrated_on_open(tmp_path):
    """labels_v1.db was written by the store before data sets (global keys): two folders, an LLM answer, decisions,
    an undo and a cached prediction. Opened now, everything is where it was, per data set."""
    import shutil
    db = shutil.copy(FIXTURES / "labels_v1.db", tmp_path / "labels.db")
    events_before = LabelStore.__new__(LabelStore)  # read the old file as it is, before migrating
    events_before.path = db
    before = events_before.query("SELECT * FROM events ORDER BY id")
    store = LabelStore(db)
    assert [d["name"] for d in store.datasets()] == ["flat", "classes"]
    state = {r["uid"]: (r["id"], r["label"], r["source"], r["status"]) for r in store.state()}
    assert state == {"flat/0.png": (1, "dog", "human", "corrected"), "flat/1.png": (2, "cat", "llm", "unreviewed"),
                     "flat/2.png": (3, NONE, "import", "unreviewed"),
                     "classes/cat/a.png": (4, "cat", "human", "accepted"),
                     "classes/sheep/a.png": (5, "sheep", "import", "unreviewed")}
    assert store.query("SELECT * FROM events ORDER BY id") == before  # the history, untouched
    assert store.cached_prediction("m1", 1) == [0.1] * 10
    assert store.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    assert store.query("PRAGMA foreign_key_check") == []
    assert store.export_results(tmp_path / "r.json", "flat") == {"0": "dog", "1": "cat", "2": "null"}
    assert LabelStore(db).datasets() == store.datasets()  # opening again migrates nothing more
    store.decide(5, "cow", "cy")
    assert store.state([5])[0]["label"] == "cow"


def test_current_labels_kept_with_each_event_equal_a_full_recompute(store, tmp_path):
    from labeling.store import _refresh
    images = make_images(tmp_path / "imgs", [str(i) for i in range(12)])
    (images / "results.json").write_text(json.dumps({str(i): ("cat", "dog", "null")[i % 3] for i in range(12)}))
    store.import_folder(images, images / "results.json")
    ids = [r["id"] for r in store.state()]
    store.add_event(ids[0], "horse", "llm", raw_reply="horse")
    store.add_event(ids[1], None, "llm", raw_reply="??", status="unparseable")
    store.decide(ids[2], "sheep", "ann")
    store.decide(ids[2], "cow", "ann")
    store.undo("ann")
    store.accept_many(ids[3:9], "bob")
    store.decide(ids[9], "cat", "bob")
    store.undo("bob")
    store.undo("bob")  # the batch
    incremental = store.query("SELECT * FROM current ORDER BY image_id")
    with store.transaction() as con:
        _refresh(con, None)
    assert store.query("SELECT * FROM current ORDER BY image_id") == incremental
    row = {r["id"]: r for r in store.state()}
    assert row[ids[2]]["label"] == "sheep" and row[ids[0]]["label"] == "horse" and row[ids[1]]["llm_status"] == \
        "unparseable" and row[ids[4]]["status"] == "unreviewed" and row[ids[9]]["human_label"] is None


def test_a_label_file_nested_too_deep_is_refused_saying_so(store, tmp_path):
    images = make_images(tmp_path / "imgs", ["1"])
    deep = tmp_path / "results.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(LabelFileError, match="nested too deep"):
        store.import_folder(images, deep)
    assert store.stats()["total"] == 0


def test_the_prompt_version_changes_with_the_prompt():
    """Labels record PROMPT_VERSION; editing the prompt without a new version (and its hash here) fails."""
    import hashlib

    from labeling.llm import PROMPT, PROMPT_SHA256, PROMPT_VERSION
    assert hashlib.sha256(PROMPT.encode()).hexdigest()[:16] == PROMPT_SHA256[PROMPT_VERSION]


def test_a_reviewers_session_runs_without_a_server(tmp_path):
    """labeling.review holds the session's logic (no Gradio): start, decide, previous, undo, bulk accept, errors;
    studio.review_view shows each step as the tab does."""
    from classifier.serving import ModelSlot
    from labeling.review import Review, ReviewError
    from settings import Settings
    from studio.review_view import import_line, present

    filters = ("unreviewed", "all", "all", False, "key")
    images = make_images(tmp_path / "flat", ["0", "1", "2"])
    (images / "results.json").write_text(json.dumps({"0": "cat", "1": "dog", "2": "null"}))
    review = Review(Settings(data_dir=tmp_path / "data"), ModelSlot(None))
    with pytest.raises(ReviewError, match="Enter your name"):
        review.decide(None, "cat", filters)
    session = {"reviewer": "ann", "holder": "ann:1", "history": [], "current": None}
    assert "Imported 3 images into data set **flat**" in import_line(review.import_folder(session, images))
    _, details, progress, session = present(review, review.start("ann", filters))
    assert "`flat/0.png`" in details and "Reviewed 0 / 3" in progress
    _, details, progress, session = present(review, review.decide(session, "horse", filters))
    assert "`flat/1.png`" in details and "Reviewed 1 / 3" in progress
    assert review.store.labels(dataset="flat")["0"] == "horse"
    _, details, _, session = present(review, review.previous(session))
    assert "`flat/0.png`" in details
    undone = review.undo(session)
    _, details, _, session = present(review, undone)
    assert undone.undone == 1 and review.store.labels(dataset="flat")["0"] == "cat"
    with pytest.raises(ReviewError, match="Nothing of yours to undo"):
        review.undo(session)
    with pytest.raises(ReviewError, match="No image qualifies"):
        review.bulk_accept(session, 1.01)


def test_a_reload_and_an_undo_skip_none_of_the_reviewers_own_photos(tmp_path):
    """Two first-hour papercuts: a page reloaded under the same name opens the same top photo (the abandoned page's
    lease is the same person's), and after accept and undo the next key shows the photo the undo left, not one
    past it."""
    from classifier.serving import ModelSlot
    from labeling.review import Review
    from settings import Settings
    from studio.review_view import present

    filters = ("unreviewed", "all", "all", False, "key")
    images = make_images(tmp_path / "flat", ["0", "1", "2"])
    (images / "results.json").write_text(json.dumps({"0": "cat", "1": "dog", "2": "cat"}))
    review = Review(Settings(data_dir=tmp_path / "data"), ModelSlot(None))
    review.import_folder({"reviewer": "ann", "holder": "ann:1", "history": [], "current": None}, images)
    _, first, _, _ = present(review, review.start("ann", filters))
    _, again, _, _ = present(review, review.start("ann", filters))  # a reload: a new session, the same reviewer
    assert "`flat/0.png`" in first and "`flat/0.png`" in again
    _, other, _, _ = present(review, review.start("bob", filters))  # someone else still waits for ann's lease
    assert "`flat/1.png`" in other
    _, _, _, session = present(review, review.start("ann", filters))
    _, shown, _, session = present(review, review.decide(session, "accept", filters))
    assert "`flat/2.png`" in shown  # 1 is bob's
    _, details, _, session = present(review, review.undo(session))
    assert "`flat/0.png`" in details
    _, details, _, session = present(review, review.decide(session, "accept", filters))
    assert details == shown  # the photo shown before the undo, not the one after it


def test_the_session_answers_plain_data_and_its_presenter_says_it_in_the_viewers_words(tmp_path):
    """labeling.review knows no language (a Step, rows, counts, codes; i18n only for its errors' keys);
    studio.review_view says it in the language given at Start, which the session keeps for the key presses after."""
    import ast

    from classifier.serving import ModelSlot
    from labeling.review import Review, Step
    from settings import Settings
    from studio.review_view import present

    filters = ("unreviewed", "all", "all", False, "key")
    images = make_images(tmp_path / "flat", ["0", "1"])
    (images / "results.json").write_text(json.dumps({"0": "cat", "1": "dog"}))
    review = Review(Settings(data_dir=tmp_path / "data"), ModelSlot(None))
    assert review.import_folder(None, images, author="import")["images"] == 2
    ids = {r["key"]: r["id"] for r in review.state()}
    step = review.start("ann", filters)
    assert isinstance(step, Step) and step.image == ids["0"] == step.session["current"] and not step.blind
    assert [r["key"] for r in step.queue] == ["0", "1"] and "lang" not in step.session
    assert review.ranked_how(review.row(step.image, step.queue))["by"] == "model"  # two photos: too few to score
    assert review.counts()["reviewed"] == 0
    _, details, progress, session = present(review, step, "zh")
    assert session["lang"] == "zh" and "`flat/0.png`（数据集 flat）" in details and "已审核 0 / 2" in progress
    _, details, progress, _ = present(review, review.decide(session, "accept", filters))
    assert "`flat/1.png`（数据集 flat）" in details and "已审核 1 / 2" in progress  # still in Start's language
    tree = ast.parse((ROOT / "labeling" / "review.py").read_text())
    words = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module in ("i18n", "escaping")
             for a in n.names}
    assert words == {"Message"}  # its errors' keys: no say(), no plain(), no column names


def test_the_llm_scorecard_scores_each_llm_model_against_the_reviewed_labels(glm, tmp_path):
    from labeling.scorecard import scorecard

    store, b64 = setup_batch(tmp_path, 6)
    for key, reply in zip("012345", ("dog", "cat", "none of these", "I am not sure", "dog", "horse")):
        glm.script(b64[key], ok(reply))
    autolabel(store, GLMLabeler(KEY, glm.url, "glm-4.6v-flash", backoff=0.01))
    ids = {r["key"]: r["id"] for r in store.state()}
    store.add_event(ids["0"], "cat", "llm", author="glm", model="glm-4v-plus", prompt_version="v9", status="ok")
    for key, truth in zip("012345", ("cat", "cat", NONE, "cow", "dog", "cow")):
        store.decide(ids[key], truth, "ann")
    reviewed = {r["id"]: r["human_label"] for r in store.state()}
    predicted = {ids["0"]: "cat", ids["4"]: "dog", ids["5"]: "horse"}  # the classifier agrees with the LLM on 5
    table, confusion, name = scorecard(store.llm_answers(), reviewed, predicted)
    rows = {r[0].split(" · ")[0]: r[1:] for r in table.values.tolist()}
    assert rows["glm-4.6v-flash"] == [6, 0.5, "0.19–0.81", 1, 1, 1]  # 3 of 6 right; 5 is the shared mistake
    assert rows["glm-4v-plus"][:2] == [1, 1.0] and name.startswith("glm-4.6v-flash")
    cells = {r[0]: dict(zip(confusion.columns[1:], r[1:])) for r in confusion.values.tolist()}
    assert cells["cat 猫"]["dog 狗"] == 1 and cells["cat 猫"]["cat 猫"] == 1 and cells["cow 牛"]["horse 马"] == 1
    assert cells["cow 牛"]["no usable answer"] == 1 and confusion.columns[-1] == "no usable answer"
    chinese, _, _ = scorecard(store.llm_answers(), reviewed, predicted, "zh")
    assert list(chinese.columns)[1:3] == ["已审核", "LLM 准确率"]


def test_only_where_the_classifier_is_unsure_asks_the_llm_about_those_alone(glm, tmp_path):
    from classifier.classes import CLASSES
    from labeling.suspects import sure

    store, b64 = setup_batch(tmp_path, 5)
    ids = {r["key"]: r["id"] for r in store.state()}
    sharp = lambda c, p: [p if x == c else (1 - p) / 9 for x in CLASSES]  # noqa: E731
    probs = {ids["0"]: sharp("horse", 0.99), ids["1"]: sharp("cat", 0.99), ids["2"]: sharp("cow", 0.6),
             ids["3"]: sharp("sheep", 0.95)}  # 4 has no prediction yet: it is asked
    skip = sure(probs, CLASSES, 0.9, weak=["cat", "dog"])
    assert skip == {ids["0"], ids["3"]}  # sure and not a weak class; the cat is asked despite 0.99
    for key in "01234":
        glm.script(b64[key], ok("cow"))
    summary = autolabel(store, GLMLabeler(KEY, glm.url, "glm-4.6v-flash", backoff=0.01), skip=skip)
    assert summary["total"] == 3 and summary["skipped"] == 2 and summary["labelled"] == 3
    asked = {k for k, (label, _) in llm_labels(store).items() if label}
    assert asked == {"1", "2", "4"} and len(glm.requests) == 3


def test_where_the_llm_is_not_asked_the_classifiers_answer_is_the_label_marked_as_its_own(tmp_path):
    import shutil

    from conftest import EXAMPLES

    from classifier.predictor import Classifier
    from labeling.suspects import label_sure, model_key, predict_store, sure

    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in EXAMPLES.glob("*.jpg"):
        shutil.copy(photo, folder / photo.name)
    store = LabelStore(tmp_path / "labels.db")
    store.import_folder(folder)  # flat photos, no label file: nothing labelled yet
    clf = Classifier.load()
    predict_store(store, clf)
    skip = sure(store.cached_predictions(model_key(clf)), clf.classes, 0.9, weak=["cat", "dog"])
    assert 5 <= len(skip) <= 8  # the ten examples are easy; the cat and the dog are always asked
    assert label_sure(store, clf, skip) == len(skip) and label_sure(store, clf, skip) == 0  # once
    rows = {r["id"]: r for r in store.state()}
    assert all(rows[i]["label"] == rows[i]["key"] and rows[i]["source"] == "model" for i in skip)
    assert all(rows[i]["label"] is None for i in set(rows) - skip)


def test_the_history_csv_never_starts_a_formula_but_keeps_what_was_written(store, tmp_path):
    images = make_images(tmp_path / "=set", ["=1+2", "a", "b", "c"])
    store.import_folder(images, None)
    ids = [r["id"] for r in store.state()]
    names = ["=cmd|' /C calc'!A0", "+SUM(A1)", "-2+3", "@x"]
    for image, name in zip(ids, names):
        store.add_event(image, "cat", "human", author=name)
    store.export_history(tmp_path / "history.csv")
    rows = list(csv.DictReader(open(tmp_path / "history.csv", newline="")))
    assert sorted(r["author"] for r in rows) == sorted("'" + n for n in names)
    assert {r["key"] for r in rows} == {"'=1+2", "a", "b", "c"} and {r["dataset"] for r in rows} == {"'=set"}
    cells = [v for r in rows for v in r.values()]
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in cells)
    assert store.labels(dataset="=set") == {"=1+2": "cat", "a": "cat", "b": "cat", "c": "cat"}  # the store unchanged


def test_any_openai_compatible_endpoint_labels_by_configuration(glm, tmp_path):
    """A local server (as Ollama or vLLM) with no key, named by the LLM_* settings: the same auto-label, its labels
    recorded under the provider and model; a 429 is retried, a 401 stops with advice in the role's words."""
    from settings import Settings

    settings = Settings.from_env({"LLM_BASE_URL": glm.url, "LLM_MODEL": "qwen2.5vl:7b"})
    assert settings.llm_provider == "openai" and settings.llm_ready  # not Zhipu's URL: the generic provider
    labeler = labeler_from(settings, backoff=0.01)
    assert type(labeler) is OpenAICompatibleLabeler
    store, b64 = setup_batch(tmp_path, 3)
    glm.script(b64["0"], ok("dog"))
    glm.script(b64["1"], error(429, None, "slow down"), ok("cat"))
    glm.script(b64["2"], ok("a sheep, I think"))
    summary = autolabel(store, labeler, concurrency=1)
    assert summary["labelled"] == 3 and summary["retries"] == 1
    assert llm_labels(store) == {"0": ("dog", "ok"), "1": ("cat", "ok"), "2": ("sheep", "ok")}
    rows = store.query("SELECT DISTINCT author, model FROM events WHERE source = 'llm'")
    assert [(r["author"], r["model"]) for r in rows] == [("openai", "qwen2.5vl:7b")]
    store2, b64 = setup_batch(tmp_path / "b", 1)
    glm.script(b64["0"], error(401, None, "bad key"))
    assert "Check LLM_API_KEY" in autolabel(store2, labeler)["stopped"]


def test_the_llm_settings_read_their_role_names_and_the_older_ones():
    from settings import Settings

    old = Settings.from_env({"ZHIPUAI_API_KEY": "k1", "GLM_MODEL": "glm-4v", "GLM_COST_PER_IMAGE": "0.5"})
    assert (old.llm_provider, old.llm_api_key, old.llm_model, old.llm_cost_per_image) == ("glm", "k1", "glm-4v", 0.5)
    new = Settings.from_env({"LLM_API_KEY": "k2", "ZHIPUAI_API_KEY": "k1", "LLM_PROVIDER": "openai",
                             "LLM_BASE_URL": "https://dashscope.aliyuncs.com/compatible-mode/v1",
                             "LLM_MODEL": "qwen-vl-max"})
    assert (new.llm_provider, new.llm_api_key, new.llm_model) == ("openai", "k2", "qwen-vl-max")
    assert not Settings.from_env({}).llm_ready  # GLM without a key: auto-label stays off, and says why


def test_the_labels_of_a_data_set_follow_the_reviewers_and_leave_the_classifiers_own_out(store, tmp_path):
    from labeling.labelset import labels_of

    images = make_images(tmp_path / "set", ["a", "b", "c", "d", "e"])
    (tmp_path / "set" / "results.json").write_text(json.dumps({"a": "dog", "b": "cat", "c": "null"}))
    store.import_folder(images, tmp_path / "set" / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.add_event(ids["d"], "horse", "model", author="clf", model="clf")  # the classifier's own: never scores
    store.decide(ids["a"], "cat", "ann")  # the LLM-style mistake, fixed
    store.decide(ids["c"], "none", "ann")  # none is a label like the others: accepted as it was
    reviewed = labels_of(store, "set")  # the default once anything was decided
    assert reviewed.source == "reviewed" and reviewed.labels == {"a": "cat", "b": "cat", "c": "none"}
    assert (reviewed.photos, reviewed.reviewed, reviewed.changed, reviewed.unlabelled, reviewed.model_only) == \
        (5, 2, 1, 1, 1)
    assert labels_of(store, "set", "before").labels == {"a": "dog", "b": "cat", "c": "none"}
    assert labels_of(store, "set", "reviewed_only").labels == {"a": "cat", "c": "none"}
    with pytest.raises(ValueError, match="unknown label source"):
        labels_of(store, "set", "llm-ish")


def test_reviewed_labels_export_as_an_imagefolder_and_a_datasets_folder(store, tmp_path):
    import zipfile

    from datasets import load_dataset

    from labeling.formats import hf_folder, imagefolder_zip

    make_images(tmp_path / "set" / "src", ["a", "b", "c", "d"])
    (tmp_path / "set" / "results.json").write_text(json.dumps({"src/a": "dog", "src/b": "cat", "src/c": "null",
                                                               "src/d": "wolf"}))
    store.import_folder(tmp_path / "set", tmp_path / "set" / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.decide(ids["src/a"], "cat", "ann")  # the LLM's dog was a cat
    counts = imagefolder_zip(store, "set", tmp_path / "if.zip")
    names = sorted(zipfile.ZipFile(tmp_path / "if.zip").namelist())
    assert names == ["cat/src__a.png", "cat/src__b.png", "none/src__c.png"]  # "wolf" is no class: left out, counted
    assert (counts["written"], counts["left_out"], counts["reviewed"]) == (3, 1, 1)
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(tmp_path / "if.zip").extractall(unpacked)
    assert sorted(p.name for p in unpacked.iterdir()) == ["cat", "none"]  # one folder per class
    hf_folder(store, "set", tmp_path / "hf")
    loaded = load_dataset("imagefolder", data_dir=str(tmp_path / "hf"), split="train")
    rows = sorted(zip(loaded["key"], loaded["label"], loaded["label_before_review"], loaded["decided_by"]))
    assert len(loaded) == 3 and rows == [("src/a", "cat", "dog", "ann"), ("src/b", "cat", "cat", None),
                                         ("src/c", "none", "none", None)]
    assert loaded[0]["image"].size == (8, 8)  # the photos themselves, read by datasets


def test_a_blind_audit_estimates_the_wrong_labels_left_and_two_reviewers_agreement(tmp_path):
    """The demo set (100 photos, 10 labels wrong): an audit drawn among the unreviewed photos is labelled blind (no
    label shown, accept refused), the estimate's interval holds the true count left, two reviewers' kappa is shown,
    and a photo they disagree on counts as unreviewed until a third decides."""
    import csv
    import shutil

    from classifier.serving import ModelSlot
    from labeling.audit import estimate
    from labeling.labelset import labels_of
    from labeling.review import Review, ReviewError
    from settings import Settings
    from studio.review_view import audit_line, present

    demo = ROOT / "assets" / "demo"
    folder = tmp_path / "data" / "datasets" / "demo"
    shutil.copytree(demo, folder, ignore=shutil.ignore_patterns("sources.csv"))
    truth = {r["file"].split(".")[0]: r["class"] for r in csv.DictReader(open(demo / "sources.csv"))}
    settings = Settings(data_dir=tmp_path / "data", data_roots=(tmp_path / "data" / "datasets",))
    review = Review(settings, ModelSlot(settings.model_path))
    audit = ("audit", "all", "all", False, "suspicion")
    _, _, _, ann = present(review, review.start("ann", audit))
    review.import_folder(ann, folder)
    review.predict_in_background(wait=120)
    assert review.audit_draw(folder, 30) == 30
    _, details, _, ann = present(review, review.start("ann", audit, ann))
    assert "Audit photo" in details and "LLM said" not in details and "**Model:**" not in details  # blind
    assert not any(c in details for c in CLASSES)  # not its label, not anyone's answer
    with pytest.raises(ReviewError, match="labelled blind"):
        review.decide(ann, "accept", audit)
    keys = {r["id"]: r["key"] for r in review.store.state()}
    seen = []
    while ann["current"] is not None:  # ann labels every audit photo, correctly
        seen.append(ann["current"])
        *_, ann = present(review, review.decide(ann, truth[keys[ann["current"]]], audit))
    assert len(seen) == 30
    # going back stays blind: neither previous nor undo shows an audit photo's label
    for step in (review.previous(ann), review.undo(ann)):
        _, details, _, ann = present(review, step)
        assert step.blind and "Audit photo" in details and not any(c in details for c in CLASSES)
    present(review, review.decide(ann, truth[keys[ann["current"]]], audit))  # the undone decision, made again
    state, photos = review.audit_state(folder)
    wrong_left = sum(1 for r in review.store.state() if r["human_label"] is None
                     and r["machine_label"] != truth[r["key"]])
    assert state["decided"] == 30 and state["low"] <= wrong_left <= state["high"] and photos == 100
    line = audit_line(state, photos, 50.0, "en")
    assert "Wrong labels left" in line and "Target met" in line  # 50% is surely met
    assert "Target not met" in audit_line(state, photos, 0.0, "en")
    _, _, _, bob = present(review, review.start("bob", audit))  # a second reviewer labels the same photos blind
    first = True
    while bob["current"] is not None:
        label = truth[keys[bob["current"]]]
        if first:  # one disagreement
            label, disputed, first = ("cat" if label != "cat" else "dog"), bob["current"], False
        *_, bob = present(review, review.decide(bob, label, audit))
    state, _ = review.audit_state(folder)
    assert state["pairs"] == 30 and state["disputed"] == [disputed] and 0.9 < state["kappa"] < 1
    # the disputed photo keeps its label from before review, not bob's answer (both may be "cat": an LLM's mistake)
    before = next(r for r in review.store.state() if r["id"] == disputed)["machine_label"]
    assert labels_of(review.store, "demo").labels.get(keys[disputed]) in (before, None)
    assert labels_of(review.store, "demo").reviewed == 29  # the disputed photo is unreviewed until a third decides
    _, _, _, cy = present(review, review.start("cy", audit))
    assert cy["current"] == disputed  # only the disputed photo is left for a third reviewer
    present(review, review.decide(cy, truth[keys[disputed]], audit))
    assert labels_of(review.store, "demo").reviewed == 30
    assert estimate([(100, 30, 0)])["high"] < estimate([(100, 30, 15)])["low"]  # more found wrong, more left


def test_the_journal_brings_every_decision_back_and_refuses_what_it_cannot_keep(tmp_path):
    from labeling.journal import Journal, JournalError

    journal = Journal(tmp_path / "persist")
    store = LabelStore(tmp_path / "a" / "labels.db", journal)
    images = make_images(tmp_path / "set", ["0", "1", "2"])
    (tmp_path / "set" / "results.json").write_text(json.dumps({"0": "dog", "1": "dog", "2": "null"}))
    store.import_folder(images, tmp_path / "set" / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.decide(ids["0"], "cat", "ann")
    store.decide(ids["2"], "sheep", "bob")
    store.undo("bob")
    store.accept_many([ids["1"]], "ann")
    files = sorted(journal.events.iterdir())
    kept = {p.name: p.read_bytes() for p in files}
    store.decide(ids["2"], "horse", "ann")
    assert all((journal.events / n).read_bytes() == b for n, b in kept.items())  # written once, never touched
    assert len(list(journal.events.iterdir())) == len(files) + 1  # one new file a decision, no temporary names
    restored = LabelStore(tmp_path / "b" / "labels.db")  # an empty DATA_DIR
    assert restored.restore(journal) == len(store.query("SELECT id FROM events"))
    fields = "SELECT id, image_id, label, source, author, undoes, created_at FROM events ORDER BY id"
    assert restored.query(fields) == store.query(fields)  # authors and times too
    assert restored.labels(dataset="set") == store.labels(dataset="set") == {"0": "cat", "1": "dog", "2": "horse"}
    # the last file cut in half by a crash: skipped with a log line, the rest comes back
    last = sorted(journal.events.iterdir())[-1]
    last.write_bytes(last.read_bytes()[: len(last.read_bytes()) // 2])
    again = LabelStore(tmp_path / "c" / "labels.db")
    again.restore(journal)
    assert again.labels(dataset="set") == {"0": "cat", "1": "dog", "2": "none"}  # all but the cut decision
    assert again.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    # an unwritable journal: the decision is refused, not half-made
    broken = LabelStore(tmp_path / "a" / "labels.db", Journal(tmp_path / "not-a-folder"))
    (tmp_path / "not-a-folder").write_text("a file where the folder should be")
    with pytest.raises(JournalError):
        broken.decide(ids["1"], "cow", "ann")
    assert store.labels(dataset="set")["1"] == "dog"


def test_what_is_pushed_to_the_hub_is_the_reviewed_labels_and_their_history(store, tmp_path):
    from labeling.hub import HubPush, snapshot
    from settings import Settings

    images = make_images(tmp_path / "set", ["0", "1", "2"])
    (tmp_path / "set" / "results.json").write_text(json.dumps({"0": "dog", "1": "cat", "2": "null"}))
    store.import_folder(images, tmp_path / "set" / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.decide(ids["0"], "cat", "=ann")
    counts = snapshot(store, tmp_path / "hub")
    assert counts == {"set": 3}
    assert json.loads((tmp_path / "hub" / "labels" / "set.json").read_text()) == {"0": "cat", "1": "cat", "2": "null"}
    rows = list(csv.DictReader(open(tmp_path / "hub" / "labels" / "set.csv")))
    assert rows[0]["label"] == "cat" and rows[0]["label_before_review"] == "dog" and rows[0]["decided_by"] == "'=ann"
    assert rows[0]["decided_at"] and not rows[1]["decided_at"]
    history = list(csv.DictReader(open(tmp_path / "hub" / "history.csv")))
    assert any(h["author"] == "'=ann" for h in history)  # the history is spreadsheet-safe
    assert sorted(p.name for p in (tmp_path / "hub").rglob("*") if p.is_file()) == \
        ["README.md", "history.csv", "set.csv", "set.json"]  # labels only: no photos, no database
    with pytest.raises(ValueError, match="HF_DATASET_REPO"):
        HubPush(Settings(data_dir=tmp_path), store).push_now()  # not configured: said plainly


def test_a_photo_left_out_is_a_decision_with_a_reason_an_author_an_undo_and_a_journal(tmp_path):
    """Leaving a photo out is a reviewer's label event (``out: <reason>``): only the four reasons, its author kept,
    undone like any decision, in the history, and back with its reason when a restart replays the journal."""
    from labeling.journal import Journal
    from labeling.labelset import labels_of
    from labeling.store import REASONS

    journal = Journal(tmp_path / "persist")
    store = LabelStore(tmp_path / "a" / "labels.db", journal)
    images = make_images(tmp_path / "set", ["0", "1", "2", "3"])
    (tmp_path / "set" / "results.json").write_text(json.dumps({"0": "dog", "1": "dog", "2": "cat", "3": "null"}))
    store.import_folder(images, tmp_path / "set" / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    assert REASONS == ("several", "cannot_tell", "not_animal", "copy")
    with pytest.raises(ValueError, match="not a reason"):
        store.leave_out(ids["0"], "blurry", "ann")
    with pytest.raises(ValueError, match="not a label"):
        store.decide(ids["0"], "out: blurry", "ann")  # only the four reasons, whichever way it comes
    store.leave_out(ids["0"], "several", "ann")  # a dog herding sheep
    store.leave_out(ids["1"], "copy", "bob")
    store.leave_out(ids["3"], "not_animal", "bob")
    rows = {r["key"]: r for r in store.state()}
    assert (rows["0"]["status"], rows["0"]["reviewer"], rows["0"]["label"]) == ("left_out", "ann", "out: several")
    stats = store.stats()
    assert (stats["reviewed"], stats["left_out"], stats["accepted"], stats["corrected"]) == (3, 3, 0, 0)
    assert stats["left_out_reasons"] == {"several": 1, "not_animal": 1, "copy": 1}
    assert store.undo("bob") == [ids["3"]]  # bob's latest: the photo is back, unreviewed, with its label
    assert ({r["key"]: r["status"] for r in store.state()}["3"], store.labels(dataset="set")["3"]) == \
        ("unreviewed", "none")
    store.export_history(tmp_path / "history.csv")
    history = [(h["key"], h["label"], h["author"], bool(h["undoes"])) for h in csv.DictReader(open(tmp_path /
                                                                                                  "history.csv"))]
    assert history[-4:] == [("0", "out: several", "ann", False), ("1", "out: copy", "bob", False),
                            ("3", "out: not_animal", "bob", False), ("3", "none", "bob", True)]
    restored = LabelStore(tmp_path / "b" / "labels.db")  # a restart on an empty disk: replayed from the journal
    assert restored.restore(journal) == len(store.query("SELECT id FROM events"))
    fields = "SELECT id, image_id, label, source, author, undoes, created_at FROM events ORDER BY id"
    assert restored.query(fields) == store.query(fields)
    assert labels_of(restored, "set").left_out == labels_of(store, "set").left_out == {"0": "several", "1": "copy"}
    assert restored.stats()["left_out_reasons"] == {"several": 1, "copy": 1}


def test_a_photo_left_out_is_neither_scored_nor_trained_on_nor_exported_as_a_class(store, tmp_path):
    """The labels every reader takes (labeling.labelset) leave it out, with its reason; the ImageFolder zip and
    results.json have no place for it, the ``datasets`` metadata and the Hub's CSV say why; Train's photos (what
    the Train tab passes: the labels' ``labels``) lack it; the queue ranks it last, a decided photo."""
    import zipfile

    import numpy as np
    from datasets import load_dataset

    from labeling.formats import hf_folder, imagefolder_zip
    from labeling.hub import snapshot
    from labeling.labelset import labels_of
    from labeling.suspects import rank
    from training.data import discover

    images = make_images(tmp_path / "set", ["a", "b", "c", "d"])
    (images / "results.json").write_text(json.dumps({"a": "dog", "b": "cat", "c": "cat", "d": "horse"}))
    store.import_folder(images, images / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.decide(ids["b"], "dog", "ann")
    store.leave_out(ids["a"], "several", "ann")
    store.leave_out(ids["c"], "copy", "ann")
    reviewed = labels_of(store, "set")
    assert reviewed.labels == {"b": "dog", "d": "horse"} and reviewed.left_out == {"a": "several", "c": "copy"}
    assert (reviewed.reviewed, reviewed.changed, reviewed.unlabelled) == (3, 1, 0)  # left out: not a relabelling
    assert reviewed.summary()["left_out_reasons"] == {"several": 1, "copy": 1}
    assert labels_of(store, "set", "reviewed_only").labels == {"b": "dog"}
    before = labels_of(store, "set", "before")  # as if no one had reviewed: nothing left out
    assert before.labels == {"a": "dog", "b": "cat", "c": "cat", "d": "horse"} and before.left_out == {}
    assert sorted(i["key"] for i in discover([images], reviewed.labels)) == ["b.png", "d.png"]  # Train
    assert store.export_results(tmp_path / "r.json") == {"b": "dog", "d": "horse"}
    imagefolder_zip(store, "set", tmp_path / "if.zip")
    assert sorted(zipfile.ZipFile(tmp_path / "if.zip").namelist()) == ["dog/b.png", "horse/d.png"]
    hf_folder(store, "set", tmp_path / "hf")
    loaded = load_dataset("imagefolder", data_dir=str(tmp_path / "hf"), split="train")
    assert sorted(zip(loaded["key"], loaded["label"], loaded["left_out"])) == \
        [("a", None, "several"), ("b", "dog", None), ("c", None, "copy"), ("d", "horse", None)]
    snapshot(store, tmp_path / "hub")
    assert json.loads((tmp_path / "hub" / "labels" / "set.json").read_text()) == {"b": "dog", "d": "horse"}
    hub = {r["key"]: (r["label"], r["left_out"]) for r in csv.DictReader(open(tmp_path / "hub" / "labels" / "set.csv"))}
    assert hub == {"a": ("", "several"), "b": ("dog", ""), "c": ("", "copy"), "d": ("horse", "")}
    probs = {i: np.eye(len(CLASSES), dtype=np.float32)[CLASSES.index("cow")] for i in ids.values()}  # all doubted
    assert [r["key"] for r in rank(store.state(), probs, CLASSES, 0.5)][-2:] == ["a", "c"]
    probs[ids["b"]] = np.eye(len(CLASSES), dtype=np.float32)[CLASSES.index("dog")]  # b's label sure: still before
    assert [r["key"] for r in rank(store.state(), probs, CLASSES, 0.5)][-2:] == ["a", "c"]


def test_evaluate_scores_without_the_photos_left_out_and_says_how_many_and_why(tmp_path):
    """The Evaluate tab's path (store labels -> evaluate_folder -> its headline): the photos reviewers left out are
    not scored (neither against the reviewed labels nor, beside them, against those before review), and the
    headline says how many and why, in both languages."""
    import shutil

    from conftest import EXAMPLES

    from settings import Settings
    from studio.evaluate import evaluate_set, summary_markdown

    data = tmp_path / "data"
    folder = data / "datasets" / "four"
    folder.mkdir(parents=True)
    for i, c in enumerate(("cat", "dog", "sheep", "horse")):
        shutil.copy(EXAMPLES / f"{c}.jpg", folder / f"{i}.jpg")
    (folder / "results.json").write_text(json.dumps({"0": "dog", "1": "dog", "2": "sheep", "3": "horse"}))
    store = LabelStore(data / "labels.db")
    store.import_folder(folder, folder / "results.json")
    ids = {r["key"]: r["id"] for r in store.state()}
    store.leave_out(ids["0"], "several", "ann")  # the cat the LLM called a dog: left out, not relabelled
    store.leave_out(ids["2"], "copy", "ann")
    report, out = evaluate_set(Settings(data_dir=data, data_roots=(data / "datasets",)), "default", "datasets/four")
    assert (report["n_images"], report["n_scored"], report["accuracy"]) == (2, 2, 1.0)
    assert report["label_source"]["left_out_reasons"] == {"several": 1, "copy": 1}
    assert report["review"]["before"]["n_scored"] == 2  # beside them, the labels before review on the same photos
    with open(out / "per_image.csv") as f:
        assert sorted(r["key"] for r in csv.DictReader(f)) == ["1", "3"]
    text = summary_markdown(report)
    assert "**Left out by reviewers:** 2 photos, not scored — two or more of the classes 1 · a copy of another " \
        "photo 1." in text, text
    chinese = summary_markdown(report, "zh")
    assert "**审核者排除：** 2 张照片，不计分 — 有两种或更多类别 1 · 是另一张照片的副本 1。" in chinese, chinese


def test_leave_a_photo_out_in_a_review_session_and_from_the_command_line(tmp_path):
    """labeling.review: a reason is needed, the photo shows as left out and why, the progress counts it, the queue
    has a status for it, undo brings it back; ``python -m labeling leave-out`` does the same, in JSON."""
    from classifier.serving import ModelSlot
    from labeling.review import Review, ReviewError
    from settings import Settings
    from studio.review_view import label_words, present

    filters = ("unreviewed", "all", "all", False, "key")
    images = make_images(tmp_path / "flat", ["0", "1", "2"])
    (images / "results.json").write_text(json.dumps({"0": "cat", "1": "dog", "2": "null"}))
    review = Review(Settings(data_dir=tmp_path / "data"), ModelSlot(None))
    review.import_folder(None, images, author="import")
    _, details, _, session = present(review, review.start("ann", filters))
    with pytest.raises(ReviewError, match="Say why the photo is left out"):
        review.leave_out(session, None, filters)
    _, details, progress, session = present(review, review.leave_out(session, "cannot_tell", filters))
    assert "`flat/1.png`" in details and "Reviewed 1 / 3" in progress and "1 left out" in progress
    assert "left out: cannot tell 1" in progress  # per label, in words
    assert [r["key"] for r in review.queue(("left_out", "all", "all", False, "key"))] == ["0"]
    _, details, _, session = present(review, review.previous(session))
    assert "### left out: cannot tell" in details and "by ann" in details
    _, details, progress, session = present(review, review.undo(session))
    assert "`flat/0.png`" in details and "Reviewed 0 / 3" in progress and "### cat" in details
    assert label_words("out: not_animal", "zh") == "已排除：不是动物照片"

    def cli(*args):
        r = subprocess.run([sys.executable, "-m", "labeling", *args, "--db", str(tmp_path / "data" / "labels.db")],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr

    code, out, err = cli("leave-out", "--key", "2", "--reason", "not_animal", "--author", "cy")
    assert code == 0, err
    assert {k: v for k, v in json.loads(out).items() if k != "event"} == \
        {"dataset": "flat", "key": "2", "reason": "not_animal", "author": "cy"}
    code, out, _ = cli("stats")
    assert json.loads(out)["left_out_reasons"] == {"not_animal": 1}
    code, _, err = cli("leave-out", "--key", "1", "--reason", "blurry", "--author", "cy")
    assert code == 2 and "invalid choice: 'blurry'" in err
    code, _, err = cli("leave-out", "--key", "nope", "--reason", "copy", "--author", "cy")
    assert code == 1 and "no photo 'nope'" in err
    code, out, _ = cli("leave-out", "--undo", "--author", "cy")
    assert json.loads(out) == {"undone": ["flat/2.png"], "author": "cy"}
    assert review.store.stats()["left_out"] == 0
