"""The launched app (``python app.py``) through gradio_client, and once in headless Chromium."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from conftest import EXAMPLES, FIXTURES, ROOT
from gradio_client import Client, handle_file
from PIL import Image
from test_curate import planted_set

from classifier.modelfile import read_calibration


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("data")
    mini = data / "datasets" / "mini"
    for c in ("cat", "dog", "sheep", "horse"):
        (mini / c).mkdir(parents=True)
        shutil.copy(EXAMPLES / f"{c}.jpg", mini / c / "1.jpg")
    (mini / "none").mkdir()
    shutil.copy(FIXTURES / "reference" / "coffee_cup.png", mini / "none" / "cup.png")
    planted_set(data / "datasets" / "planted")  # a set with a copy in it (tests/test_curate.py)
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(data), "GRADIO_SERVER_NAME": "127.0.0.1"}
    log = open(tmp_path_factory.mktemp("log") / "app.log", "w+")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert proc.poll() is None, f"app exited: {log.seek(0) or log.read()}"
            time.sleep(0.5)
    else:
        pytest.fail("app did not start in 120 s")
    yield url, data, proc.pid
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url[0], verbose=False)


def save(img, path, **kw):
    img.save(path, **kw)
    return str(path)


def test_examples_top1_and_top_k(client):
    for c in ("cat", "dog", "sheep", "squirrel"):
        result = client.predict(handle_file(str(EXAMPLES / f"{c}.jpg")), api_name="/classify")
        assert result["label"].split()[0] == c
        assert len(result["confidences"]) == 5
    result = client.predict(handle_file(str(EXAMPLES / "horse.jpg")), 2, api_name="/classify")
    assert [c["label"] for c in result["confidences"]][0] == "horse 马" and len(result["confidences"]) == 2


def test_heatmap_endpoint_shows_where_the_model_looked_for_the_class_asked(client, app_url, tmp_path):
    picture, shown = client.predict(handle_file(str(EXAMPLES / "cat.jpg")), "dog", api_name="/heatmap")
    image = Image.open(picture)
    assert shown == "dog" and image.size == Image.open(EXAMPLES / "cat.jpg").size
    # the default's heatmap comes from its own LiteRT pass: TensorFlow never loaded (no warm-up in tests)
    assert "libtensorflow_framework" not in open(f"/proc/{app_url[2]}/maps").read()
    with pytest.raises(Exception, match="not an image"):
        (tmp_path / "x.jpg").write_bytes(b"plain text")
        client.predict(handle_file(str(tmp_path / "x.jpg")), "cat", api_name="/heatmap")


@pytest.mark.parametrize("name, content, message", [
    ("notes.jpg", b"this is text with an image name", "not an image"),
    ("empty.png", b"", "empty"),
])
def test_bad_file_gets_message_then_good_file_works(client, tmp_path, name, content, message):
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(bad)), api_name="/classify")
    assert client.predict(handle_file(str(EXAMPLES / "cow.jpg")), api_name="/classify")["label"] == "cow 牛"


def test_truncated_bomb_cmyk_16bit_and_animated(client, tmp_path):
    buf = io.BytesIO()
    Image.open(EXAMPLES / "elephant.jpg").save(buf, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[:3000])
    with pytest.raises(Exception, match="truncated or corrupt"):
        client.predict(handle_file(str(truncated)), api_name="/classify")
    bomb = save(Image.new("1", (20000, 20000)), tmp_path / "bomb.png")
    with pytest.raises(Exception, match="decompression-bomb"):
        client.predict(handle_file(bomb), api_name="/classify")
    cmyk = save(Image.open(EXAMPLES / "elephant.jpg").convert("CMYK"), tmp_path / "cmyk.jpg")
    assert client.predict(handle_file(cmyk), api_name="/classify")["label"] == "elephant 大象"
    gray16 = np.asarray(Image.open(EXAMPLES / "sheep.jpg").convert("L"), np.uint16) * 257
    png16 = save(Image.fromarray(gray16), tmp_path / "gray16.png")
    assert client.predict(handle_file(png16), api_name="/classify")["label"] == "sheep 羊"
    frames = [Image.open(EXAMPLES / "spider.jpg").convert("RGB"), Image.new("RGB", (300, 203), "white")]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=200)
    assert client.predict(handle_file(str(gif)), api_name="/classify")["label"] == "spider 蜘蛛"


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_upload_limit_and_memory_stay_bounded(client, app_url, tmp_path):
    big = tmp_path / "huge.jpg"
    big.write_bytes(os.urandom(21 * 1024 * 1024))  # over MAX_UPLOAD_MB=20
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(handle_file(str(big)), api_name="/classify")  # the handler's own limit: Gradio's is 500 MB
    pid = app_url[2]
    before = rss_mb(pid)
    bomb = save(Image.new("1", (20000, 20000)), tmp_path / "bomb.png")
    huge = save(Image.new("RGB", (7000, 7000), (90, 120, 30)), tmp_path / "huge.png")  # 49 MP, just allowed
    for _ in range(3):
        for path in (bomb, huge):
            try:
                client.predict(handle_file(path), api_name="/classify")
            except Exception as e:
                assert "decompression-bomb" in str(e)
    grown = rss_mb(pid) - before
    print(f"app memory grew by {grown:.0f} MB")
    assert grown < 300
    assert client.predict(handle_file(str(EXAMPLES / "cat.jpg")), api_name="/classify")["label"] == "cat 猫"


def test_evaluate_tab_through_the_api(client, app_url):
    data = app_url[1]
    summary, matrix, per_class, counts, *_, risk, chosen, line = client.predict("", "default", "datasets/mini", 0,
                                                                             False, api_name="/evaluate")
    # the risk-coverage picture, with the slider at the model's calibrated threshold and what it does
    calibrated = read_calibration(None)["threshold"]
    assert os.path.getsize(risk) > 10_000 and chosen == pytest.approx(calibrated, abs=0.001)
    assert line.startswith(f"At {calibrated:.2f}: **100.0%** of the animal photos answered")
    assert "Balanced accuracy 100.0%" in summary and "accuracy 100.0% (" in summary
    assert "on 4 of 5 images" in summary and "1 labelled none" in summary
    assert os.path.getsize(matrix) > 10_000
    rows = {r[0]: r for r in per_class["data"]}
    assert rows["cat 猫"][1] == 1 and rows["cat 猫"][3] == 1.0
    # Direct API calls cannot reach other folders: the dropdown's choices refuse them when the request joins the
    # queue (400), and settings.dataset_path() behind it.
    for outside in ("/etc", str(data / "datasets" / ".." / "..")):
        with pytest.raises(Exception, match="not a data set of this app|not in the list of choices|400 Bad Request"):
            client.predict("", "default", outside, 0, False, api_name="/evaluate")


def test_browser_upload_shows_top5(app_url, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(locale="en-US")
        page.goto(app_url[0])
        page.set_input_files("input[type=file]", str(EXAMPLES / "butterfly.jpg"))
        page.get_by_text("butterfly 蝴蝶").first.wait_for(timeout=30_000)
        page.get_by_text("ms", exact=False).first.wait_for(timeout=10_000)
        page.screenshot(path=str(tmp_path / "classify.png"))
        scores = page.locator("text=/^\\d+(\\.\\d+)?%$/")  # one percentage per class shown
        assert scores.count() == 5  # the top 5, the default
        first = page.locator("[data-testid='label'] .output-class, .output-class").first.inner_text()
        assert "butterfly 蝴蝶" in first  # the top one is the photo's class
        browser.close()


def test_handler_text_follows_the_browser_language(app_url, tmp_path):
    chinese = Client(app_url[0], verbose=False, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom(21 * 1024 * 1024))
    with pytest.raises(Exception, match="照片大小为 21 MB，超过此处允许的 20 MB"):
        chinese.predict(handle_file(str(big)), api_name="/classify")
    english = Client(app_url[0], verbose=False, headers={"Accept-Language": "en-GB,zh;q=0.5"})
    with pytest.raises(Exception, match="The photo is 21 MB, larger than the 20 MB allowed"):
        english.predict(handle_file(str(big)), api_name="/classify")
    rocket = str(FIXTURES / "reference" / "rocket.png")  # none of the ten: the headline says so in both halves
    assert chinese.predict(handle_file(rocket), api_name="/classify")["label"] == "none of the 10 animals 非这十种动物"
    summary, *_ = chinese.predict("", "default", "datasets/mini", 0, False, api_name="/evaluate")
    assert "准确率 100.0%" in summary and "已排除并计数：1 张标注为“不是这十种”" in summary


def test_the_default_model_downloads_as_tflite_and_onnx(client):
    files = client.predict("", "default", api_name="/export_model")
    paths = {os.path.basename(f["path"] if isinstance(f, dict) else f): f for f in files}
    assert sorted(paths) == ["default.float16.tflite", "default.json", "default.onnx"]
    assert all(os.path.getsize(f["path"] if isinstance(f, dict) else f) > 100 for f in files)
    with pytest.raises(Exception, match="No finished run|not in the list of choices|400 Bad Request"):
        client.predict("", "no-such-run", api_name="/export_model")


def test_agents_get_only_the_read_only_tools_over_mcp(app_url):
    """A real MCP client (the mcp package, streamable HTTP) against the launched app's /tools."""
    import asyncio
    import base64

    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    photo = "data:image/jpeg;base64," + base64.b64encode((EXAMPLES / "elephant.jpg").read_bytes()).decode()

    async def session():
        async with streamablehttp_client(f"{app_url[0]}tools/gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                names = sorted(t.name for t in (await s.list_tools()).tools)
                answer = await s.call_tool("classify", {"image": photo})
                top = await s.call_tool("top_k", {"image": photo, "k": 2})
                info = await s.call_tool("model_info", {})
                return names, answer, top, info

    names, answer, top, info = asyncio.run(session())
    # nothing that changes labels, imports, trains or serves
    assert names == ["classify", "curation_report", "model_info", "top_k"]
    said = json.loads(answer.content[0].text)
    assert not answer.isError and said["answer"] == "elephant" and said["name"] == "elephant 大象"
    assert [c["class"] for c in json.loads(top.content[0].text)][:1] == ["elephant"]
    assert len(json.loads(top.content[0].text)) == 2 and json.loads(info.content[0].text)["input_size"] == 384


def test_copies_and_leaks_in_evaluate_then_as_an_mcp_tool(client, app_url):
    """The Evaluate tab's "Copies and leaks" on a set with a planted copy (tests/test_curate.py), through the API;
    then the tools app's curation_report reads what it cached, and only that."""
    import asyncio

    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    url, data, _ = app_url
    summary, plot = client.predict("", "default", "datasets/planted", "reviewed", False, "mark", api_name="/curate")
    assert "1 groups of copies within the set** (2 photos)" in summary
    assert "near-copies of the model's training photos" in summary or "No photo is a near-copy" in summary
    assert "The map: 7 photos" in summary and "Import this data set in the Review tab" in summary
    assert len(plot["value"]["data"]) == 7 and "/tmp" not in summary

    async def session():
        async with streamablehttp_client(f"{url}tools/gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as s:
                await s.initialize()
                return [await s.call_tool("curation_report", {"dataset": name})
                        for name in ("datasets/planted", "datasets/mini", "/etc")]

    planted, mini, outside = asyncio.run(session())
    report = json.loads(planted.content[0].text)
    assert report["status"] == "computed" and report["dataset"] == "datasets/planted"
    assert report["groups"] == [["cat/1", "cat/copy"]] and report["leaks"]["status"] == "checked"
    assert str(data) not in planted.content[0].text
    assert json.loads(mini.content[0].text)["status"].startswith("not computed yet; run it in Evaluate")
    assert outside.isError and "No data set named" in outside.content[0].text


API_SNAPSHOT = FIXTURES / "api.json"


def public_api(url) -> dict:
    """Every named endpoint of both apps with its parameters (name, component, type, default) and return values
    (component, type), as gradio_client's view_api gives them."""
    def shape(p, *keys):
        return [p.get(k) if k != "python_type" else p["python_type"]["type"] for k in keys]

    out = {}
    for path in ("", "tools/"):
        api = Client(url + path, verbose=False).view_api(return_format="dict", print_info=False)
        out[path or "/"] = {
            name: {"parameters": [shape(p, "parameter_name", "component", "python_type", "parameter_has_default",
                                        "parameter_default") for p in e["parameters"]],
                   "returns": [shape(r, "component", "python_type") for r in e["returns"]]}
            for name, e in sorted(api["named_endpoints"].items())}
    return out


def test_the_public_api_is_unchanged(app_url):
    """The API as it was before the UI moved into studio/ (regenerate with UPDATE_API_SNAPSHOT=1 only for a change
    meant to be seen by API users)."""
    url, _, _ = app_url
    now = public_api(url)
    if os.environ.get("UPDATE_API_SNAPSHOT"):
        API_SNAPSHOT.write_text(json.dumps(now, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    assert now == json.loads(API_SNAPSHOT.read_text())
