"""Browser journeys in headless Debian Chromium driven by Playwright: Classify (and the switch to Chinese), Review
(keys, undo, reload), Train (start, progress, confusion matrix, serve). Each journey saves a screenshot into
``artifacts/journeys/``; a failing one also saves the page's HTML and console log there."""

import json
import shutil
import time

import pytest
from conftest import EXAMPLES, ROOT
from PIL import Image, ImageOps
from test_review_app import human_events, launch

from classifier.classes import CLASSES

pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (.ci/run installs it)")
ARTIFACTS = ROOT / "artifacts" / "journeys"


def tiny_set(data):
    for c in CLASSES:
        folder = data / "datasets" / "tiny" / c
        folder.mkdir(parents=True)
        im = Image.open(EXAMPLES / f"{c}.jpg").convert("RGB")
        for j, v in enumerate([im, ImageOps.mirror(im), im.rotate(8), im.rotate(-8)]):
            v.save(folder / f"{j}.jpg")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    proc, url, data = launch(tmp_path_factory.mktemp("journeys"), prepare=tiny_set)
    yield url, data
    proc.terminate()
    proc.wait(30)


@pytest.fixture()
def page(request):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100}, locale="en-US")
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        yield page
        name = request.node.name
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        if getattr(request.node, "failed", False):  # set by the hook in conftest.py
            (ARTIFACTS / f"{name}.html").write_text(page.content())
            (ARTIFACTS / f"{name}.console.log").write_text("\n".join(console))
        browser.close()


def test_classify_then_switch_to_chinese(app, page):
    page.goto(app[0])
    page.set_input_files("input[type=file]", str(EXAMPLES / "elephant.jpg"))
    page.get_by_text("ms", exact=False).first.wait_for(timeout=30_000)
    page.get_by_text("elephant 大象").first.wait_for(timeout=10_000)
    assert page.get_by_text("elephant 大象").count() >= 1
    assert page.locator("text=/\\d+%/").count() >= 5  # the top-5 scores
    page.get_by_text("Settings").last.click()
    page.get_by_label("Language").click()
    page.get_by_role("option", name="中文").first.click()
    page.mouse.click(60, 600)  # close the settings panel
    page.get_by_role("tab", name="分类").wait_for(timeout=10_000)
    page.get_by_text("照片（上传、粘贴或摄像头）").first.wait_for(timeout=10_000)
    assert page.get_by_role("button", name="分类").count() == 1
    assert page.get_by_text("十个类别：蝴蝶、猫、鸡、牛、狗、大象、马、羊、蜘蛛、松鼠。").count() == 1
    assert page.get_by_text("elephant 大象").count() >= 1  # the class labels carry both names


def test_review_keys_undo_and_reload(app, page):
    url, data = app
    page.goto(url)
    page.get_by_role("tab", name="Review labels").click()
    page.get_by_label("Your name (recorded with each decision)").fill("jo")
    page.get_by_role("button", name="Import, auto-label, export").click()
    page.get_by_label("Image folder to import (results.json inside it is read)").click()
    page.get_by_role("option", name="datasets/demo").click()
    page.get_by_role("button", name="Start reviewing").click()
    # Import records the started session's reviewer: wait for Start to answer (under load it can take seconds)
    page.get_by_text("Nothing left in this queue.").wait_for(timeout=30_000)
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Imported 4 images").wait_for(timeout=30_000)
    page.get_by_role("button", name="Start reviewing").click()
    page.get_by_text("suspicion rank").wait_for(timeout=30_000)
    page.locator("body").click(position={"x": 3, "y": 3})
    page.keyboard.press("2")  # cat
    _wait(lambda: [e for e in human_events(data) if e["author"] == "jo"])
    first = [e for e in human_events(data) if e["author"] == "jo"][0]
    assert first["label"] == "cat"
    page.get_by_text("Reviewed 1 / 4").first.wait_for(timeout=10_000)
    page.keyboard.press("Control+z")
    _wait(lambda: human_events(data)[-1]["undoes"] is not None)
    page.get_by_text("Reviewed 0 / 4").first.wait_for(timeout=10_000)
    page.keyboard.press("4")  # cow: the state to find again after the reload
    page.get_by_text("Reviewed 1 / 4").first.wait_for(timeout=10_000)
    page.reload()
    page.get_by_role("tab", name="Review labels").click()
    page.get_by_text("Reviewed 1 / 4").first.wait_for(timeout=10_000)
    assert human_events(data)[-1]["label"] == "cow"


def test_train_tiny_run_and_serve_it(app, page):
    url, data = app
    page.goto(url)
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("Training photos (class folders, or sources of them)").click()
    page.get_by_role("option", name="datasets/tiny").click()
    for label, value in (("Phase-1 epochs (head)", "2"), ("Phase-2 epochs (fine-tune)", "1"),
                         ("Blocks to fine-tune", "1")):
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("· running ·").first.wait_for(timeout=60_000)
    page.get_by_text("· done ·").first.wait_for(timeout=300_000)
    page.locator("#train-matrix img").first.wait_for(timeout=10_000)  # a picture, not a served DATA_DIR path
    run = next((data / "runs").iterdir()).name
    page.get_by_role("button", name="Serve this model").click()
    page.get_by_text(f"from {run}").first.wait_for(timeout=60_000)
    page.get_by_role("tab", name="Classify").click()
    assert json.loads((data / "runs" / run / "status.json").read_text())["state"] == "done"
    page.get_by_text(run).first.wait_for(timeout=10_000)  # the Classify tab names the served run


def test_upload_a_zip_fix_the_first_suspect_and_export_it(page, tmp_path):
    import zipfile

    labels = {"0": "dog", "1": "dog", "2": "sheep", "3": "horse"}  # 0 is a cat: the LLM-style mistake
    with zipfile.ZipFile(tmp_path / "my-set.zip", "w") as zf:
        for i, c in enumerate(("cat", "dog", "sheep", "horse")):
            zf.write(EXAMPLES / f"{c}.jpg", f"testdata/{i}.jpg")
        zf.writestr("results.json", json.dumps(labels))
    proc, url, data = launch(tmp_path)
    try:
        page.goto(url)
        page.get_by_role("tab", name="Review labels").click()
        page.get_by_label("Your name (recorded with each decision)").fill("kim")
        page.get_by_role("button", name="Import, auto-label, export").click()
        page.locator("#rv-upload input[type=file]").set_input_files(str(tmp_path / "my-set.zip"))
        page.get_by_text("Imported 4 images").first.wait_for(timeout=60_000)
        page.get_by_text("/0.jpg").first.wait_for(timeout=30_000)  # the mislabelled cat opens the queue
        page.locator("#rv-class-2").click()  # cat
        page.get_by_text("Reviewed 1 / ").first.wait_for(timeout=10_000)
        page.get_by_role("button", name="Export results.json (one per data set), history CSV and the label "
                                        "database").click()
        page.get_by_text("results-my-set", exact=False).first.wait_for(timeout=30_000)
        with page.expect_download() as download:
            page.locator("a[download]", has_text="B").first.click()  # the size link downloads the file
        exported = json.loads(open(download.value.path()).read())
        assert exported["0"] == "cat" and exported["1"] == "dog"
    finally:
        proc.terminate()
        proc.wait(30)


def _wait(condition, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")
