"""What leaves the server when a request is refused: no absolute server path, no value a user gave longer than about
80 characters (i18n.public, applied where a refusal's values are formatted), and one line in the log, never a
traceback (studio.common.one_line_refusals). Tried on the launched app, over real HTTP, as in test_doors."""

import json
import shutil
import time
import urllib.error
import urllib.request

import pytest
from conftest import EXAMPLES, ROOT
from gradio_client import Client, handle_file
from test_review_app import FILTERS, launch

from classifier.labels import LabelFileError, read_labels
from i18n import LONGEST, Message, unpathed
from settings import Settings
from studio.guard import Guard

BIG = "x" * 100_000  # a 100 KB value


def test_a_refusal_says_long_values_cut_and_server_paths_by_name(tmp_path):
    Guard(Settings(data_dir=tmp_path / "data"))  # the app's guard names its folders for every reply
    folder = tmp_path / "data" / "datasets" / "big"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"0": [BIG]}))
    with pytest.raises(LabelFileError) as refused:
        read_labels(folder / "results.json")
    for text in (str(refused.value), refused.value.said("zh")):
        assert len(text) < 250 and "…" in text and str(tmp_path) not in text, text[:300]
    assert str(refused.value).startswith("DATA_DIR/datasets/big/results.json: the label of '0' is list")
    # a library's reason naming a path outside the app's folders keeps only its last part
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(LabelFileError) as unreadable:
        read_labels(tmp_path / "elsewhere")  # a folder: the OS's own words name its path
    assert str(tmp_path) not in str(unreadable.value) and "…/elsewhere" in str(unreadable.value)
    # a whole number a user typed as 1e308 (309 digits) is a long value too
    assert len(Message("tr_err_count", field="Epochs", low=0, high=500, value=int(1e308)).said("en")) < 150
    # a text not of the catalog (a library's sentence) is kept longer, but not whole
    assert len(Message(f"bad value {BIG}").said("en")) <= 4 * LONGEST
    # URLs and relative names are no server paths: left as they are
    assert unpathed("see https://huggingface.co/spaces/x and datasets/demo") == \
        "see https://huggingface.co/spaces/x and datasets/demo"


def prepare(data):
    big = data / "datasets" / "big"
    big.mkdir(parents=True)
    shutil.copy(EXAMPLES / "cat.jpg", big / "0.jpg")
    (big / "results.json").write_text(json.dumps({"0": [BIG]}))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replies")
    proc, url, data = launch(tmp, prepare)
    yield url, data, tmp / "app.log"
    proc.terminate()
    proc.wait(30)


def refused(call) -> str:
    """The text of the refusal ``call()`` gets (it must be refused)."""
    with pytest.raises(Exception) as e:
        call()
    return str(e.value)


def post(url, body) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def new_lines(log, since: int) -> list[str]:
    """The lines the app wrote to ``log`` after byte ``since`` (waiting a moment for them)."""
    time.sleep(0.5)
    return log.read_bytes()[since:].decode(errors="replace").splitlines()


def test_a_results_json_with_a_100_kb_value_is_refused_with_a_short_reply(app):
    url, data, log = app
    client = Client(url, verbose=False)
    client.predict("ann", "", *FILTERS, api_name="/review_start")
    text = refused(lambda: client.predict("", "datasets/big", api_name="/import"))
    assert len(text) < 250 and "expected a class name or null" in text and str(data) not in text, text[:300]
    # a 100 KB dropdown value: Gradio's own refusal would send it back whole; it is cut as any value
    config = json.loads(urllib.request.urlopen(url + "config", timeout=10).read())
    dep = next(d for d in config["dependencies"] if d.get("api_name") == "import")
    kinds = {c["id"]: c["type"] for c in config["components"]}
    values = [BIG if kinds[i] == "dropdown" else None for i in dep["inputs"]]
    status, body = post(url + "gradio_api/queue/join", {"data": values, "fn_index": dep["id"],
                                                          "session_hash": "replies123"})
    assert status == 400 and "cannot take (Value: xxx" in body and "…" in body and len(body) < 400, body[:300]


def test_the_tools_apps_refusals_name_no_server_path(app):
    url, data, _ = app
    tools = Client(url + "tools/", verbose=False)
    photo = data / "datasets" / "demo" / "0.jpg"
    replies = [
        refused(lambda: tools.predict(str(photo), api_name="/classify")),  # a bare server path: no FileData
        refused(lambda: tools.predict(str(data), api_name="/top_k")),  # a folder
        refused(lambda: tools.predict(handle_file(str(EXAMPLES / "cat.jpg")), str(data), api_name="/top_k")),
    ]
    for path in (photo, data, data / "labels.db"):  # as a file input names a file, on a raw queue join
        replies.append(post(url + "tools/gradio_api/queue/join", {
            "data": [{"path": str(path), "meta": {"_type": "gradio.FileData"}}], "fn_index": 0,
            "session_hash": "replies456"})[1])
    for text in replies:
        assert str(data) not in text and str(ROOT) not in text and "/tmp/" not in text, text[:300]
    assert "whole number" in replies[2] and len(replies[2]) < 200


TF_START = ("WARNING: All log messages before absl", "I0000 ", "W0000 ", "E0000 ", "INFO: Created TensorFlow")


def test_a_refused_request_is_one_line_in_the_log(app):
    url, data, log = app
    client, tools = Client(url, verbose=False), Client(url + "tools/", verbose=False)
    client.predict("ann", "", *FILTERS, api_name="/review_start")
    for call in (lambda: client.predict("", "datasets/big", api_name="/import"),  # a handler's refusal
                 lambda: tools.predict(None, api_name="/classify"),  # the tools app's own
                 lambda: tools.predict(str(data / "datasets" / "demo" / "0.jpg"), api_name="/classify")):  # Gradio's
        since = log.stat().st_size
        refused(call)
        # (TensorFlow's own start-up lines, from the explainer warming in the background, are not the request's)
        lines = [line for line in new_lines(log, since) if line.strip() and not line.startswith(TF_START)]
        assert len(lines) == 1 and lines[0].startswith("refused: ") and len(lines[0]) < 400, lines[:5]
        assert str(data) not in lines[0]
    assert "Traceback" not in log.read_text()


def test_a_request_gradio_itself_cannot_take_is_one_line_not_a_traceback(app):
    """Joins whose values only fail inside Gradio's own code (a select with no event data, an example with no
    index) are the request's fault: one line each, and the app keeps answering."""
    url, _, log = app
    with urllib.request.urlopen(url + "config", timeout=10) as r:
        config = json.loads(r.read())
    comps = {c["id"]: c for c in config["components"]}
    events = [d for d in config["dependencies"] if any(t[1] in ("select", "click") and
                                                        comps.get(t[0], {}).get("type") in ("dataset", "image",
                                                                                            "gallery", "dataframe")
                                                        for t in d.get("targets", []))]
    assert events, "no select or example event found"
    since = log.stat().st_size
    for dep in events:
        data = [comps[i].get("props", {}).get("value") for i in dep["inputs"]]
        post(url + "gradio_api/queue/join", {"data": data, "fn_index": dep["id"], "session_hash": "nodata"})
    time.sleep(3)  # their results, whatever they are
    lines = [line for line in new_lines(log, since) if line.strip() and not line.startswith(TF_START)]
    assert "Traceback" not in "\n".join(lines) and len(lines) <= len(events), lines[:20]
