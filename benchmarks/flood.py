"""Fair under floods: 4 clients classify a photo at rest, then while one client floods the queue, side by side in
one run of the real app (``python app.py``, with ``ADMIN_PASSWORD`` set as on a public Space).

    python benchmarks/flood.py [--joins 2000] [--clients 4] [--rest 10] [--concurrency 32]

The flooder is what an attacker would write: raw HTTP POSTs to ``/gradio_api/queue/join``, all under one
``session_hash``, cycling through every password-free event (each event the app takes without the admin password:
a first join of each, under a session of its own, tells which), an uploaded photo as every image input. It runs in
a process of its own (its CPU is this machine's, as the app's and the classifiers'), twice:

- *never reading*: it never opens its event stream, as a script that only wants to fill the queue;
- *reading*: it keeps its event stream open, so its events finish and it can join again (its fair share, used
  in full all the while).

Meanwhile the clients classify ``tests/fixtures/chelsea.png`` through ``gradio_client`` (upload, join, answer),
one call after another, until the flood is over. Printed: per phase, the classify calls, the share answered and
their median, against the median at rest; and what the flood's joins got (HTTP statuses).
Goals: at least 99% answered, median at most 2x at rest.
"""

import argparse
import asyncio
import collections
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "tests" / "fixtures" / "chelsea.png"


def launch(folder: Path, password: str):
    """``python app.py`` on a free port with an empty ``DATA_DIR`` (the demo data set installs itself) and
    ``ADMIN_PASSWORD``; returns the process and its URL once it answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(folder / "data"), "ADMIN_PASSWORD": password,
           "GRADIO_ANALYTICS_ENABLED": "False", "TF_CPP_MIN_LOG_LEVEL": "2", "NO_ALBUMENTATIONS_UPDATE": "1"}
    env.setdefault("MODEL_CACHE", str(folder / "tflite"))
    log = open(folder / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(600):
        try:
            httpx.get(url + "config", timeout=2).raise_for_status()
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise SystemExit((folder / "app.log").read_text()) from None
            time.sleep(0.5)
    raise SystemExit("the app did not start")


def password_free_events(url: str) -> tuple[list[tuple[int, list]], list]:
    """Every event with a server function that the app takes without the password, with data for its inputs
    (components' own values; an uploaded photo for images), found as an attacker would: one join of each, each
    under a session of its own, and those refused for the password (422) left out. Also the uploaded photo."""
    config = httpx.get(url + "config").json()
    with open(PHOTO, "rb") as f:
        path = httpx.post(url + "gradio_api/upload", files={"files": (PHOTO.name, f, "image/png")}).json()[0]
    photo = {"path": path, "orig_name": PHOTO.name, "meta": {"_type": "gradio.FileData"}}
    components = {c["id"]: c for c in config["components"]}

    def value(i):
        kind = components[i]["type"]
        if kind == "image":
            return photo
        return None if kind in ("file", "gallery", "state") else components[i].get("props", {}).get("value")

    events = []
    for dep in config["dependencies"]:
        if not dep.get("backend_fn"):
            continue
        data = [value(i) for i in dep["inputs"]]
        probe = httpx.post(url + "gradio_api/queue/join", timeout=30,
                           json={"data": data, "fn_index": dep["id"], "session_hash": "probe" + secrets.token_hex(6)})
        if probe.status_code != 422:  # 422: the door refused it for the password
            events.append((dep["id"], data))
    return events, photo


async def read_stream(client: httpx.AsyncClient, url: str, session: str, stop: asyncio.Event):
    """The flooder's event stream, kept open (Gradio closes it whenever nothing of the session is pending)."""
    while not stop.is_set():
        try:
            async with client.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session},
                                     timeout=None) as response:
                async for _ in response.aiter_lines():
                    if stop.is_set():
                        return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)


async def flood_async(url: str, events: list, joins: int, concurrency: int, read: bool) -> dict:
    """``joins`` joins cycling through ``events``, ``concurrency`` at a time, under one session; the statuses."""
    session, statuses, queue = "flood" + secrets.token_hex(6), collections.Counter(), asyncio.Queue()
    for n in range(joins):
        queue.put_nowait(events[n % len(events)])
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        stop = asyncio.Event()
        reader = asyncio.create_task(read_stream(client, url, session, stop)) if read else None

        async def worker():
            while not queue.empty():
                fn_index, data = queue.get_nowait()
                try:
                    r = await client.post(url + "gradio_api/queue/join",
                                          json={"data": data, "fn_index": fn_index, "session_hash": session})
                    statuses[r.status_code] += 1
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        stop.set()
        if reader:
            reader.cancel()
    return dict(statuses)


def flood(url, events, joins, concurrency, read, out):
    """The flooder's process: its statuses go to ``out`` (a multiprocessing queue)."""
    out.put(asyncio.run(flood_async(url, events, joins, concurrency, read)))


def classify_until(url: str, clients: int, done, least: int) -> list[float | None]:
    """``clients`` gradio_client clients classify the photo, one call after another each, until ``done()`` and
    at least ``least`` calls each; each call's seconds, or None when it failed or took over a minute."""
    from gradio_client import Client, handle_file

    results, lock = [], threading.Lock()

    def one_client():
        client, n = Client(url, verbose=False), 0
        while n < least or not done():
            start = time.perf_counter()
            try:
                answer = client.submit(handle_file(str(PHOTO)), api_name="/classify").result(timeout=60)
                took = time.perf_counter() - start if "label" in answer else None
            except Exception:  # noqa: BLE001 - a refusal, an error or a timeout: not answered
                took = None
            with lock:
                results.append(took)
            n += 1

    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def under_flood(url, events, args, read: bool):
    """The classify calls made while one flood runs, and the flood's statuses."""
    out = multiprocessing.Queue()
    flooder = multiprocessing.Process(target=flood, args=(url, events, args.joins, args.concurrency, read, out))
    flooder.start()
    calls = classify_until(url, args.clients, lambda: not flooder.is_alive(), 1)
    statuses = out.get(timeout=600)
    flooder.join()
    return calls, statuses


def row(name: str, calls: list, rest_median: float | None) -> str:
    answered = [c for c in calls if c is not None]
    median = statistics.median(answered) if answered else float("nan")
    ratio = f"{median / rest_median:.2f}x" if rest_median else "1.00x"
    return (f"| {name} | {len(calls)} | {len(answered) / max(1, len(calls)):.1%} | {median * 1000:.0f} ms | "
            f"{ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--joins", type=int, default=2000, help="joins per flood (default: %(default)s)")
    ap.add_argument("--clients", type=int, default=4, help="classifying clients (default: %(default)s)")
    ap.add_argument("--rest", type=int, default=10, help="calls per client at rest (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=32, help="the flooder's joins in flight (default: "
                                                                 "%(default)s)")
    ap.add_argument("--log", help="keep the app's log here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = launch(Path(tmp), secrets.token_hex(8))
        try:
            events, _ = password_free_events(url)
            classify_until(url, args.clients, lambda: True, 2)  # warm: the model, the clients' first connection
            rest = classify_until(url, args.clients, lambda: True, args.rest)
            rest_median = statistics.median(c for c in rest if c is not None)
            floods = {read: under_flood(url, events, args, read) for read in (False, True)}
            log = (Path(tmp) / "app.log").read_text()
            if args.log:
                Path(args.log).write_text(log)
        finally:
            proc.terminate()
            proc.wait(30)
    print(f"\nCPU cores: {os.cpu_count()}; {len(events)} password-free events flooded, {args.joins} joins a flood "
          f"under one session, {args.concurrency} at a time; {args.clients} clients classify {PHOTO.name}\n")
    print("| phase | classify calls | answered | median | against at rest |\n|---|---|---|---|---|")
    print(row("at rest", rest, None))
    for read, name in ((False, "flood, never reading its events"), (True, "flood, reading its events")):
        print(row(name, floods[read][0], rest_median))
    for read, name in ((False, "never reading"), (True, "reading")):
        print(f"\nthe flood's joins ({name}): " + ", ".join(f"HTTP {k}: {v}" for k, v in
                                                          sorted(floods[read][1].items(), key=str)))
    print(f"app log: {log.count('refused:')} lines of refusals, {log.count('Traceback')} tracebacks")
    print("goals: at least 99% answered, median at most 2x at rest")


if __name__ == "__main__":
    main()
