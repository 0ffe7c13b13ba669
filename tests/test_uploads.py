"""Data sets brought through the browser: every layout lands whole through the launched app, every bad upload is
refused with its message and leaves DATA_DIR as it was, and the demo set finds its own wrong labels first."""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from conftest import EXAMPLES, ROOT
from gradio_client import Client, handle_file
from test_doors import PW, store_rows, tree_hash
from test_review_app import FILTERS, launch

import uploads
from labeling.store import LabelStore
from uploads import UploadError, add_dataset

PHOTO = (EXAMPLES / "cat.jpg").read_bytes()


def make_zip(path, entries, links=()):
    """A zip of ``{name: bytes}``, plus symbolic links ``(name, target)``."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return path


def make_tar(path, entries, links=()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


def flat(n=3, labels=None):
    entries = {f"testdata/{i}.jpg": PHOTO for i in range(n)}
    entries["results.json"] = json.dumps(labels or {str(i): "cat" for i in range(n)}).encode()
    return entries


@pytest.mark.parametrize("name, build, message", [
    ("slip.zip", lambda p: make_zip(p, {"../evil.jpg": PHOTO}), "outside its folder"),
    ("abs.zip", lambda p: make_zip(p, {"/tmp/evil.jpg": PHOTO}), "outside its folder"),
    ("slip.tar.gz", lambda p: make_tar(p, {"a/../../evil.jpg": PHOTO}), "outside its folder"),
    ("link.zip", lambda p: make_zip(p, {"0.jpg": PHOTO}, [("1.jpg", "/etc/passwd")]), "symbolic link"),
    ("link.tar.gz", lambda p: make_tar(p, {"0.jpg": PHOTO}, [("1.jpg", "/etc/passwd")]), "link"),
    ("bomb.zip", lambda p: make_zip(p, {"0.jpg": PHOTO, "big.jpg": bytes(3 * 2**20)}), "at most 2 MB"),
    ("bomb.tar.gz", lambda p: make_tar(p, {"0.jpg": PHOTO, "big.jpg": bytes(3 * 2**20)}), "at most 2 MB"),
    ("many.zip", lambda p: make_zip(p, {f"{i}.jpg": PHOTO for i in range(7)}), "at most 5"),
    ("empty.zip", lambda p: make_zip(p, {"notes.txt": b"hello"}), "no photos"),
    ("badjson.zip", lambda p: make_zip(p, {"0.jpg": PHOTO, "results.json": b"{'0': cat"}), "not valid JSON"),
    ("missing.zip", lambda p: make_zip(p, flat(2, {"0": "cat", "1": "cat", "7": "dog"})), "names 1 files"),
    ("broken.zip", lambda p: p.write_bytes(b"PK\x03\x04 not really"), "not a readable zip"),
    ("broken.tar.gz", lambda p: p.write_bytes(b"\x1f\x8b not really"), "not a readable tar"),
    ("latin1.tar", lambda p: latin1_tar(p), "not valid UTF-8"),
    ("clash.zip", lambda p: make_zip(p, {"cat/x.jpg": PHOTO, "cat/x.jpg/y.jpg": PHOTO}), "a file and a folder"),
    ("clash2.zip", lambda p: make_zip(p, {"cat/x.jpg/y.jpg": PHOTO, "cat/x.jpg": PHOTO}), "a file and a folder"),
    ("twice.zip", lambda p: make_zip(p, {"0.jpg": PHOTO, "./0.jpg": PHOTO}), "Two files are named"),
    ("long.zip", lambda p: make_zip(p, {"a" * 300 + ".jpg": PHOTO}), "too long"),
    ("crc.zip", lambda p: bad_crc_zip(p), "is damaged"),
])
def test_a_bad_upload_is_refused_and_leaves_nothing_behind(tmp_path, monkeypatch, name, build, message):
    monkeypatch.setattr(uploads, "MAX_FILES", 5)  # a small limit, the same code path as the real one
    target = tmp_path / "datasets"
    target.mkdir()
    (target / "existing").mkdir()
    (target / "existing" / "0.jpg").write_bytes(PHOTO)
    before = tree_hash(target)
    archive = tmp_path / name
    build(archive)
    with pytest.raises(UploadError, match=message) as refused:
        add_dataset([archive], target, max_mb=2)
    assert tree_hash(target) == before and sorted(p.name for p in target.iterdir()) == ["existing"]
    assert str(tmp_path) not in str(refused.value)  # no server path in what the user reads


def latin1_tar(path):
    """A tar whose one name is Latin-1 bytes (not UTF-8), as old archivers on Windows write them."""
    with tarfile.open(path, "w", encoding="latin-1", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("café.jpg")
        info.size = len(PHOTO)
        tf.addfile(info, io.BytesIO(PHOTO))


def bad_crc_zip(path):
    """A zip whose stored photo has one byte changed after its checksum was written."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("0.jpg", PHOTO)
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))


def test_an_upload_whose_import_a_kill_interrupted_is_not_listed_and_finishes_at_the_next_start(tmp_path):
    from labeling.review import Review
    from settings import Settings

    settings = Settings(data_dir=tmp_path / "data", data_roots=(tmp_path / "data" / "datasets",))
    archive = make_zip(tmp_path / "set.zip", flat(3))
    facts = add_dataset([archive], settings.layout.datasets, importer="kim")  # ... and the process is killed here
    assert facts["path"].is_dir() and settings.datasets() == []  # complete on disk, not listed
    review = Review(settings, slot=None)  # the next start
    assert settings.datasets() == [f"datasets/{facts['name']}"]
    assert review.store.labels(dataset=facts["name"]) == {"0": "cat", "1": "cat", "2": "cat"}
    events = review.store.query("SELECT author FROM events")
    assert [e["author"] for e in events] == ["kim"] * 3
    Review(settings, slot=None)  # a second start imports nothing twice
    assert len(review.store.query("SELECT id FROM events")) == 3


def test_loose_files_and_every_layout_unpack_to_a_new_set(tmp_path):
    target = tmp_path / "datasets"
    photos = []
    for i in range(3):
        photos.append(tmp_path / f"{i}.jpg")
        photos[-1].write_bytes(PHOTO)
    (tmp_path / "results.json").write_text(json.dumps({"0": "cat", "1": "gatto", "2": None}))
    facts = add_dataset([*photos, tmp_path / "results.json"], target)
    assert facts["images"] == 3 and facts["labels"] == 3 and facts["name"].startswith("upload-")
    again = add_dataset([*photos, tmp_path / "results.json"], target)  # the same files: a second set, no overwrite
    assert again["name"] != facts["name"] and len(list(target.iterdir())) == 2
    wrapped = make_zip(tmp_path / "animals.zip", {"animals/src/gatto/0.jpg": PHOTO, "animals/src/猫/1.jpg": PHOTO,
                                                  "animals/src/none/2.jpg": b"not a photo"})
    facts = add_dataset([wrapped], target)
    assert facts["name"].startswith("animals-") and facts["unreadable"] == ["src/none/2"]
    assert (facts["path"] / "src" / "gatto" / "0.jpg").exists()  # the one wrapping folder is the set itself
    assert json.loads((facts["path"] / uploads.INFO).read_text())["uploaded"] == facts["uploaded"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uploads")
    proc, url, data = launch(tmp)
    yield url, data, tmp
    proc.terminate()
    proc.wait(30)


def test_each_layout_uploaded_in_review_is_imported_with_its_labels(app):
    url, data, tmp = app
    client = Client(url, verbose=False)
    layouts = {
        "flat.zip": make_zip(tmp / "flat.zip", flat(3, {"0": "cat", "1": "dog", "2": "null"})),
        "classes.tar.gz": make_tar(tmp / "classes.tar.gz", {"gatto/0.jpg": PHOTO, "狗/1.jpg": PHOTO,
                                                            "none/2.jpg": PHOTO}),
        "sources.zip": make_zip(tmp / "sources.zip", {"web/cat/0.jpg": PHOTO, "pets/dog/1.jpg": PHOTO}),
    }
    expected = {"flat.zip": {"0": "cat", "1": "dog", "2": "none"},  # keyed as the original's testdata/<n>.jpg
                "classes.tar.gz": {"gatto/0": "cat", "狗/1": "dog", "none/2": "none"},
                "sources.zip": {"web/cat/0": "cat", "pets/dog/1": "dog"}}
    for name, archive in layouts.items():
        line, chosen, *_ = client.predict([handle_file(str(archive))], "ann", "", *FILTERS,
                                          api_name="/review_upload")
        set_name = chosen["value"].split("/", 1)[1]  # the dropdown, listed again with the new set chosen
        assert f"Data set **{set_name}** uploaded" in line and "Imported 3 images" in line or name == "sources.zip"
        assert (data / "datasets" / set_name).is_dir()
        assert LabelStore(data / "labels.db").labels(dataset=set_name) == expected[name], name
    # loose photos with their results.json, dropped at once
    photos = [handle_file(str(EXAMPLES / f"{c}.jpg")) for c in ("horse", "sheep")]
    (tmp / "results.json").write_text(json.dumps({"horse": "horse", "sheep": "cow"}))
    line, chosen, *_ = client.predict([*photos, handle_file(str(tmp / "results.json"))], "ann", "", *FILTERS,
                                      api_name="/review_upload")
    assert LabelStore(data / "labels.db").labels(dataset=chosen["value"].split("/", 1)[1]) == {"horse": "horse",
                                                                                                  "sheep": "cow"}
    # Evaluate and Train take uploads too, listed at once in every tab
    line, chosen, _ = client.predict("", [handle_file(str(layouts["classes.tar.gz"]))], api_name="/evaluate_upload")
    summary, *_ = client.predict("", "default", chosen["value"], 0, False, api_name="/evaluate")
    assert "on 2 of 3 images" in summary and "1 labelled none" in summary
    line, chosen, _ = client.predict("", [handle_file(str(layouts["sources.zip"]))], api_name="/train_upload")
    assert chosen["value"].startswith("datasets/sources-") and "2 photos" in line


def test_a_bad_upload_through_the_app_changes_nothing(app):
    url, data, tmp = app
    client = Client(url, verbose=False)
    before, rows = tree_hash(data), store_rows(data)
    for archive, message in ((make_zip(tmp / "slip2.zip", {"../../evil.jpg": PHOTO}), "outside its folder"),
                             (make_zip(tmp / "none.zip", {"a.txt": b"x"}), "no photos")):
        with pytest.raises(Exception, match=message):
            client.predict([handle_file(str(archive))], "ann", "", *FILTERS, api_name="/review_upload")
    assert tree_hash(data) == before and store_rows(data) == rows


def test_uploads_need_the_password_when_one_is_set(tmp_path):
    proc, url, data = launch(tmp_path, ADMIN_PASSWORD=PW)
    try:
        client = Client(url, verbose=False)
        before = tree_hash(data)
        archive = make_zip(tmp_path / "flat.zip", flat())
        for call in (lambda: client.predict([handle_file(str(archive))], "ann", "", *FILTERS,
                                            api_name="/review_upload"),
                     lambda: client.predict("nope", [handle_file(str(archive))], api_name="/evaluate_upload"),
                     lambda: client.predict("", [handle_file(str(archive))], api_name="/train_upload")):
            with pytest.raises(Exception, match="needs the admin password"):
                call()
        assert tree_hash(data) == before
        line, chosen, *_ = client.predict([handle_file(str(archive))], "ann", PW, *FILTERS,
                                          api_name="/review_upload")
        assert "3 photos" in line
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_demo_set_installs_on_first_start_and_its_wrong_labels_come_first(tmp_path):
    from classifier.serving import ModelSlot
    from labeling.review import Review
    from settings import DEMO_DIR, Settings
    from studio.review_view import import_line

    settings = Settings(data_dir=tmp_path / "data", data_roots=(tmp_path / "data" / "datasets",))
    settings.install_demo()
    assert "datasets/demo" in settings.datasets()
    assert not (settings.layout.datasets / "demo" / "sources.csv").exists()  # the true classes stay out of the app
    truth = {r["file"].removesuffix(".jpg"): r for r in csv.DictReader((DEMO_DIR / "sources.csv").open())}
    wrong = {k for k, r in truth.items() if r["llm_label"] not in (r["class"], "ragno")}
    assert len(wrong) == 10
    review = Review(settings, ModelSlot(None))
    assert review.store_is_empty()
    session = {"reviewer": "ann", "holder": "ann:1", "history": [], "current": None}
    assert "Imported 100 images" in import_line(review.import_folder(session, settings.layout.datasets / "demo"))
    review.predict_in_background(wait=300)
    first = [r["key"] for r in review.ranked()[:15]]
    found = wrong & set(first)
    print(f"wrong labels among the first 15 of the queue: {len(found)} of {len(wrong)}")
    assert len(found) >= 9
    shutil.rmtree(settings.layout.datasets / "demo")
    (settings.layout.datasets / "demo").mkdir()
    settings.install_demo()  # a folder named demo already there is left alone
    assert not any((settings.layout.datasets / "demo").iterdir()) and (ROOT / "assets" / "demo" / "0.jpg").exists()


def test_the_command_lines_take_archives_as_folders(tmp_path):
    archive = make_zip(tmp_path / "flat.zip", flat(3, {"0": "cat", "1": "dog", "2": "cat"}))
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-m", "labeling", "import", "--db", str(tmp_path / "l.db"), "--images",
                          str(archive)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "unpacked flat.zip into data set flat-" in run.stderr and "3 images (3 new)" in run.stdout
    (dataset,) = LabelStore(tmp_path / "l.db").datasets()
    assert LabelStore(tmp_path / "l.db").labels(dataset=dataset["name"]) == {"0": "cat", "1": "dog", "2": "cat"}
    run = subprocess.run([sys.executable, "-m", "evaluation", "run", "--images", str(archive), "--out",
                          str(tmp_path / "eval")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["n_scored"] == 3 and report["per_class"]["dog"]["support"] == 1


def test_what_a_killed_upload_left_is_removed_at_the_next_start_but_not_a_running_one(tmp_path):
    import os
    import time

    from settings import Settings

    settings = Settings(data_dir=tmp_path, data_roots=(tmp_path / "datasets",))
    stale, running = tmp_path / "datasets" / ".incoming-dead01", tmp_path / "datasets" / ".incoming-busy02"
    for folder in (stale, running):
        folder.mkdir(parents=True)
        (folder / "0.jpg").write_bytes(PHOTO)
    hour_ago = time.time() - 7200
    os.utime(stale, (hour_ago, hour_ago))
    settings.install_demo()
    assert not stale.exists() and running.exists() and (tmp_path / "datasets" / "demo").is_dir()


def test_names_show_as_text_and_urls_are_not_made_links():
    from escaping import cell, plain

    shown = plain('<img src=x> ![a](http://h/x.png) http://evil.example/x www.evil.example =1+1')
    assert "<img" not in shown and "&lt;img" in shown and "\\!\\[a\\]" in shown
    assert "http://evil" not in shown and "www.evil" not in shown  # a zero-width space breaks the autolink
    assert shown.replace("\u200b", "").count("evil.example") == 2  # the text itself is all there
    assert [cell(v) for v in ("=1+1", "+x", "-2", "@a", "\tx", "\rx", "ok", 3, None)] == \
        ["'=1+1", "'+x", "'-2", "'@a", "'\tx", "'\rx", "ok", 3, None]
