"""Start the app as a Hugging Face Space would, from a fresh virtual environment; classify, decide, restart.

    python tools/space_check.py

Copies the tracked files to a temporary folder, installs requirements.txt (only) into a new venv, starts
``python app.py`` with CPU only, ``PORT`` / ``GRADIO_SERVER_NAME`` set, an empty ``DATA_DIR`` and a ``PERSIST_DIR``
(a bucket, as a folder), classifies an example through gradio_client, uploads a small data set and decides a label,
and checks that the app wrote nothing outside ``DATA_DIR`` and ``PERSIST_DIR`` (the tree may be read-only on a
Space). Then, as a Space restarts, it stops the app, deletes ``DATA_DIR``, starts it again on the same
``PERSIST_DIR`` and checks that the decision came back, with its author.
"""

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

FILTERS = ("unreviewed", "all", "all", False, "suspicion")

ROOT = Path(__file__).resolve().parent.parent


def snapshot(tree):
    return {p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def start(tree, venv, env):
    """``python app.py`` in ``tree``; returns ``(process, url, seconds to the first page)``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.time()
    proc = subprocess.Popen([str(venv / "bin" / "python"), "app.py"], cwd=tree, env={**env, "PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url, t
        except OSError:
            if proc.poll() is not None or time.time() - t > 180:
                sys.exit("the app did not start")
            time.sleep(0.2)


def decisions(data):
    """The label decisions in a ``DATA_DIR``'s store: ``[(key, label, author)]``."""
    with sqlite3.connect(data / "labels.db") as db:
        return db.execute("SELECT i.key, e.label, e.author FROM events e JOIN images i ON i.id = e.image_id "
                          "WHERE e.source = 'human'").fetchall()


def main():
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp())
    tree, venv, data, bucket = tmp / "space", tmp / "venv", tmp / "data", tmp / "bucket"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes((ROOT / name).read_bytes())
    t = time.time()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", "requirements.txt"], cwd=tree, check=True)
    print(f"installed requirements.txt into a fresh venv in {time.time() - t:.0f} s")
    before = snapshot(tree)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "GRADIO_SERVER_NAME": "127.0.0.1", "DATA_DIR": str(data),
           "PERSIST_DIR": str(bucket), "CUDA_VISIBLE_DEVICES": "", "SPACE_ID": "check/animals10"}
    archive = tmp / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for c in ("cat", "dog", "horse"):
            zf.write(tree / "assets" / "examples" / f"{c}.jpg", f"pets/{c}.jpg")
        zf.writestr("pets/results.json", json.dumps({"cat": "dog", "dog": "dog", "horse": "horse"}))
    proc, url, t = start(tree, venv, env)
    try:
        client = Client(url, verbose=False)
        result = client.predict(handle_file(str(tree / "assets/examples/cat.jpg")), api_name="/classify")
        print(f"started and answered in {time.time() - t:.1f} s: {result['label']}")
        assert result["label"] == "cat 猫", result
        page = urllib.request.urlopen(url).read().decode()
        assert "PERSIST_DIR" in page, "the Review tab does not say where labels are kept"
        client.predict([handle_file(str(archive))], "space-check", "", *FILTERS, api_name="/review_upload")
        client.predict("", *FILTERS, api_name="/label_cat")  # answered: the decision is acknowledged
    finally:
        proc.terminate()
        proc.wait(30)
    decided = decisions(data)
    assert [(label, author) for _, label, author in decided] == [("cat", "space-check")], decided
    after = snapshot(tree)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, f"the app wrote into its tree: {sorted(changed)[:10]}"
    print(f"nothing written outside DATA_DIR and PERSIST_DIR ({len(before)} files unchanged); one decision made")

    shutil.rmtree(data)  # the Space restarts: its disk is empty, the bucket is not
    proc, url, t = start(tree, venv, env)
    try:
        Client(url, verbose=False).predict(handle_file(str(tree / "assets/examples/dog.jpg")), api_name="/classify")
        print(f"restarted on an empty DATA_DIR and answered in {time.time() - t:.1f} s")
    finally:
        proc.terminate()
        proc.wait(30)
    assert decisions(data) == decided, (decisions(data), decided)
    print(f"the decision came back from PERSIST_DIR with its author: {decided}")


if __name__ == "__main__":
    main()
