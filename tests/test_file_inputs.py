"""Every file input of both apps takes only a file this process stored from a user, whatever JSON surrounds it.

The shapes are generated from Gradio's FileData (each key dropped, altered, misspelled or added; a plain string; in
lists, dicts and gallery items) and sent to every event with a file input of the studio and the tools app, through
``/queue/join`` and, for the named events, ``/run``, ``/api`` and ``/call``: once with the HTTP door and once
without it, where each handler's own rule (:mod:`studio.given`) is all that stands. Nothing on the server is read
(no answer, no picture), an existing and a missing path get the same reply (no oracle), and ``/dev/zero`` in every
shape leaves the server's memory where it was. A real upload, in the same shapes, is still accepted."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import httpx
import pytest
from conftest import EXAMPLES, ROOT
from test_app import free_port

BASE = {"path": None, "url": None, "size": None, "orig_name": "photo.jpg", "mime_type": "image/jpeg",
        "is_stream": False, "meta": {"_type": "gradio.FileData"}}
FILE_KINDS = ("image", "file", "gallery")
# what a file input's value is named in a reply that read it (an answer, a picture, a data set)
READ_MARKS = ("confidences", "Data set **", "/gradio_api/file=", '"answer"', '"probability"')


def shapes(path):
    """``(name, value)`` for each shape of a file input naming ``path``."""
    full = {**BASE, "path": path}
    yield "string", path
    yield "full", full
    for key in BASE:
        if key != "path":
            yield f"without {key}", {k: v for k, v in full.items() if k != key}
    for name, meta in (("meta {}", {}), ("meta None", None), ("meta str", "gradio.FileData"),
                       ("type space", {"_type": "gradio.FileData "}), ("type case", {"_type": "gradio.filedata"}),
                       ("meta extra", {"_type": "gradio.FileData", "x": 1})):
        yield name, {**full, "meta": meta}
    yield "url is path", {**full, "url": path}
    yield "url is file route", {**full, "url": f"/gradio_api/file={path}"}
    yield "stream", {**full, "is_stream": True}
    yield "size -1", {**full, "size": -1}
    yield "orig_name traversal", {**full, "orig_name": "../../etc/passwd"}
    yield "only path", {"path": path}
    yield "path and extra", {"path": path, "foo": "bar"}
    for wrong in ("Path", "path ", "_path", "file", "name"):
        yield f"key {wrong!r}", {**{k: v for k, v in full.items() if k != "path"}, wrong: path}
    yield "in a list", [full]
    yield "in a list of lists", [[full]]
    yield "gallery item", [{"image": full, "caption": None}]
    yield "under value", {"value": full}


def launch(tmp, door: bool):
    """The real app (both apps, one server) in a subprocess, with or without the HTTP door; its own upload folder."""
    data, cache = tmp / "data", tmp / "gradio"
    (data / "datasets" / "private").mkdir(parents=True)
    shutil.copy(EXAMPLES / "cat.jpg", data / "datasets" / "private" / "0.jpg")
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(data), "GRADIO_TEMP_DIR": str(cache)}
    log = open(tmp / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", f"import app; app.main(door={door})"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url, data, cache
        except OSError:
            assert proc.poll() is None, (tmp / "app.log").read_text()
            time.sleep(0.5)
    raise AssertionError("app did not start")


def hwm_mb(pid) -> float:
    """The process's peak resident memory (VmHWM), MB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


class Events:
    """The events with a file input of one app, and how to call each through each route."""

    def __init__(self, http, url, session=None):
        self.http, self.url, self.session = http, url, session  # session: one for every call (else a new one each)
        config = http.get(url + "config").json()
        comps = {c["id"]: c for c in config["components"]}
        self.events, seen = [], set()
        for dep in config["dependencies"]:
            kinds = [comps[i]["type"] for i in dep["inputs"]]
            handler = (re.sub(r"_\d+$", "", str(dep.get("api_name"))), tuple(dep["inputs"]))
            if any(k in FILE_KINDS for k in kinds) and handler not in seen:  # one of each handler's wirings
                seen.add(handler)
                defaults = [("ann" if comps[i]["type"] == "textbox" else comps[i].get("props", {}).get("value"))
                            for i in dep["inputs"]]
                self.events.append((dep["id"], dep.get("api_name"), kinds, defaults,
                                    dep.get("api_visibility", "public") == "public" and dep.get("api_name")))

    def data(self, event, value):
        _, _, kinds, defaults, _ = event
        return [(value if k == "file" and isinstance(value, list) else [value] if k == "file" else value)
                if k in FILE_KINDS else d for k, d in zip(kinds, defaults)]

    def call(self, event, value, route) -> str:
        """The reply to ``value`` on ``event`` through ``route``, as text with event ids and timings taken out."""
        fn_index, api_name, *_ = event
        body = {"data": self.data(event, value)}
        api = self.url + "gradio_api/"
        if route == "join":
            session = self.session or os.urandom(6).hex()
            r = self.post(api + "queue/join", {**body, "fn_index": fn_index, "session_hash": session})
            if r.status_code != 200:
                return f"{r.status_code} {r.text}"
            with self.http.stream("GET", api + "queue/data", params={"session_hash": session}) as s:
                for line in s.iter_lines():
                    if line.startswith("data:") and '"process_completed"' in line:
                        out = json.loads(line[5:])
                        return f"done {out.get('success')} {json.dumps(out.get('output'))}"
            return "no reply"
        if route == "call":
            r = self.post(api + f"call/{api_name}", body)
            if r.status_code != 200:
                return f"{r.status_code} {r.text}"
            return self.http.get(api + f"call/{api_name}/{r.json()['event_id']}").text
        r = self.post(api + f"{route}/{api_name}", body)
        return f"{r.status_code} {r.text}"

    def post(self, url, body):
        """POST ``body`` as JSON, escaped as JSON allows (a lone surrogate is a valid ``\\ud800`` there)."""
        return self.http.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def normal(reply: str, path: str) -> str:
    """``reply`` without what differs between two requests anyway: event ids, timings, and the file name the
    request itself named (a refusal may quote the user's own value, shortened), and quotes around a refusal's
    words (Gradio's routes quote an error's text in some paths and not in others)."""
    reply = reply.replace(os.path.basename(path), "<name>").replace("\"'", '"').replace("'\"", '"')
    return re.sub(r"[0-9a-f]{32}|\d+\.\d+", "#", reply)


@pytest.fixture(scope="module", params=[True, False], ids=["with the door", "handlers alone"])
def served(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    proc, url, data, cache = launch(tmp, door=request.param)
    planted = cache / "planted0" / "0.jpg"  # a regular file in Gradio's cache that no upload stored
    planted.parent.mkdir(parents=True)
    shutil.copy(EXAMPLES / "dog.jpg", planted)
    (cache / "links0").mkdir()
    (cache / "links0" / "0.jpg").symlink_to(data / "datasets" / "private" / "0.jpg")
    (cache / "fifo0").mkdir()
    os.mkfifo(cache / "fifo0" / "0.jpg")
    with httpx.Client(timeout=30) as http:
        yield proc, url, data, cache, http, tmp / "app.log", request.param
    proc.terminate()
    proc.wait(30)


def pairs(data, cache):
    """``(existing, missing)`` server paths: a reply to the first must equal the reply to the second."""
    private = data / "datasets" / "private" / "0.jpg"
    return [(str(private), str(private.with_name("9.jpg"))),
            (str(data / "labels.db"), str(data / "labels9.db")),
            ("/etc/hostname", "/etc/hostname9"),
            (str(cache / "planted0" / "0.jpg"), str(cache / "planted0" / "9.jpg")),
            (str(cache / "links0" / "0.jpg"), str(cache / "links0" / "9.jpg")),
            (str(cache / "fifo0" / "0.jpg"), str(cache / "fifo0" / "9.jpg")),
            (f"{cache}/planted0/../../data/datasets/private/0.jpg", f"{cache}/planted0/../../data/datasets/x.jpg")]


def cases(data, cache):
    """``(shape name, existing path, missing path)``: each shape with one pair in turn, and the plainest shapes with
    every pair."""
    every = pairs(data, cache)
    names = [name for name, _ in shapes("x")]
    for i, name in enumerate(names):
        for existing, missing in (every if name in ("string", "full", "only path") else [every[i % len(every)]]):
            yield name, existing, missing


def test_no_shape_reads_a_server_file_or_tells_whether_one_exists(served):
    proc, url, data, cache, http, *_ = served
    for app in ("", "tools/"):
        events = Events(http, url + app)
        assert len(events.events) >= (2 if app else 5), events.events  # classify, heatmap, uploads; tools' two
        for event in events.events:
            routes = ["join"] + (["run", "api", "call"] if event[4] else [])
            for i, (name, existing, missing) in enumerate(cases(data, cache)):
                for route in routes if i % 3 == 0 else routes[:1]:  # the other routes on a share of the cases
                    said = events.call(event, dict(shapes(existing))[name], route)
                    assert not any(m in said for m in READ_MARKS), (app, event[1], name, route, said[:300])
                    other = events.call(event, dict(shapes(missing))[name], route)
                    assert normal(said, existing) == normal(other, missing), (app, event[1], name, route, existing,
                                                                              said, other)
                    assert str(data) not in said and str(cache) not in said, said[:300]
    assert proc.poll() is None


def test_dev_zero_in_every_shape_leaves_memory_alone(served):
    proc, url, _, _, http, *_ = served

    def every_shape(path):
        for app in ("", "tools/"):
            events = Events(http, url + app, session="zero" + app[:1])  # (each new session holds its own state)
            for event in events.events:
                for _, value in shapes(path):
                    events.call(event, value, "join")

    every_shape("/dev/null9")  # the same requests on a missing path first: what the server needs to answer them
    before = hwm_mb(proc.pid)
    every_shape("/dev/zero")
    grown = hwm_mb(proc.pid) - before
    print(f"peak memory grew by {grown:.1f} MB")
    assert grown < 50
    assert http.get(url + "config").status_code == 200


def test_a_real_upload_is_taken_in_any_shape(served):
    """The refusals come from the rule, not from a broken input: the same shapes around an uploaded file work."""
    _, url, _, _, http, *_ = served
    for app in ("", "tools/"):
        with open(EXAMPLES / "cat.jpg", "rb") as f:
            path = http.post(url + app + "gradio_api/upload", files={"files": ("cat.jpg", f, "image/jpeg")}).json()[0]
        events = Events(http, url + app)
        classify = next(e for e in events.events if e[1] == "classify")
        for name in ("full", "without meta", "only path", "type space", "meta {}"):
            said = events.call(classify, dict(shapes(path))[name], "join")
            assert "cat" in said and "done True" in said, (app, name, said[:300])


def test_hostile_requests_get_short_refusals_in_one_log_line(served):
    """What the attack on the file rule tried besides shapes: a URL to fetch, a path too long to resolve cheaply, a
    lone surrogate, JSON nested past any use, a value echoed back whole; and with the door, a chunked upload that
    would pass the disk check unsized, Gradio's monitoring routes and a queued event run around its queue."""
    proc, url, _, _, http, log, door = served
    events = Events(http, url)
    classify = next(e for e in events.events if e[1] == "classify")
    lines = len(log.read_text().splitlines())
    for path in ("https://example.com/cat.jpg", "a/" * 30_000 + "x.jpg", "\ud800.jpg"):
        start = time.perf_counter()
        said = events.call(classify, {**BASE, "path": path}, "join")
        assert "confidences" not in said and time.perf_counter() - start < 5, (path[:40], said[:200])
    nested = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b', "fn_index": 1, "session_hash": "deep"}'
    r = http.post(url + "gradio_api/queue/join", content=nested, headers={"content-type": "application/json"})
    assert r.status_code >= 400 and len(r.content) < 2000
    r = http.post(url + "gradio_api/queue/join", json={"data": [], "fn_index": "A" * 100_000, "session_hash": "x"})
    assert r.status_code >= 400 and len(r.content) < (2000 if door else 200_000)
    time.sleep(0.5)
    written = log.read_text().splitlines()[lines:]
    assert not any("Traceback" in line for line in written), written[:20]
    if door:  # the door's own rules
        assert len(written) <= 8, written
        chunks = (part for part in [b"--x\r\n", b"x" * 1000, b"\r\n--x--\r\n"])
        r = http.post(url + "gradio_api/upload", content=chunks,
                      headers={"content-type": "multipart/form-data; boundary=x"})
        assert r.status_code == 411
        assert http.get(url + "monitoring/summary").status_code == 404
        with open(EXAMPLES / "cat.jpg", "rb") as f:
            path = http.post(url + "gradio_api/upload", files={"files": ("cat.jpg", f, "image/jpeg")}).json()[0]
        r = http.post(url + "gradio_api/run/classify", json={"data": [{**BASE, "path": path}, 3, None]})
        assert r.status_code == 405 and "queue" in r.text  # a queued event runs within its queue's limits only
    assert proc.poll() is None and http.get(url + "config").status_code == 200
