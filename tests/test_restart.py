"""A restart is a non-event: a reviewer decides, the server is killed (kill -9) and its ``DATA_DIR`` emptied (a
Space restarting), the app starts again on the same ``PERSIST_DIR``. What the app derives from the labels (the
cached predictions, so the ranking, the suspects and Review impact) is rebuilt at once: before anyone presses Start,
Review impact answers with the figures it gave before; after Start, the queue opens on the same photo, ranked; no
tab shows an error (in headless Chromium, driven by Playwright)."""

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT
from test_journeys import load_demo
from test_review_app import launch

chromium = pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (.ci/run installs it)")

IMPACT = "Review impact: the model against the labels before and after review"
# Gradio's error toast and the red "Error" badge its status tracker puts on the outputs of a failed event
ERRORS = "[data-testid=toast-body].error:visible, [data-testid=status-tracker] .error:visible"
TABS = ("Classify", "Review labels", "Evaluate", "Train")


def impact_rows(view):
    """Open Review impact, press Compute and read its two rows (before review, after review)."""
    from playwright.sync_api import expect

    if view.get_by_role("button", name="Compute").is_hidden():
        view.get_by_role("button", name=IMPACT).click()
    view.get_by_role("button", name="Compute").click()
    table = view.locator(".table-wrap").filter(has_text="after review (current)").first
    expect(table).to_contain_text("%", timeout=60_000)
    return table.inner_text()


def photo(view):
    """The photo open in the review panel, and what the panel says of it."""
    details = view.locator("#review-panel").inner_text()
    return re.search(r"demo/\d+\.jpg", details).group(0), details


def errors_on_every_tab(view) -> list[str]:
    """The tabs that show an error toast or an Error badge, each opened in turn."""
    shown = []
    for name in TABS:
        view.get_by_role("tab", name=name).click()
        view.wait_for_timeout(300)  # what the tab fills as it opens
        if view.locator(ERRORS).count():
            shown.append(name)
    return shown


def test_a_restored_store_rebuilds_its_predictions_before_anyone_asks(tmp_path):
    """The journal keeps labels, not the predictions cache: a Review on a store rebuilt from it computes the served
    model's predictions at once, in the background, no Start pressed; then it ranks as before the restart."""
    from classifier.serving import ModelSlot
    from labeling.review import Filters, Review
    from labeling.suspects import model_key
    from settings import Settings

    settings = Settings(data_dir=tmp_path / "data", persist_dir=tmp_path / "bucket")
    folder = settings.layout.datasets / "demo"

    def demo():  # as the app installs its demo set at every start
        folder.mkdir(parents=True)
        for i, c in enumerate(("cat", "dog", "sheep", "horse")):
            shutil.copy(EXAMPLES / f"{c}.jpg", folder / f"{i}.jpg")
        (folder / "results.json").write_text(json.dumps({"0": "dog", "1": "dog", "2": "null", "3": "horse"}))

    demo()
    slot = ModelSlot(None)
    review = Review(settings, slot)
    review.import_folder(None, folder, author="import")
    review.predict_in_background(wait=120)
    review.store.decide(review.ranked()[0]["id"], "cat", "kim")
    ranked, head = [r["key"] for r in review.ranked()], review.queue(Filters("unreviewed"))[0]["key"]
    shutil.rmtree(settings.data_dir)  # the host restarted: the local disk is empty, PERSIST_DIR is not
    demo()
    again = Review(settings, slot)
    key, deadline = model_key(slot.get()), time.time() + 60
    while again.store.version(key)[2] < 4 and time.time() < deadline:  # nothing asked of it: the rebuild is its own
        time.sleep(0.1)
    assert again.store.version(key)[1:] == (4, 4)
    assert [r["key"] for r in again.ranked()] == ranked and again.queue(Filters("unreviewed"))[0]["key"] == head


def test_what_the_command_line_writes_to_the_apps_store_outlives_a_restart(tmp_path):
    """With PERSIST_DIR set, `python -m labeling` on the app's own DATA_DIR/labels.db journals as the app does: an
    import of a data set under DATA_DIR/datasets and a photo left out come back on an empty disk, photos included.
    Another database is not journaled; a journal that cannot be written is one error line, nothing saved."""
    import subprocess
    import sys

    from classifier.serving import ModelSlot
    from labeling.review import Review
    from settings import Settings

    settings = Settings(data_dir=tmp_path / "data", persist_dir=tmp_path / "bucket")
    folder = settings.layout.datasets / "mini"
    for c in ("cat", "dog"):
        (folder / c).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{c}.jpg", folder / c / f"{c}.jpg")
    env = {**os.environ, "DATA_DIR": str(settings.data_dir), "PERSIST_DIR": str(settings.persist_dir)}

    def cli(*argv, db=settings.layout.labels_db):
        return subprocess.run([sys.executable, "-m", "labeling", *argv, "--db", str(db)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    assert cli("import", "--images", str(folder)).returncode == 0
    assert cli("leave-out", "--key", "cat/cat", "--reason", "cannot_tell", "--author", "kim").returncode == 0
    other = tmp_path / "other.db"
    assert cli("import", "--images", str(folder), db=other).returncode == 0
    files = sorted((settings.persist_dir / "journal").glob("*.json"))
    assert len(files) == 2  # the app's store twice; the other database not at all
    shutil.rmtree(settings.data_dir)  # the host restarted
    again = Review(settings, ModelSlot(None))
    rows = {r["key"]: r for r in again.store.state()}
    assert rows.keys() == {"cat/cat", "dog/dog"} and rows["cat/cat"]["status"] == "left_out"
    assert all(Path(r["file"]).is_file() for r in rows.values())  # the photos came back with their labels
    journal = settings.persist_dir / "journal"
    journal.rename(tmp_path / "kept")
    journal.write_text("")  # a journal that cannot be written (a file where its folder should be): refused whole
    failed = cli("leave-out", "--key", "dog/dog", "--reason", "copy", "--author", "kim")
    assert failed.returncode == 1 and failed.stderr.startswith("error: the journal in PERSIST_DIR")
    assert "Traceback" not in failed.stderr
    assert next(r for r in again.store.state() if r["key"] == "dog/dog")["status"] == "unreviewed"


@chromium
def test_a_kill_and_an_empty_disk_change_nothing_a_reviewer_sees(page, tmp_path):
    persist = str(tmp_path / "bucket")
    proc, url, data = launch(tmp_path, PERSIST_DIR=persist)  # the four-photo demo set, LLM-style labels
    try:
        load_demo(page, url)
        page.locator("#rv-class-2").click()  # a decision (cat), and the queue's next suspect opens: its head
        page.get_by_text("Reviewed 1 / 4").first.wait_for(timeout=30_000)
        head, _ = photo(page)
        impact = impact_rows(page)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no goodbye: what was acknowledged is all there is
        proc.wait(30)
    shutil.rmtree(data)  # the host restarted: the local disk is empty

    proc, url, data = launch(tmp_path, PERSIST_DIR=persist)
    try:
        page.goto(url)
        page.get_by_role("tab", name="Review labels").click()
        page.get_by_text("Reviewed 1 / 4").first.wait_for(timeout=30_000)
        assert impact_rows(page) == impact  # before Start: the predictions are back, the same figures
        assert errors_on_every_tab(page) == []
        page.get_by_role("tab", name="Review labels").click()
        page.get_by_label("Your name (recorded with each decision)").fill("kim")
        page.get_by_role("button", name="Start reviewing").click()
        page.get_by_text("suspicion rank").first.wait_for(timeout=60_000)  # the idle text until Start answers
        again, details = photo(page)
        assert again == head, details  # the queue opens where it did, ranked as it was
        assert "Model: -" not in details and "Model:" in details
        assert errors_on_every_tab(page) == []
    finally:
        proc.terminate()
        proc.wait(30)
