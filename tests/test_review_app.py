"""The Review tab in a launched app: through gradio_client, with ADMIN_PASSWORD, and once in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import EXAMPLES, ROOT
from gradio_client import Client, handle_file
from test_app import free_port

from labeling.store import LabelStore

FILTERS = ("unreviewed", "all", "all", False, "suspicion")
DOGS = ("unreviewed", "dog", "all", False, "suspicion")  # the queue of images labelled dog


def launch(tmp_path, prepare=None, **env):
    data = tmp_path / "data"
    demo = data / "datasets" / "demo"
    demo.mkdir(parents=True)
    for i, c in enumerate(("cat", "dog", "sheep", "horse")):
        shutil.copy(EXAMPLES / f"{c}.jpg", demo / f"{i}.jpg")
    # LLM-style labels: image 0 (a cat) called "dog", image 2 (a sheep) called null.
    (demo / "results.json").write_text(json.dumps({"0": "dog", "1": "dog", "2": "null", "3": "horse"}))
    if prepare:
        prepare(data)
    port = free_port()
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PORT": str(port), "DATA_DIR": str(data), **env})
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url, data
        except OSError:
            assert proc.poll() is None, (tmp_path / "app.log").read_text()
            time.sleep(0.5)
    raise AssertionError("app did not start")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    proc, url, data = launch(tmp_path_factory.mktemp("review"))
    yield url, data
    proc.terminate()
    proc.wait(30)


def human_events(data):
    return LabelStore(data / "labels.db").query(
        "SELECT i.key, e.label, e.author, e.undoes FROM events e JOIN images i ON i.id = e.image_id "
        "WHERE e.source = 'human' ORDER BY e.id")


def test_review_through_the_api(app):
    url, data = app
    client = Client(url, verbose=False)
    _, details, _ = client.predict("ann", "", *FILTERS, api_name="/review_start")
    assert "Nothing left" in details
    message, _ = client.predict("", "datasets/demo", api_name="/import")
    assert "Imported 4 images into data set **demo** (4 new, 4 labels)" in message
    _, details, progress = client.predict("ann", "", *FILTERS, api_name="/review_start")
    # a wrong label is the top suspect
    assert ("`demo/0.jpg`" in details or "`demo/2.jpg`" in details) and "disagrees" in details
    assert "Reviewed 0 / 4" in progress
    _, details, progress = client.predict("ann", "", *DOGS, api_name="/review_start")
    assert "`demo/0.jpg`" in details and "disagrees" in details  # of the two "dogs", the cat comes first
    _, details, progress = client.predict("", *DOGS, api_name="/label_cat")
    assert "Reviewed 1 / 4" in progress and "`demo/0.jpg`" not in details
    assert human_events(data)[-1] == {"key": "0", "label": "cat", "author": "ann", "undoes": None}
    _, details, progress = client.predict("", *DOGS, api_name="/undo")
    assert "`demo/0.jpg`" in details and "Reviewed 0 / 4" in progress and "### dog" in details
    assert human_events(data)[-1]["undoes"] is not None
    # A second reviewer never gets the image the first one has open.
    other = Client(url, verbose=False)
    _, details_b, _ = other.predict("bob", "", *DOGS, api_name="/review_start")
    assert "`demo/0.jpg`" not in details_b and "`demo/1.jpg`" in details_b
    message, _ = client.predict("", 0.5, api_name="/bulk_accept")
    assert message.startswith("Accepted")
    client.predict("", *DOGS, api_name="/label_cat")  # ann's open image is 0 again: the cat called "dog"
    impact, llm, _, _ = client.predict(api_name="/review_impact")
    rows = {r[0]: r[1:] for r in impact["data"]}
    assert llm["data"] == []  # no LLM answer yet: nothing to score
    assert rows["before review (LLM / imported)"] == [3, "66.7%", "-", "100.0%"]  # no cat label: recall undefined
    assert rows["after review (current)"] == [3, "100.0%", "100.0%", "100.0%"]
    files = client.predict("", api_name="/export")
    exported = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert exported["2"] == "null" and set(exported) == {"0", "1", "2", "3"}
    copy = LabelStore(next(f for f in files if f.endswith(".db")))
    assert copy.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    events = "SELECT id FROM events"
    assert len(copy.query(events)) == len(LabelStore(data / "labels.db").query(events))


def test_decisions_need_a_name(app):
    client = Client(app[0], verbose=False)
    with pytest.raises(Exception, match="Enter your name"):
        client.predict("", *FILTERS, api_name="/label_dog")


def test_admin_password_is_enforced_server_side(tmp_path):
    proc, url, data = launch(tmp_path, ADMIN_PASSWORD="s3cret-pw")
    try:
        client = Client(url, verbose=False)
        for call in (lambda: client.predict("eve", "", *FILTERS, api_name="/review_start"),
                     lambda: client.predict("wrong", *FILTERS, api_name="/label_dog"),
                     lambda: client.predict("", "datasets/demo", api_name="/import"),
                     lambda: client.predict("", 0, api_name="/autolabel"),
                     lambda: client.predict("", "datasets/demo", "efficientnet_lite0", 1, 0, 1,
                                            "", [], api_name="/train_start"),
                     lambda: client.predict("", api_name="/train_cancel"),
                     lambda: client.predict("", None, api_name="/serve")):
            with pytest.raises(Exception, match="admin password|Enter your name"):
                call()
        assert not (data / "runs").exists()  # no training started
        client.predict("ann", "s3cret-pw", *FILTERS, api_name="/review_start")
        message, _ = client.predict("s3cret-pw", "datasets/demo", api_name="/import")
        assert "Imported 4 images" in message
        client.predict("ann", "s3cret-pw", *FILTERS, api_name="/review_start")
        with pytest.raises(Exception, match="admin password"):
            client.predict("nope", *FILTERS, api_name="/label_dog")
        assert human_events(data) == []
        client.predict("s3cret-pw", *FILTERS, api_name="/label_dog")
        assert len(human_events(data)) == 1
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (installed by .ci/run)")
def test_keyboard_shortcut_changes_the_label_in_a_browser(app, page):
    url, data = app
    Client(url, verbose=False)  # the app is up; the data was imported by the API test or is imported here
    page.goto(url)
    page.get_by_role("tab", name="Review labels").click()
    page.get_by_label("Your name (recorded with each decision)").fill("kim")
    page.get_by_label("Status").click()
    page.get_by_role("option", name="all", exact=True).first.click()
    page.get_by_role("button", name="Start reviewing").click()
    page.get_by_text("suspicion rank").wait_for(timeout=60_000)
    before = len([e for e in human_events(data) if e["author"] == "kim"])
    page.locator("body").click(position={"x": 3, "y": 3})
    page.keyboard.press("8")  # sheep
    deadline = time.time() + 20
    while time.time() < deadline and len([e for e in human_events(data) if e["author"] == "kim"]) == before:
        time.sleep(0.3)
    mine = [e for e in human_events(data) if e["author"] == "kim"]
    assert len(mine) == before + 1 and mine[-1]["label"] == "sheep"
    page.keyboard.press("Control+z")
    deadline = time.time() + 20
    while time.time() < deadline and human_events(data)[-1]["undoes"] is None:
        time.sleep(0.3)
    assert human_events(data)[-1]["undoes"] is not None and human_events(data)[-1]["author"] == "kim"
    page.reload()
    page.get_by_role("tab", name="Review labels").wait_for()


def test_autolabel_from_the_app_never_shows_the_key(tmp_path):
    from fake_openai import FakeGLM

    key = "sk-ui-test-KEY-9876543210"
    glm = FakeGLM()
    proc, url, data = launch(tmp_path, ZHIPUAI_API_KEY=key, GLM_BASE_URL=glm.url)
    try:
        client = Client(url, verbose=False)
        client.predict("ann", "", *FILTERS, api_name="/review_start")
        client.predict("", "datasets/demo", api_name="/import")
        message, progress = client.predict("", 3, api_name="/autolabel")
        assert "Auto-labeled 3 of 3" in message
        assert "LLM-labelled 3" in progress
        html = urllib.request.urlopen(url).read().decode() + urllib.request.urlopen(url + "config").read().decode()
        files = client.predict("", api_name="/export")
        exported = "".join(open(f, "rb").read().decode("latin-1") for f in files)  # JSON, CSV, the DB copy
        log = (tmp_path / "app.log").read_text()
        for text in (html, message, progress, exported, log, (data / "labels.db").read_bytes().decode("latin-1")):
            assert key not in text
        assert len(glm.requests) == 3
    finally:
        proc.terminate()
        proc.wait(30)
        glm.stop()


def test_evaluate_scores_the_reviewed_labels_and_says_what_the_review_changed(tmp_path):
    """The demo-like set: photo 0 (a cat) labelled "dog", photo 2 (a sheep) labelled null. A reviewer fixes the
    cat; Evaluate then scores against the reviewed labels by default, says so, and shows the figures before review
    beside them; Review impact's "after" figure is the same number."""
    proc, url, data = launch(tmp_path)
    try:
        client = Client(url, verbose=False)
        client.predict("ann", "", *FILTERS, api_name="/review_start")
        client.predict("", "datasets/demo", api_name="/import")
        client.predict("ann", "", *DOGS, api_name="/review_start")
        _, details, _ = client.predict("", *DOGS, api_name="/label_cat")  # the cat called "dog" comes first
        store = LabelStore(data / "labels.db")
        assert store.labels(dataset="demo")["0"] == "cat"
        before = client.predict("", "default", "datasets/demo", 0, False, "before", api_name="/evaluate")[0]
        after = client.predict("", "default", "datasets/demo", 0, False, api_name="/evaluate")[0]  # the default
        assert "accuracy 66.7% (" in before and "on 3 of 4 images" in before and "before review (imported" in before
        assert "accuracy 100.0% (" in after and "on 3 of 4 images" in after
        assert "reviewed where decided" in after and "1 of 4 photos reviewed, 1 changed by the review" in after
        assert "accuracy 66.7% on 3" in after and "100.0% on 3" in after  # side by side
        assert "**1 were label mistakes**" in after  # the one "mistake" was the label's
        only = client.predict("", "default", "datasets/demo", 0, False, "reviewed_only", api_name="/evaluate")[0]
        assert "on 1 of 1 images" in only and "the 3 not reviewed are left out" in only
        impact, *_ = client.predict(api_name="/review_impact")
        rows = {r[0]: r[1:] for r in impact["data"]}
        assert rows["after review (current)"][:2] == [3, "100.0%"]  # the same computation, the same figure
        assert rows["before review (LLM / imported)"][:2] == [3, "66.7%"]
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_model_trained_on_a_data_set_says_so_in_review_and_evaluate(tmp_path):
    """The leak, seen from both sides: a model whose metadata says it trained on a data set's photos makes the
    review queue say its ranking is blind there, and the Evaluate headline say its figures are optimistic."""
    import numpy as np

    from classifier.modelfile import DEFAULT_MODEL, META_KEY, model_meta
    from classifier.serving import ModelSlot
    from labeling.review import Review
    from settings import Settings
    from studio.evaluate import evaluate_set, summary_markdown
    from studio.review_view import present

    data = tmp_path / "data"
    folder = data / "datasets" / "seen"
    folder.mkdir(parents=True)
    for i, c in enumerate(("cat", "dog", "horse")):
        shutil.copy(EXAMPLES / f"{c}.jpg", folder / f"{i}.jpg")
    (folder / "results.json").write_text(json.dumps({"0": "cat", "1": "dog", "2": "horse"}))
    model = tmp_path / "model" / "seen.npz"  # the default's weights, its card saying where it trained
    model.parent.mkdir()
    with np.load(DEFAULT_MODEL) as npz:
        arrays = {k: npz[k] for k in npz.files if k != META_KEY}
    np.savez_compressed(model, **{META_KEY: json.dumps({**model_meta(DEFAULT_MODEL),
                                                        "trained_on": [str(folder.resolve())]})}, **arrays)
    settings = Settings(data_dir=data, data_roots=(data / "datasets",), model_path=model)
    review = Review(settings, ModelSlot(model))
    _, _, _, session = present(review, review.start("ann", ("unreviewed", "all", "all", False, "key")))
    review.import_folder(session, folder)
    _, details, _, _ = present(review, review.start("ann", ("unreviewed", "all", "all", False, "key"), session))
    assert "The served model was trained on this data set's photos" in details
    report, _ = evaluate_set(settings, "default", "datasets/seen")
    assert "This run was trained on photos of this data set" in summary_markdown(report)
    other = Settings(data_dir=data, data_roots=(data / "datasets",))  # the shipped default never saw them
    report, _ = evaluate_set(other, "default", "datasets/seen")
    assert "trained on photos of this data set" not in summary_markdown(report)


def test_every_acknowledged_decision_survives_a_kill_and_an_empty_disk(tmp_path):
    """kill -9 while a reviewer decides through the API, DATA_DIR deleted (a Space restarting), the app started
    again on the same PERSIST_DIR: the uploaded data set and every acknowledged decision are back, with author and
    time; then the same with the last journal file cut in half."""
    import signal
    import zipfile

    persist = tmp_path / "bucket"
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(40):
            zf.write(EXAMPLES / ("cat.jpg", "dog.jpg")[i % 2], f"testdata/{i}.jpg")
        zf.writestr("results.json", json.dumps({str(i): "dog" for i in range(40)}))  # half of them wrong
    proc, url, data = launch(tmp_path / "a", PERSIST_DIR=str(persist))
    client = Client(url, verbose=False)
    *_, details, _ = client.predict([handle_file(str(archive))], "ann", "", *FILTERS, api_name="/review_upload")
    acknowledged = []
    for _ in range(34):
        key = re.search(r"set-\w+/(\d+)\.jpg", details).group(1)
        _, details, _ = client.predict("", *FILTERS, api_name="/label_cat")
        acknowledged.append(key)  # the answer came: the decision is acknowledged
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    shutil.rmtree(data)  # the host restarted: the local disk is empty

    def restart(where):
        proc, url, data = launch(where, lambda d: shutil.rmtree(d / "datasets"), PERSIST_DIR=str(persist))
        proc.terminate()
        proc.wait(30)
        store = LabelStore(data / "labels.db")
        back = {e["key"]: e for e in store.query(
            "SELECT i.key, e.label, e.author, e.created_at FROM events e JOIN images i ON i.id = e.image_id "
            "WHERE e.source = 'human'")}
        return store, back, data

    store, back, data = restart(tmp_path / "b")
    assert set(acknowledged) <= set(back) and all(back[k]["author"] == "ann" and back[k]["label"] == "cat"
                                                  and back[k]["created_at"] > 0 for k in acknowledged)
    assert store.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    assert len(list((data / "datasets").glob("set-*/*.jpg"))) == 40  # the data set came back too
    last = sorted((persist / "journal").iterdir())[-1]  # a crash cut the last file short
    last.write_bytes(last.read_bytes()[: len(last.read_bytes()) // 2])
    store, back, _ = restart(tmp_path / "c")
    assert len(set(acknowledged) & set(back)) >= len(acknowledged) - 1  # only the cut decision is missing
    assert store.query("PRAGMA integrity_check")[0]["integrity_check"] == "ok"


def test_leave_a_photo_out_through_the_api_then_evaluate_without_it(tmp_path):
    """``/leave_out`` with a reason: guarded as every label decision (ADMIN_PASSWORD), a reason needed, recorded
    under the reviewer, undone by ``/undo``; then ``/evaluate`` scores without the photo and says why, and Review
    impact leaves it out as Evaluate does."""
    by_key = ("unreviewed", "all", "all", False, "key")  # demo/0.jpg first: the cat the LLM called a dog
    proc, url, data = launch(tmp_path, ADMIN_PASSWORD="s3cret-pw")
    try:
        client = Client(url, verbose=False)
        client.predict("ann", "s3cret-pw", *by_key, api_name="/review_start")
        client.predict("s3cret-pw", "datasets/demo", api_name="/import")
        _, details, _ = client.predict("ann", "s3cret-pw", *by_key, api_name="/review_start")
        assert "`demo/0.jpg`" in details
        with pytest.raises(Exception, match="admin password"):
            client.predict("wrong", "several", *by_key, api_name="/leave_out")
        with pytest.raises(Exception, match="Say why the photo is left out"):
            client.predict("s3cret-pw", None, *by_key, api_name="/leave_out")
        assert human_events(data) == []
        _, details, progress = client.predict("s3cret-pw", "several", *by_key, api_name="/leave_out")
        assert "`demo/1.jpg`" in details and "Reviewed 1 / 4" in progress and "1 left out" in progress
        assert human_events(data) == [{"key": "0", "label": "out: several", "author": "ann", "undoes": None}]
        _, details, progress = client.predict("s3cret-pw", *by_key, api_name="/undo")
        assert "`demo/0.jpg`" in details and "Reviewed 0 / 4" in progress and human_events(data)[-1]["undoes"]
        client.predict("s3cret-pw", "several", *by_key, api_name="/leave_out")
        summary = client.predict("s3cret-pw", "default", "datasets/demo", 0, False, api_name="/evaluate")[0]
        assert "on 2 of 3 images" in summary  # photo 0 is not scored (photo 2, labelled none, is not either)
        assert "**Left out by reviewers:** 1 photos, not scored — two or more of the classes 1." in summary
        impact, *_ = client.predict(api_name="/review_impact")  # Review impact leaves it out of both, as Evaluate
        assert [row[:3] for row in impact["data"]] == [["before review (LLM / imported)", 2, "100.0%"],
                                                       ["after review (current)", 2, "100.0%"]]
    finally:
        proc.terminate()
        proc.wait(30)
