"""Start the app as a Hugging Face Space would, from a fresh virtual environment, and classify one photo.

    python tools/space_check.py

Copies the tracked files to a temporary folder, installs requirements.txt (only) into a new venv, starts
``python app.py`` with CPU only and ``PORT`` / ``GRADIO_SERVER_NAME`` set, classifies an example through
gradio_client, and checks that the app wrote nothing outside ``DATA_DIR`` (the tree may be read-only on a Space).
"""

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def snapshot(tree):
    return {p.relative_to(tree).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in tree.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def main():
    from gradio_client import Client, handle_file

    tmp = Path(tempfile.mkdtemp())
    tree, venv, data = tmp / "space", tmp / "venv", tmp / "data"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes((ROOT / name).read_bytes())
    t = time.time()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", "requirements.txt"], cwd=tree, check=True)
    print(f"installed requirements.txt into a fresh venv in {time.time() - t:.0f} s")
    before = snapshot(tree)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "DATA_DIR": str(data), "CUDA_VISIBLE_DEVICES": "", "SPACE_ID": "check/animals10"}
    t = time.time()
    proc = subprocess.Popen([str(venv / "bin" / "python"), "app.py"], cwd=tree, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() - t > 180:
                    sys.exit("the app did not start")
                time.sleep(0.5)
        result = Client(url, verbose=False).predict(handle_file(str(tree / "assets/examples/cat.jpg")),
                                                    api_name="/classify")
        print(f"started and answered in {time.time() - t:.1f} s: {result['label']}")
        assert result["label"] == "cat 猫", result
        page = urllib.request.urlopen(url).read().decode()
        assert "wiped when it restarts" in page, "the persistence banner is missing on a Space without /data"
    finally:
        proc.terminate()
        proc.wait(30)
    after = snapshot(tree)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not changed, f"the app wrote into its tree: {sorted(changed)[:10]}"
    print(f"nothing written outside DATA_DIR ({len(before)} files unchanged); DATA_DIR holds "
          f"{sorted(p.name for p in data.iterdir())}")


if __name__ == "__main__":
    main()
