import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# One thread per process for the numeric libraries, the launched apps and CLIs included: the suite runs a worker per
# core (pyproject's -n 2), and two processes each spinning a pool of threads over the same cores waste CPU (the whole
# suite took 7:23 against 7:56, before training.probe.fit took one thread itself). Speed figures come from benchmarks/.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(_name, "1")
# One cache of converted (.tflite) models for the whole run, the launched apps and CLIs included: each model file is
# converted once, not once per test's DATA_DIR.
os.environ.setdefault("MODEL_CACHE", tempfile.mkdtemp(prefix="tflite-cache-"))
# The launched apps load Grad-CAM when first asked, as a test expects: not in the background at a moment a test cannot
# tell (TensorFlow's import writes to the log and takes memory); tests/test_heatmap.py tries the warm-up itself
os.environ.setdefault("GRAD_CAM_WARM", "0")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLES = ROOT / "assets" / "examples"
ARTIFACTS = ROOT / "artifacts" / "journeys"  # the browser tests' screenshots (and, when one fails, its page)
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def default_classifier():
    from classifier.predictor import Classifier
    return Classifier.load()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a failed test on its item, so fixtures (the browser journeys) can save what the page showed."""
    outcome = yield
    if outcome.get_result().failed:
        item.failed = True


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, one for the file: each test has its own context (cookies, storage, locale) in it. Playwright
    keeps an event loop running until the file ends, so a later test of the file cannot call ``asyncio.run``: the
    browser test of test_app.py, whose MCP tests do, launches its own."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, request):
    """A page in a fresh browser context, in English (or the locale a test passes: indirect=True)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console = []
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, locale=getattr(request, "param", "en-US"))
    page = context.new_page()
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    yield page
    name = request.node.name
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if getattr(request.node, "failed", False):  # set by pytest_runtest_makereport above
        (ARTIFACTS / f"{name}.html").write_text(page.content())
        (ARTIFACTS / f"{name}.console.log").write_text("\n".join(console))
    context.close()
