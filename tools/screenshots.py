"""Every screenshot and figure in docs/, and docs/figures.json, which says for each which command made it and with
which served model (its name and content hash: ``classifier.modelfile.content_hash``).

    python tools/screenshots.py [--only NAME ...] [--lang en zh] [--out docs]

The app is launched (``python app.py``) on a fresh ``DATA_DIR`` holding only what it installs itself at start (the
demo set: 100 photos, 10 labels wrong), once per language, and driven in headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright) as a person would: a photo classified with its heatmap, the demo set's
queue opened and its ten wrong labels fixed, a blind audit, an evaluation on the reviewed labels, a training run
of the default recipe on those labels. A third launch, with a local OpenAI-compatible server standing in for the
vision LLM, makes the two pictures of auto-labelling. The model card's confusion matrix is drawn from the default
model's own out-of-fold report (``assets/model/out_of_fold.json``) without the app.

NAME is one of :data:`SHOTS`' keys (a tab's name makes both languages). Partial runs update their entries in
``figures.json`` and keep the others; ``tests/test_docs.py`` fails once the served default's hash differs from any
entry's, so a new default model means running this again (3 minutes on two busy cores).
"""

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from classifier.classes import CLASSES, class_keys, parse_label  # noqa: E402
from classifier.modelfile import content_hash, model_meta  # noqa: E402
from settings import Settings  # noqa: E402

DOCS = ROOT / "docs"
DEMO = ROOT / "assets" / "demo"
EXAMPLES = ROOT / "assets" / "examples"
COMMAND = "python tools/screenshots.py"
STRINGS = json.loads((ROOT / "assets" / "i18n.json").read_text())
KEYS = dict(zip(CLASSES, class_keys(CLASSES)))  # the Review tab's key (and button id) of each class
LANGS = {"en": "en-US", "zh": "zh-CN"}
PRIVATE = {"ADMIN_PASSWORD", "ADMIN_USERS", "REVIEWERS", "HF_SIGN_IN", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET",
           "SIGN_IN_LOCAL_TESTING", "PERSIST_DIR", "DATA_ROOTS", "HF_DATASET_REPO", "HF_TOKEN", "LLM_API_KEY",
           "ZHIPUAI_API_KEY", "LLM_BASE_URL", "GLM_BASE_URL", "LLM_PROVIDER", "SPACE_ID"}
CACHE = Path(tempfile.gettempdir()) / "screenshots-tflite"  # converted models, shared by the launches
WAIT = 180_000  # ms: two shared cores, other jobs beside

# name -> (files it makes, what they show); a tab's name stands for one file per language
SHOTS = {
    "classify": ("classify-{lang}.png", "the Classify tab: a photo classified, and where the model looked"),
    "review": ("review-{lang}.png", "the Review tab: the demo set's queue, suspects first, the heatmap beside"),
    "evaluate": ("evaluate-{lang}.png", "the Evaluate tab on the demo set's reviewed labels, beside the figures "
                                        "before review"),
    "train": ("train-{lang}.png", "the Train tab: the default recipe trained on the demo set's reviewed labels"),
    "mcp-tools": ("mcp-tools.png", "the read-only tools app at /tools, which agents reach over MCP"),
    "audit": ("audit.png", "a blind audit of the demo set and its estimate of the wrong labels left"),
    "llm-unsure": ("llm-unsure.png", "auto-labelling asked only where the classifier is unsure: the plan"),
    "llm-scorecard": ("llm-scorecard.png", "Review impact and the LLM labeller's scorecard"),
    "model-card": ("default-model-confusion.png", "the default model's out-of-fold confusion matrix "
                                                  "(assets/model/out_of_fold.json), as the model card quotes it"),
}
TABS = ("classify", "review", "evaluate", "train")
EN_ONLY = ("mcp-tools", "audit")  # made on the English launch
LLM = ("llm-unsure", "llm-scorecard")  # made on a launch of their own, with a stand-in LLM


def say(lang, key):
    return STRINGS[lang][key]


def fixed(lang, key):
    """The longest stretch of a catalog string without values or markup: what to wait for on the page."""
    parts = re.split(r"\{[^}]*\}|\*\*|[*`\n]", say(lang, key))
    return max((p.strip(" .,:;（）()") for p in parts), key=len)


def pattern(lang, key):
    """A one-line catalog string as a regular expression of the text the page shows (values: anything)."""
    parts = re.split(r"(\{[^}]*\})", say(lang, key).replace("**", "").replace("`", ""))
    return re.compile("".join(".+?" if p.startswith("{") else re.escape(p) for p in parts))


def served_model():
    """The model the app serves at start (``MODEL_PATH``, else the default): its name and content hash."""
    path = Settings.from_env().model_path
    return {"model": model_meta(path)["name"], "model_hash": content_hash(path)}


# -- the app and the browser ------------------------------------------------------------------------------------

def rel(path):
    """A path as figures.json and the log name it: from the repository's root where it lies inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launched(**env):
    """``python app.py`` on a fresh DATA_DIR (the app installs the demo set into it); yields ``(url, data dir)``."""
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        data, port = Path(tmp) / "data", free_port()
        log = open(Path(tmp) / "app.log", "w")
        # the plain self-hosted app (no password, no sign-in, nothing kept elsewhere), serving MODEL_PATH or the
        # default as served_model() reads it
        env = {**{k: v for k, v in os.environ.items() if k not in PRIVATE}, "PORT": str(port),
               "DATA_DIR": str(data), "MODEL_CACHE": str(CACHE), **env}
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(480):
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise SystemExit("the app did not start:\n" + (Path(tmp) / "app.log").read_text()) from None
                    time.sleep(0.5)
            yield url, data
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


@contextlib.contextmanager
def browser(lang):
    """A headless Chromium page whose browser speaks ``lang`` (so the app starts in it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = chromium.new_page(viewport={"width": 1400, "height": 1000}, locale=LANGS[lang])
        page.set_default_timeout(WAIT)
        try:
            yield page
        except Exception:
            failed = Path(tempfile.gettempdir()) / f"screenshots-failed-{lang}.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(failed), full_page=True)
                print(f"failed: the page as it was is in {failed}", file=sys.stderr, flush=True)
            raise
        finally:
            chromium.close()


def settle(page, seconds=1.0):
    """Let Gradio finish drawing (its loading bars fade) before a picture is taken."""
    with contextlib.suppress(Exception):  # Gradio's event stream stays open: no "network idle" to wait for
        page.wait_for_function("() => !document.querySelector('.eta-bar, .progress-bar, .pending')",
                               timeout=20_000)
    time.sleep(seconds)


def shoot(page, path, top=None, bottom=None, pad=12):
    """A picture of the page from ``top``'s top (else the page's) to ``bottom``'s bottom (else the viewport's)."""
    settle(page)
    # no toasts ("Imported 100 images" and the like) over the page
    page.add_style_tag(content=".toast-body, .toast-messages {display: none !important}")
    page.mouse.move(1, 1)  # no hover highlight

    def box(where):  # a selector, or a locator: its box on the page (bounding_box is the viewport's)
        found = (page.locator(where).first if isinstance(where, str) else where).bounding_box()
        return {**found, "y": found["y"] + page.evaluate("window.scrollY")}

    y0 = max(0, box(top)["y"] - pad) if top else 0
    if bottom:
        end = box(bottom)
        y1 = end["y"] + end["height"] + pad
    else:
        y1 = y0 + page.viewport_size["height"]
    height = page.evaluate("document.documentElement.scrollHeight")
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": 0, "y": y0, "width": page.viewport_size["width"], "height": min(y1, height) - y0})
    print(f"  {rel(path)}", flush=True)


def tab(page, lang, name):
    page.get_by_role("tab", name=say(lang, f"tab_{name}")).click()
    time.sleep(0.5)


def pick(page, label, option):
    """Choose ``option`` in the dropdown labelled ``label``."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option).first.click()


# -- the journeys ------------------------------------------------------------------------------------------------

def classify(page, lang, out):
    page.get_by_role("tab", name=say(lang, "tab_classify")).wait_for()
    page.set_input_files("input[type=file]", str(EXAMPLES / "elephant.jpg"))
    page.locator("#cl-explain input").check()
    page.locator("#cl-heat img").first.wait_for()  # the first heatmap loads TensorFlow: seconds
    page.get_by_text(pattern(lang, "answer")).first.wait_for()
    shoot(page, out, bottom="#cl-heat")


def open_demo_queue(page, lang, reviewer):
    tab(page, lang, "review")
    page.get_by_label(say(lang, "rv_name")).fill(reviewer)
    page.locator("#rv-demo").click()
    page.get_by_text(fixed(lang, "rv_line_rank")).first.wait_for()
    page.locator("#rv-heat img").first.wait_for()


def truth():
    """The demo photos' true classes (``sources.csv``) and the labels it ships with (10 wrong)."""
    from classifier.labels import read_labels

    true = {r["file"].split(".")[0]: parse_label(r["class"]) for r in csv.DictReader(open(DEMO / "sources.csv"))}
    return true, read_labels(DEMO / "results.json")


def fix_wrong_labels(page, lang, limit=40):
    """Decide the queue's photos by their true class until the ten wrong labels are fixed (suspects come first)."""
    true, before = truth()
    wrong, done = {k for k in true if before.get(k) != true[k]}, set()
    for _ in range(limit):
        if not wrong - done:
            break
        text = page.locator("#review-panel").inner_text()
        key = re.search(r"demo/(\d+)\.jpg", text).group(1)
        page.locator(f"#rv-class-{KEYS[true[key]]}").click()
        done.add(key)
        # the next photo (or the same one, counted once more): wait for the panel to change, not for a count
        page.wait_for_function("(t) => document.querySelector('#review-panel').innerText !== t", arg=text)
        settle(page, 0.3)
    return done


def review(page, lang, out):
    open_demo_queue(page, lang, {"en": "Ada", "zh": "李雷"}[lang])
    shoot(page, out, bottom="#review-panel")
    fix_wrong_labels(page, lang)


def audit(page, lang, out):
    """Draw a blind audit of 12 photos, label them by their true class, and read the estimate."""
    true, _ = truth()
    page.get_by_role("button", name=say(lang, "rv_audit")).click()
    pick(page, say(lang, "rv_audit_set"), "datasets/demo")
    page.get_by_label(say(lang, "rv_audit_size")).fill("12")
    page.locator("#rv-audit-draw").click()
    page.get_by_text(fixed(lang, "rv_audit_drawn")).first.wait_for()
    pick(page, say(lang, "rv_status"), say(lang, "status_audit"))
    # a fresh session: the queue skips the photos this session has shown, and one of them may be in the audit
    page.get_by_role("button", name=say(lang, "rv_start")).click()
    time.sleep(1)
    label_blind(page, lang, true)
    pick(page, say(lang, "rv_status"), say(lang, "status_unreviewed"))
    page.locator("#rv-audit-estimate").click()
    page.get_by_text(fixed(lang, "rv_audit_line")).first.wait_for()
    shoot(page, out, top=page.get_by_role("button", name=say(lang, "rv_audit")), bottom="#rv-audit-line")


def label_blind(page, lang, true):
    """Label the audit photos the queue offers by their true class, until none is left for this reviewer."""
    for _ in range(24):
        text = page.locator("#review-panel").inner_text()
        if fixed(lang, "rv_audit_blind") not in text:
            break
        key = blind_key(page, page.locator("#review-panel img").first.get_attribute("src"), true)
        page.locator(f"#rv-class-{KEYS[true[key]]}").click()
        # the panel changes: "N audit photos left for you" counts down, or the queue is done
        page.wait_for_function("(t) => document.querySelector('#review-panel').innerText !== t", arg=text)
        settle(page, 0.3)


_PIXELS = {}


def blind_key(page, src, true):
    """Which demo photo a blind audit shows (its name is hidden): the nearest demo photo by its small thumbnail."""
    import numpy as np
    from PIL import Image

    if not _PIXELS:
        for k in true:
            _PIXELS[k] = np.asarray(Image.open(DEMO / f"{k}.jpg").convert("RGB").resize((24, 24)), float)
    data = page.evaluate("async (s) => { const r = await fetch(s); const b = await r.arrayBuffer(); "
                         "return Array.from(new Uint8Array(b)); }", src)
    shown = np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB").resize((24, 24)), float)
    return min(_PIXELS, key=lambda k: np.abs(_PIXELS[k] - shown).mean())


def evaluate(page, lang, out):
    tab(page, lang, "evaluate")
    pick(page, say(lang, "ev_set"), "datasets/demo")
    page.get_by_role("button", name=say(lang, "ev_run"), exact=True).click()
    page.get_by_text(fixed(lang, "ev_review_change")).first.wait_for()
    page.locator("#ev-risk img").first.wait_for()
    page.wait_for_function("() => document.querySelectorAll('[role=tabpanel] img').length >= 2")  # the matrix too
    shoot(page, out, bottom=page.locator("[role=tabpanel]:visible img").first)  # down to the confusion matrix


def train(page, lang, out):
    tab(page, lang, "train")
    pick(page, say(lang, "tr_data"), "datasets/demo")
    page.get_by_role("button", name=say(lang, "tr_start")).click()
    page.get_by_text(f"· {say(lang, 'state_done')} ·").first.wait_for(timeout=900_000)
    page.locator("#train-matrix img").first.wait_for()
    shoot(page, out, bottom="#train-matrix")


def tools_page(page, url, out):
    page.goto(url + "tools/")
    page.set_input_files("input[type=file]", str(EXAMPLES / "elephant.jpg"))
    page.get_by_role("button", name="classify", exact=True).click()
    page.get_by_text('"answer": "elephant"').first.wait_for()
    shoot(page, out)


class StandInLLM:
    """A local OpenAI-compatible chat server that answers as a vision LLM with GLM-4V's known slip: it names the
    served model's top class for each photo, except that it calls every dog a cat (the original project's GLM called
    about 250 dogs "cat")."""

    def __init__(self):
        from classifier.predictor import Classifier

        self.classifier, self.asked = Classifier.load(), 0
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                import base64

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = body["messages"][0]["content"][0]["image_url"]["url"]
                answer = llm.answer(base64.b64decode(url.split(",", 1)[-1]))
                data = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "glm-4.6v-flash",
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/paas/v4/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, jpeg: bytes) -> str:
        with tempfile.NamedTemporaryFile(suffix=".jpg") as f:
            f.write(jpeg)
            f.flush()
            top = CLASSES[int(self.classifier.predict([f.name])[0].argmax())]
        self.asked += 1
        return "cat" if top == "dog" else top

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def llm_journey(page, url, unsure_out, scorecard_out):
    lang = "en"
    page.goto(url)
    open_demo_queue(page, lang, "Ada")
    page.get_by_role("button", name=say(lang, "rv_admin")).click()
    page.locator("#rv-unsure input").check()
    page.get_by_text(fixed(lang, "rv_plan")).first.wait_for()
    shoot(page, unsure_out, top="#rv-unsure", bottom=page.get_by_role("button", name=say(lang, "rv_autolabel")),
          pad=24)
    page.get_by_role("button", name=say(lang, "rv_autolabel")).click()
    page.get_by_text(re.compile(r"Auto-labeled \d+ of \d+")).first.wait_for(timeout=600_000)
    fix_wrong_labels(page, lang, limit=30)
    page.get_by_role("button", name=say(lang, "rv_impact")).click()
    page.get_by_role("button", name=say(lang, "rv_compute")).click()
    page.wait_for_function("() => (document.querySelector('#rv-scorecard') || {}).innerText?.includes('glm-')")
    page.get_by_text(fixed(lang, "rv_llm_confusion")).first.wait_for()
    shoot(page, scorecard_out, top=page.get_by_role("button", name=say(lang, "rv_impact")),
          bottom=page.locator("[role=tabpanel]:visible table").last.locator(
              "xpath=ancestor::div[contains(concat(' ', @class, ' '), ' block ')][1]"), pad=16)


# -- the model card's figure (no app) ----------------------------------------------------------------------------

def model_card(out):
    """The default model's confusion matrix out of fold, from the report its card's figures come from."""
    from evaluation.plots import save_report_matrix

    path = Settings.from_env().model_path
    report = json.loads((path.with_name("out_of_fold.json")).read_text())
    save_report_matrix(report, f"{model_meta(path)['name']} · out of fold", out)
    print(f"  {rel(out)}", flush=True)


# -- figures.json ------------------------------------------------------------------------------------------------

def record(made, out):
    """Add (or replace) the entries of the files ``made`` in ``out/figures.json``; other entries are kept."""
    index = out / "figures.json"
    entries = json.loads(index.read_text())["figures"] if index.exists() else []
    files = {e["file"]: e for e in entries}
    for file, (what, command) in made.items():
        files[file] = {"file": file, "what": what, "command": command, **served_model(),
                       "made": time.strftime("%Y-%m-%d")}
    index.write_text(json.dumps({
        "about": "Every figure and screenshot under docs/: the command that made it and the served model it shows "
                 "(name, classifier.modelfile.content_hash). tests/test_docs.py fails when the served default differs.",
        "figures": sorted(files.values(), key=lambda e: e["file"])}, indent=1, ensure_ascii=False) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(SHOTS), help="make only these (default: all)")
    ap.add_argument("--lang", nargs="+", choices=sorted(LANGS), default=sorted(LANGS), help="the tabs' languages")
    ap.add_argument("--out", type=Path, default=DOCS)
    args = ap.parse_args(argv)
    wanted, out = set(args.only or SHOTS), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    made = {}

    def file(name, lang="en"):
        path = out / SHOTS[name][0].format(lang=lang)
        command = f"{COMMAND} --only {name}" + (f" --lang {lang}" if name in TABS else "")
        made[rel(path)] = (SHOTS[name][1] + (f" ({lang})" if name in TABS else ""), command)
        return path

    if "model-card" in wanted:
        model_card(file("model-card"))
    for lang in args.lang:
        todo = [n for n in (*TABS, *EN_ONLY) if n in wanted and (lang == "en" or n in TABS)]
        if not todo:
            continue
        print(f"{lang}: {', '.join(todo)}", flush=True)
        with launched() as (url, _), browser(lang) as page:
            page.goto(url)
            if "classify" in todo:
                classify(page, lang, file("classify", lang))
            if "mcp-tools" in todo:
                tools_page(page, url, file("mcp-tools"))
                page.goto(url)
            if {"review", "evaluate", "train", "audit"} & set(todo):
                if "review" in todo:
                    review(page, lang, file("review", lang))
                else:
                    open_demo_queue(page, lang, "Ada")
                    fix_wrong_labels(page, lang)
                if "audit" in todo:
                    audit(page, lang, file("audit"))
                if "evaluate" in todo:
                    evaluate(page, lang, file("evaluate", lang))
                if "train" in todo:
                    train(page, lang, file("train", lang))
    if wanted & set(LLM):
        print("en: the stand-in LLM", flush=True)
        llm = StandInLLM()
        try:
            with launched(ZHIPUAI_API_KEY="sk-screenshots", GLM_BASE_URL=llm.url) as (url, _), browser("en") as page:
                llm_journey(page, url, file("llm-unsure"), file("llm-scorecard"))
        finally:
            llm.stop()
    record(made, out)
    print(f"{len(made)} files; {rel(out / 'figures.json')} updated", flush=True)


if __name__ == "__main__":
    main()
