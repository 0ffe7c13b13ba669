"""The doors of the launched app, tried as an attacker would with ADMIN_PASSWORD set: each attack fails safely
(refused with a message, nothing written, nothing readable), and the queue that /classify uses stays open."""

import hashlib
import json
import shutil
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import EXAMPLES, ROOT
from gradio_client import Client, handle_file
from test_review_app import FILTERS, launch

from labeling.store import LabelStore

PW = "s3cret-pw"


def flat_folder(root, labels):
    root.mkdir(parents=True)
    for key in labels:
        shutil.copy(EXAMPLES / "cat.jpg", root / f"{key}.jpg")
    (root / "results.json").write_text(json.dumps(labels))


def prepare(data):
    flat_folder(data / "datasets" / "flat", {"0": "cat", "1": "cat", "2": "cat"})
    flat_folder(data / "datasets" / "flat2", {"0": "horse", "1": "horse"})
    (data / "datasets" / "deep").mkdir()
    shutil.copy(EXAMPLES / "cat.jpg", data / "datasets" / "deep" / "0.jpg")
    (data / "datasets" / "deep" / "results.json").write_text("[" * 200_000 + "]" * 200_000)
    (data / "runs" / "r1").mkdir(parents=True)
    (data / "runs" / "r1" / "train.log").write_text("secret log")
    (data / "runs" / "r1" / "status.json").write_text('{"state": "failed", "progress": 1.0}')  # listed, ended
    (data / "exports").mkdir()
    (data / "exports" / "results.json").write_text("{}")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doors")
    proc, url, data = launch(tmp, prepare, ADMIN_PASSWORD=PW)
    yield url, data, tmp / "app.log"
    proc.terminate()
    proc.wait(30)


def tree_hash(folder):
    """Every file under ``folder`` (SQLite's -wal/-shm aside) and its content."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(("-wal", "-shm"))):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def store_rows(data):
    store = LabelStore(data / "labels.db")
    return [store.query(f"SELECT * FROM {t}") for t in ("datasets", "images", "events")]


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_no_file_under_data_dir_is_served_and_no_server_path_is_given_away(guarded):
    url, data, _ = guarded
    LabelStore(data / "labels.db")  # the database exists
    for path in ("labels.db", "runs/r1/train.log", "exports/results.json", "datasets/flat/results.json"):
        for form in (data / path, data.resolve() / path):
            status, body = get(f"{url}gradio_api/file={form}")
            assert status == 403 and b"SQLite" not in body and b"secret log" not in body, (path, status)
    config = get(url + "config")[1].decode()
    assert str(data.resolve()) not in config and str(data) not in config
    assert "datasets/flat" in config  # the data sets are listed by name
    assert "served by LiteRT" in config  # the Classify tab's model line names the engine
    # the page says what is open, in both languages (the password is set here: only classifying is open)
    assert "Classifying is open to all; seeing a data set's photos" in config
    assert "分类对所有人开放；查看数据集的照片" in config


def test_export_evaluate_import_and_training_need_the_password_and_write_nothing(guarded):
    url, data, _ = guarded
    client = Client(url, verbose=False)
    before, rows = tree_hash(data), store_rows(data)
    for call in (lambda: client.predict("", api_name="/export"),
                 lambda: client.predict("wrong", "default", "datasets/flat", 0, False, api_name="/evaluate"),
                 lambda: client.predict("", "datasets/flat", api_name="/import"),
                 lambda: client.predict("", "datasets/flat", "efficientnet_lite0", 1e308, 0, 1, "", [],
                                        api_name="/train_start")):
        with pytest.raises(Exception, match="needs the admin password"):
            call()
    assert tree_hash(data) == before and store_rows(data) == rows
    assert not (data / "evaluations").exists()


def test_importing_a_second_flat_folder_keeps_the_first_ones_labels(guarded):
    url, data, _ = guarded
    client = Client(url, verbose=False)
    client.predict("ann", PW, *FILTERS, api_name="/review_start")
    first, _ = client.predict(PW, "datasets/flat", api_name="/import")
    second, _ = client.predict(PW, "datasets/flat2", api_name="/import")
    assert "data set **flat**" in first and "(3 new, 3 labels)" in first
    assert "data set **flat2**" in second and "(2 new, 2 labels)" in second
    store = LabelStore(data / "labels.db")
    assert store.labels(dataset="flat") == {"0": "cat", "1": "cat", "2": "cat"}
    assert store.labels(dataset="flat2") == {"0": "horse", "1": "horse"}
    files = client.predict(PW, api_name="/export")
    exported = {f.rsplit("/", 1)[-1].split("-")[1]: json.loads(open(f).read()) for f in files if f.endswith(".json")}
    assert exported == {"flat": {"0": "cat", "1": "cat", "2": "cat"}, "flat2": {"0": "horse", "1": "horse"}}
    assert not (data / "exports" / "labels.db").exists() and len(list((data / "exports").iterdir())) == 1


def test_names_and_llm_replies_show_as_text_and_long_names_are_refused(guarded):
    url, data, _ = guarded
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="at most 100"):
        client.predict("x" * 101, PW, *FILTERS, api_name="/review_start")
    store = LabelStore(data / "labels.db")
    if not store.datasets():
        client.predict("ann", PW, *FILTERS, api_name="/review_start")
        client.predict(PW, "datasets/flat", api_name="/import")
    tracker = '<img src="http://127.0.0.1:9/t.png"> ![x](http://127.0.0.1:9/m.png)'
    leased = {r["image_id"] for r in store.query("SELECT image_id FROM leases")}
    image = next(r["id"] for r in store.state() if r["id"] not in leased)  # one no other reviewer has open
    store.add_event(image, None, "llm", raw_reply=tracker, status="unparseable")
    store.add_event(image, "cat", "human", author=tracker)
    _, details, _ = client.predict("mal", PW, "all", "all", "all", True, "suspicion", api_name="/review_start")
    assert "<img" not in details and "![x](" not in details
    assert "&lt;img src=" in details and "\\!\\[x\\]\\(" in details


def test_bad_values_are_refused_in_one_log_line(guarded):
    url, data, log = guarded
    client = Client(url, verbose=False)
    client.predict("ann", PW, *FILTERS, api_name="/review_start")
    with pytest.raises(Exception, match="nested too deep"):
        client.predict(PW, "datasets/deep", api_name="/import")
    with pytest.raises(Exception, match="Phase-1 epochs must be a whole number from 0 to 500"):
        client.predict(PW, "datasets/flat", "efficientnet_lite0", 1e308, 0, 1, "", [], api_name="/train_start")
    with pytest.raises(Exception, match="Blocks to fine-tune must be a whole number"):
        client.predict(PW, "datasets/flat", "efficientnet_lite0", 1, 0, 1000, "", [], api_name="/train_start")
    assert not (data / "runs" / "r1").with_name("x").exists() and len(list((data / "runs").iterdir())) == 1
    text = log.read_text()
    assert "Traceback" not in text and "needs the admin password" in text


def test_a_flood_of_costly_requests_never_blocks_classify(guarded):
    url, data, _ = guarded
    errors, answers = [], []

    def classify():
        client = Client(url, verbose=False)
        for _ in range(5):
            try:
                answers.append(client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify"))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors.append(e)

    def flood():
        client = Client(url, verbose=False)
        for _ in range(20):
            client.submit("", "default", "datasets/flat", 0, False, api_name="/evaluate")

    threads = [threading.Thread(target=classify) for _ in range(4)] + [threading.Thread(target=flood)
                                                                      for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(answers) == 20
    assert all(a["label"] == "cat 猫" for a in answers)


def join(url, api_name, path):
    """A raw queue join on ``api_name`` of the app at ``url`` whose file input names ``path`` on the server (what
    gradio_client would send for a file it uploaded); returns the HTTP status and body."""
    config = json.loads(get(url + "config")[1])
    dep = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    kinds = {c["id"]: c["type"] for c in config["components"]}
    data = [{"path": str(path), "meta": {"_type": "gradio.FileData"}} if kinds[i] in ("image", "file") else None
            for i in dep["inputs"]]
    body = json.dumps({"data": data, "fn_index": dep["id"], "session_hash": "probe12345"}).encode()
    request = urllib.request.Request(url + "gradio_api/queue/join", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.parametrize("app_path,api_name", [("", "classify"), ("", "heatmap"), ("", "evaluate_upload"),
                                               ("", "review_upload"), ("tools/", "classify"), ("tools/", "top_k")])
def test_server_paths_as_file_inputs_are_refused_and_never_read(guarded, app_path, api_name):
    url, data, log = guarded
    LabelStore(data / "labels.db")
    for path in (data / "datasets" / "flat" / "0.jpg", data / "labels.db", "/etc/hostname", "/dev/zero",
                 f"{data}/../data/labels.db"):
        status, body = join(url + app_path, api_name, path)
        assert status == 403 and b"uploaded through this app" in body and str(data).encode() not in body, path
        start = time.perf_counter()  # the server still answers: a read of /dev/zero would never end (10 s: busy cores)
        assert get(url + "config")[0] == 200 and time.perf_counter() - start < 10
    assert "refused: a file input that was not uploaded" in log.read_text()
    # a real upload still works, through the same route
    client = Client(url + app_path, verbose=False)
    assert "cat" in str(client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify"))


def classify_while(url, flood, rounds=5, clients=4):
    """Run ``flood()`` in three threads while ``clients`` classify ``rounds`` photos each; returns the classify
    errors and answers."""
    errors, answers = [], []

    def classify():
        client = Client(url, verbose=False)
        for _ in range(rounds):
            try:
                answers.append(client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify"))
            except Exception as e:  # noqa: BLE001 - every failure is counted
                errors.append(e)

    threads = [threading.Thread(target=classify) for _ in range(clients)] + [threading.Thread(target=flood)
                                                                            for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return errors, answers


@pytest.mark.parametrize("api_name,args", [("/export", ("",)), ("/label_cat", ("", *FILTERS)),
                                           ("/review_start", ("x", "", *FILTERS))])
def test_unauthenticated_floods_of_events_that_need_the_password_never_reach_the_queue(guarded, api_name, args):
    url, data, log = guarded
    refused, at_door = [], log.read_text().count("refused at the door")

    def flood():
        # a burst waits its turn at the fair share: a client's joins are decided eight at a time (studio.fair), past
        # gradio_client's own 5 s on a busy machine
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 60})
        for job in [client.submit(*args, api_name=api_name) for _ in range(60)]:
            try:
                job.result(timeout=60)
            except Exception as e:  # noqa: BLE001
                refused.append(str(e))

    errors, answers = classify_while(url, flood)
    assert errors == [] and len(answers) == 20 and all(a["label"] == "cat 猫" for a in answers)
    assert len(refused) == 180 and all("needs the admin password" in r for r in refused), refused[:3]
    assert log.read_text().count("refused at the door") - at_door == 180  # as they joined: none took a place


def test_concurrent_costly_joins_with_the_password_admit_at_most_the_limit(guarded):
    url, data, _ = guarded
    from studio.guard import MAX_COSTLY

    outcomes, barrier = [], threading.Barrier(40)

    def join_once():
        client = Client(url, verbose=False)
        barrier.wait()
        job = client.submit(PW, "default", "datasets/flat", 0, False, api_name="/evaluate")
        try:
            job.result(timeout=300)
            outcomes.append("ran")
        except Exception as e:  # noqa: BLE001
            outcomes.append("busy" if "busy" in str(e) else str(e))

    threads = [threading.Thread(target=join_once) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(400)
    assert len(outcomes) == 40 and set(outcomes) <= {"ran", "busy"}, outcomes
    assert 1 <= outcomes.count("ran") <= MAX_COSTLY


def test_the_tools_app_refuses_bad_input_in_its_own_words(guarded):
    url, data, _ = guarded
    client = Client(url + "tools/", verbose=False)
    with pytest.raises(Exception, match="Give a photo"):
        client.predict(None, api_name="/classify")
    with pytest.raises(Exception, match="k must be a whole number from 1 to 10") as refused:
        client.predict(handle_file(str(EXAMPLES / "cat.jpg")), "abc", api_name="/top_k")
    assert "invalid literal" not in str(refused.value) and str(ROOT) not in str(refused.value)


def test_uploads_are_refused_while_the_disk_is_nearly_full_and_the_store_still_writes(tmp_path):
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    proc, url, data = launch(tmp_path, MIN_FREE_MB=str(free_mb + 1024))  # as if the disk were nearly full
    try:
        client = Client(url, verbose=False)
        with pytest.raises(Exception, match="507|nearly full"):
            client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify")
        assert get(url + "config")[0] == 200
        _, _, progress = client.predict("ann", "", *FILTERS, api_name="/review_start")  # the store writes
        assert "Reviewed 0 / 0" in progress
        assert "refused: an upload while the disk is nearly full" in (tmp_path / "app.log").read_text()
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_data_sets_reviewed_labels_export_needs_the_password_and_holds_only_its_photos(guarded):
    import zipfile

    url, data, _ = guarded
    client = Client(url, verbose=False)
    with pytest.raises(Exception, match="needs the admin password"):
        client.predict("", "datasets/flat", api_name="/export_dataset")
    client.predict("ann", PW, *FILTERS, api_name="/review_start")
    client.predict(PW, "datasets/flat", api_name="/import")
    files = client.predict(PW, "datasets/flat", api_name="/export_dataset")
    folder_zip = next(f for f in files if f.endswith("-imagefolder.zip"))
    assert sorted(zipfile.ZipFile(folder_zip).namelist()) == ["cat/0.jpg", "cat/1.jpg", "cat/2.jpg"]
    hf = zipfile.ZipFile(next(f for f in files if f.endswith("-datasets.zip"))).namelist()
    assert sorted(n.split("/", 1)[1] for n in hf if not n.endswith("/")) == ["0.jpg", "1.jpg", "2.jpg", "metadata.csv"]


def raw_join(url, event, data, session, event_data=None):
    """What the page sends for ``event`` (an api_name of the config, whatever the event's API visibility), by its
    fn_index, in ``session``: ``(status, text)``, the join's refusal, or, once in, every message its stream sent."""
    config = json.loads(get(url + "config")[1])
    dep = next(d for d in config["dependencies"] if d.get("api_name") == event)
    # inputs added later (new trailing filters) get what the page shows at first: their components' values
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    data = [*data, *(values.get(i) for i in dep["inputs"][len(data):])]
    body = json.dumps({"data": data, "fn_index": dep["id"], "session_hash": session, "event_data": event_data})
    request = urllib.request.Request(url + "gradio_api/queue/join", body.encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            event_id = json.loads(r.read())["event_id"]
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    said = []
    with urllib.request.urlopen(f"{url}gradio_api/queue/data?session_hash={session}", timeout=600) as stream:
        for line in stream:
            if line.startswith(b"data:") and (message := json.loads(line[5:])).get("event_id") == event_id:
                said.append(json.dumps(message, ensure_ascii=False))
                if message.get("msg") == "process_completed":
                    break
    return 200, "\n".join(said)


FILE_URL = "gradio_api/file="  # how an answer hands out a picture or a download
SEE = "Seeing a data set's photos and their names needs the admin password"


def refused_at_door(answer, why=SEE):
    status, text = answer
    return status == 422 and why in text and FILE_URL not in text


def answered(answer):
    status, text = answer
    return status == 200 and '"success": true' in text


def test_views_of_a_data_sets_photos_and_names_need_the_password_even_by_fn_index(guarded):
    """Each event that shows a data set's photos, their keys or a run's log, joined by fn_index as the page does
    (an event's private API visibility does not stop that), is refused at the door without the password, with no
    file to fetch, and answers with it."""
    url, data, _ = guarded
    client = Client(url, verbose=False)
    client.predict("ann", PW, *FILTERS, api_name="/review_start")
    for folder in ("datasets/flat", "datasets/demo"):  # photos the model agrees with: the bulk sample holds some
        client.predict(PW, folder, api_name="/import")
    # the bulk-accept sample: 16 thumbnails of the queue
    assert refused_at_door(raw_join(url, "on_preview", ["", 0.5], "nopw00001"))
    assert refused_at_door(raw_join(url, "on_preview", ["wrong", 0.5], "nopw00002"))
    status, text = raw_join(url, "on_preview", [PW, 0.5], "withpw0001")
    assert answered((status, text)) and FILE_URL in text, text[:300]
    # the audit's estimate names the photos reviewers disagreed on
    assert refused_at_door(raw_join(url, "audit_estimate", ["", "datasets/flat", 1.0], "nopw00003"))
    status, text = raw_join(url, "audit_estimate", [PW, "datasets/flat", 1.0], "withpw0002")
    assert answered((status, text)) and "No audit drawn for this data set yet." in text, text[:300]
    # the open queue's photo: on a change of filters, and where the model looked in it
    queue = "queue00001"
    status, text = raw_join(url, "review_start", ["eve", PW, "all", "all", "all", False, "suspicion", "all", False, "",
                                                  None], queue)
    assert answered((status, text)) and FILE_URL in text, text[:300]
    assert refused_at_door(raw_join(url, "on_filters", [None, "", "all", "all", "all", False, "key"], queue))
    status, text = raw_join(url, "on_filters", [None, PW, "all", "all", "all", False, "key"], queue)
    assert answered((status, text)) and FILE_URL in text, text[:300]
    assert refused_at_door(raw_join(url, "on_heat", [None, ""], queue))
    status, text = raw_join(url, "on_heat", [None, PW], queue)
    assert answered((status, text)) and FILE_URL in text, text[:300]
    # no queue open: changing the filters shows nothing, and is not refused
    status, text = raw_join(url, "on_filters", [None, "", "all", "all", "all", False, "key"], "noqueue001")
    assert answered((status, text)) and FILE_URL not in text, text[:300]
    # a confusion cell's photos, with their keys, in the Evaluate tab
    evaluated = "evaluated1"
    status, text = raw_join(url, "evaluate", [PW, "default", "datasets/flat", 0, False, "file"], evaluated)
    assert answered((status, text)), text[:300]
    counts = json.loads(text.splitlines()[-1])["output"]["data"][3]["data"]
    cat = next(i for i, row in enumerate(counts) if row[0].startswith("cat"))
    cell = {"index": [cat, cat + 1], "value": counts[cat][cat + 1]}
    assert refused_at_door(raw_join(url, "on_select", [None, ""], evaluated, cell))
    status, text = raw_join(url, "on_select", [None, PW], evaluated, cell)
    assert answered((status, text)) and FILE_URL in text and " · cat " in text, text[:300]
    # a training run's log (it names the photos it could not read), the latest and one picked
    runs = "Seeing a training run needs the admin password"
    for event, values in (("train_watch", []), ("on_show", ["r1"])):
        status, text = raw_join(url, event, ["", *values], "nopw00004")
        assert refused_at_door((status, text), runs) and "secret log" not in text, (event, text[:300])
        status, text = raw_join(url, event, [PW, *values], "withpw0003")
        assert answered((status, text)) and "secret log" in text, (event, text[:300])
