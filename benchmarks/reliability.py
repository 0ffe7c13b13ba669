"""Load and faults against the launched app, loopback only, bounded in count and time.

    python benchmarks/reliability.py [--seconds 60] [--concurrency 32]

1. Load: ``--concurrency`` clients classify the example photos through gradio_client for ``--seconds``; every
   answer is checked; p50/p95 latency and throughput are printed.
2. kill -9 during GLM auto-labeling (against the local fake OpenAI-compatible server of the tests): after the
   restart the label database passes ``PRAGMA integrity_check`` and no label the server had answered is missing,
   beyond the requests in flight.
3. kill -9 of the app and of the training process during a run: after the restart the run shows failed and the
   served model is unchanged.
4. Two reviewers on the same queue at once: every image decided exactly once, none lost or duplicated.
5. Queue flood, with ADMIN_PASSWORD set: ``--flood`` evaluate requests join at once, without the password and then
   with it, while 4 clients classify; /classify's p50 and errors, and how the evaluate requests were answered.
6. Two flat folders with the same file names imported one after the other: each keeps its own labels.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_openai import FakeGLM  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from classifier.classes import CLASSES  # noqa: E402
from labeling.store import LabelStore  # noqa: E402

EXAMPLES = ROOT / "assets" / "examples"
FILTERS = ("unreviewed", "all", "all", False, "key")


def start(data, **env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PORT": str(port), "DATA_DIR": str(data),
                                                            "TF_CPP_MIN_LOG_LEVEL": "2", **env})
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the app did not start")


def stop(proc, hard=False):
    proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
    proc.wait(60)


def load(url, seconds, concurrency):
    photos = [(str(EXAMPLES / f"{c}.jpg"), c) for c in CLASSES]
    latencies, wrong, errors = [], [], []
    lock, deadline = threading.Lock(), time.time() + seconds

    def worker(i):
        client = Client(url, verbose=False)
        n = i
        while time.time() < deadline:
            path, label = photos[n % len(photos)]
            n += 1
            t = time.perf_counter()
            try:
                result = client.predict(handle_file(path), api_name="/classify")
            except Exception as e:  # counted, the run goes on
                with lock:
                    errors.append(str(e)[:100])
                continue
            with lock:
                latencies.append(time.perf_counter() - t)
                if result["label"].split()[0] != label:
                    wrong.append(label)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    start_time = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - start_time
    return {"requests": len(latencies), "errors": len(errors), "wrong": len(wrong),
            "p50_ms": 1000 * float(np.percentile(latencies, 50)), "p95_ms": 1000 * float(np.percentile(latencies, 95)),
            "per_second": len(latencies) / elapsed}


def photos_folder(folder, n):
    folder.mkdir(parents=True)
    for i in range(n):
        im = Image.open(EXAMPLES / f"{CLASSES[i % 10]}.jpg").convert("RGB")
        im.rotate(i * 7 % 360).save(folder / f"{i}.jpg")  # different bytes for each image
    return folder


def kill_during_autolabel(tmp):
    glm = FakeGLM()
    glm.delay = 0.4
    data = tmp / "autolabel"
    photos_folder(data / "datasets" / "many", 40)
    env = {"ZHIPUAI_API_KEY": "sk-reliability", "GLM_BASE_URL": glm.url}
    proc, url = start(data, **env)
    client = Client(url, verbose=False)
    client.predict("ann", "", *FILTERS, api_name="/review_start")
    client.predict("", "datasets/many", api_name="/import")
    client.submit("", 0, api_name="/autolabel")
    time.sleep(4)
    stop(proc, hard=True)
    answered = glm.answered
    store = LabelStore(data / "labels.db")
    integrity = store.query("PRAGMA integrity_check")[0]["integrity_check"]
    stored = store.stats()["llm_labelled"]
    proc, url = start(data, **env)
    client = Client(url, verbose=False)
    client.predict("ann", "", *FILTERS, api_name="/review_start")
    message, _ = client.predict("", 0, api_name="/autolabel")
    final = LabelStore(data / "labels.db").stats()["llm_labelled"]
    stop(proc)
    glm.stop()
    return {"answered_before_kill": answered, "stored_before_kill": stored, "integrity": integrity,
            "lost_in_flight": answered - stored, "after_rerun": final, "of": 40}


def kill_during_training(tmp):
    data = tmp / "train"
    tiny = data / "datasets" / "tiny"
    for c in CLASSES:
        (tiny / c).mkdir(parents=True)
        im = Image.open(EXAMPLES / f"{c}.jpg").convert("RGB")
        for j, v in enumerate([im, ImageOps.mirror(im), im.rotate(8), im.rotate(-8)]):
            v.save(tiny / c / f"{j}.jpg")
    proc, url = start(data)
    client = Client(url, verbose=False)
    client.submit("", "datasets/tiny", "efficientnet_lite0", 3, 200, 1, api_name="/train_start")
    run = None
    for _ in range(600):
        runs = list((data / "runs").glob("*/status.json"))
        if runs and json.loads(runs[0].read_text()).get("phase") == 2:
            run = runs[0].parent
            break
        time.sleep(0.5)
    pid = json.loads((run / "status.json").read_text())["pid"]
    stop(proc, hard=True)
    os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    proc, url = start(data)
    client = Client(url, verbose=False)
    line = client.predict("", api_name="/train_watch")[0]  # no password set: open to all
    cat = client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify")["label"]
    stop(proc)
    return {"run_state_after_restart": "failed" if "· failed ·" in line else line[:80],
            "run_wrote_model": (run / "model.keras").exists(), "served_model_answers_cat": cat == "cat 猫"}


def two_reviewers(tmp):
    data = tmp / "review"
    folder = photos_folder(data / "datasets" / "queue", 30)
    (folder / "results.json").write_text(json.dumps({str(i): CLASSES[i % 10] for i in range(30)}))
    proc, url = start(data)
    decided = {"ann": [], "bob": []}
    first = Client(url, verbose=False)
    first.predict("ann", "", *FILTERS, api_name="/review_start")
    first.predict("", "datasets/queue", api_name="/import")

    def review(name):
        client = Client(url, verbose=False)
        _, details, _ = client.predict(name, "", *FILTERS, api_name="/review_start")
        while "Nothing left" not in details:
            key = details.split("`")[1]
            decided[name].append(key)
            _, details, _ = client.predict("", *FILTERS, api_name="/accept")

    threads = [threading.Thread(target=review, args=(n,)) for n in decided]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = LabelStore(data / "labels.db").query("SELECT image_id, COUNT(*) AS n FROM events "
                                                  "WHERE source = 'human' GROUP BY image_id")
    stop(proc)
    both = decided["ann"] + decided["bob"]
    return {"images": 30, "ann": len(decided["ann"]), "bob": len(decided["bob"]),
            "decided_twice": len(both) - len(set(both)), "missing": 30 - len(set(both)),
            "events_per_image_max": max(e["n"] for e in events)}


def queue_flood(tmp, n):
    """``n`` evaluate joins at once (without the password, then with it) while 4 clients classify."""
    data = tmp / "flood"
    for c in CLASSES:  # a labelled set (class folders), so an admitted evaluation really runs
        photos_folder(data / "datasets" / "big" / c, 20)
    proc, url = start(data, ADMIN_PASSWORD="pw")
    out = {}
    for who, password in (("unauthenticated", ""), ("with the password", "pw")):
        times, errors, stop_at = [], [], time.time() + 600

        def classify(times=times, errors=errors):
            client = Client(url, verbose=False)
            for _ in range(10):
                start_at = time.perf_counter()
                try:
                    client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify")
                    times.append(time.perf_counter() - start_at)
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    errors.append(str(e)[:80])

        flooder = Client(url, verbose=False)
        jobs = [flooder.submit(password, "default", "datasets/big", 0, False, api_name="/evaluate") for _ in range(n)]
        threads = [threading.Thread(target=classify) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        answers = {}
        for job in jobs:
            try:
                job.result(timeout=max(1, stop_at - time.time()))
                kind = "ran"
            except Exception as e:  # noqa: BLE001
                text = str(e)
                kind = ("refused: password" if "admin password" in text else "refused: busy" if "busy" in text
                        else text[:60])
            answers[kind] = answers.get(kind, 0) + 1
        out[who] = {"evaluate_joins": n, "answers": answers, "classify_ok": len(times),
                    "classify_errors": len(errors), "classify_p50_ms": round(1000 * float(np.median(times)), 1)
                    if times else None, "errors_sample": errors[:3]}
    stop(proc)
    return out


def two_folders(tmp):
    """Two flat folders whose files share names: the second import must not touch the first's labels."""
    data = tmp / "folders"
    for name, label in (("flat", "cat"), ("flat2", "horse")):
        folder = photos_folder(data / "datasets" / name, 3)
        (folder / "results.json").write_text(json.dumps({str(i): label for i in range(3)}))
    proc, url = start(data)
    client = Client(url, verbose=False)
    client.predict("ann", "", *FILTERS, api_name="/review_start")
    replies = [client.predict("", f"datasets/{name}", api_name="/import")[0] for name in ("flat", "flat2")]
    store = LabelStore(data / "labels.db")
    stop(proc)
    return {"replies": replies, "flat": store.labels(dataset="flat"), "flat2": store.labels(dataset="flat2")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--flood", type=int, default=300, help="evaluate requests sent at once (default: %(default)s)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        proc, url = start(tmp / "load")
        print("load:", json.dumps(load(url, args.seconds, args.concurrency)), flush=True)
        stop(proc)
        print("kill -9 during auto-labeling:", json.dumps(kill_during_autolabel(tmp)), flush=True)
        print("kill -9 during training:", json.dumps(kill_during_training(tmp)), flush=True)
        print("two reviewers at once:", json.dumps(two_reviewers(tmp)), flush=True)
        print("queue flood:", json.dumps(queue_flood(tmp, args.flood)), flush=True)
        print("two flat folders:", json.dumps(two_folders(tmp), ensure_ascii=False), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
