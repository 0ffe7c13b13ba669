"""The web app: compose the tabs, read settings, launch.  Run ``python app.py`` and open http://127.0.0.1:7860."""

import contextlib
import importlib
import json
import os
import sys
import threading

# Gradio sets matplotlib's backend to "agg" around every event (and back): left to choose, matplotlib imports pyplot
# to decide (a quarter of a second on the first answer); and set under another spelling ("Agg"), each event switches
# pyplot's backend, which fails while another thread is importing pyplot (a first evaluation)
os.environ["MPLBACKEND"] = "agg"

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware

from classifier import ASSETS
from classifier.serving import ModelSlot
from i18n import LANGUAGES, STRINGS
from settings import Settings
from studio import classify as classify_tab
from studio import evaluate as evaluate_tab
from studio import given, review_view
from studio import review as review_tab
from studio import train as train_tab
from studio.common import T, fill_at_load, one_line_refusals, shown
from studio.fair import FairShare
from studio.guard import Guard
from studio.http import HttpDoor, LanguagePage
from studio.tools import build_tools

WARM_AFTER = 2.0  # seconds after the start that Grad-CAM is loaded in the background if no one has asked anything
# Gradio's own words it has no catalog key for, in each language (assets/language.js puts them in the page's)
GRADIO_WORDS = {lang: {"processing": STRINGS[lang]["gradio_processing"], "queue": STRINGS[lang]["gradio_queue"]}
                for lang in LANGUAGES}
SCRIPTS = f"<script>window.studioGradioWords = {json.dumps(GRADIO_WORDS, ensure_ascii=False)};</script>" + "".join(
    f"<script>{(ASSETS / name).read_text()}</script>" for name in ("hotkeys.js", "language.js"))
# Gradio's Markdown sets its own font size inside the wrapper, so the title rule targets the inner paragraph; the
# review tab's class buttons sit in a fixed 5-column grid instead of wrapping one onto a row of its own.
CSS = """
.title p {font-size: 1.5em !important; font-weight: 700}
.rv-grid {display: grid !important; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 6px}
.rv-grid > button {min-width: 0 !important; height: 100%}
.rv-closed {display: none !important}
"""


def build_app(settings=None):
    """Build the Gradio app (not launched): one tab per package, sharing the served model."""
    settings = settings or Settings.from_env()
    settings.install_demo()  # something to try in every tab on first start
    threading.Thread(target=restore_kept, args=(settings,), daemon=True).start()  # runs, evaluations: listed once back
    slot = ModelSlot(settings.model_path, settings.serving_engine, settings.model_cache, settings.low_confidence)
    guard = Guard(settings)
    with gr.Blocks(title="Animals-10 studio", delete_cache=(3600, 3600)) as demo:  # uploads kept <= 2 h
        with gr.Row(equal_height=True):
            gr.Markdown(T("title"), elem_classes="title")
            # English / 中文 beside the browser's own choice: a session cookie, then the page loads again in it
            switch = gr.Radio([(name, code) for code, name in LANGUAGES.items()], show_label=False, container=False,
                              elem_id="language", scale=0, min_width=190)
        switch.input(None, switch, None, js="(lang) => studioLanguage(lang)")
        fill_at_load(lambda lang: lang, switch)
        gr.Markdown(T("subtitle"))
        gr.Markdown(T(guard.notice()), elem_id="access-notice")
        if settings.sign_in_test:  # started with SIGN_IN_LOCAL_TESTING=1 (settings.py): say it on every page
            gr.Markdown(T("sign_in_local_test"), elem_id="sign-in-test")
        session_threshold = gr.State(None)  # a "none of the 10" threshold picked in Evaluate, for Classify
        with gr.Tabs() as tabs:
            # each tab's build returns the parts wired across tabs (a small dataclass: studio.classify.ClassifyParts...)
            with gr.Tab(T("tab_classify"), id="classify"):
                classify = classify_tab.build(settings, slot, guard, T, session_threshold)
            with gr.Tab(T("tab_review"), id="review"):
                review = review_tab.build(settings, slot, guard, T)
            with gr.Tab(T("tab_evaluate"), id="evaluate"):
                evaluate = evaluate_tab.build(settings, slot, guard, T, session_threshold)
            with gr.Tab(T("tab_train"), id="train"):
                train = train_tab.build(settings, slot, guard, T)
        def serving(lang):  # which model serves, in the viewer's language
            return classify_tab.model_line(slot.get(), lang)

        # After "Serve this model", the Classify tab names the new model (and on every page load).
        train.served.then(shown(serving), None, classify.model_line, api_visibility="private")
        fill_at_load(serving, classify.model_line)
        fill_at_load(lambda lang: review_view.progress_line(review.review, lang), review.progress)
        # "Open these in the review queue": the Evaluate tab's selected cell becomes the Review tab's filters.
        evaluate.open_review.click(
            lambda c: (gr.Dropdown(value=c[0] if c else "all"), gr.Dropdown(value=c[1] if c else "all"),
                       gr.Dropdown(value="all"), gr.Tabs(selected="review")),
            evaluate.cell, [review.label, review.predicted, review.status, tabs], api_visibility="private")
        # A band selected on the Evaluate tab's map: its photos become the Review tab's queue, which opens.
        evaluate.map.select(open_map_band, evaluate.points,
                            [review.photos, review.label, review.predicted, review.status, tabs],
                            api_visibility="private", queue=False)
    demo.slot = slot
    guard.blocks = demo  # the door counts the costly requests waiting in this app's queue
    return demo


def open_map_band(points, evt: gr.SelectData):
    """The photos of a band selected on the map (:func:`studio.evaluate.keys_in`) as Review's queue, every other
    filter at all; nothing where the label store does not know the set (the map's line says to import it)."""
    uids = evaluate_tab.uids_in(points, evaluate_tab.keys_in(points, evt.index))
    if not uids:
        return (gr.skip(),) * 5
    return ("\n".join(uids), *(gr.Dropdown(value="all"),) * 3, gr.Tabs(selected="review"))


@contextlib.contextmanager
def served_apps_only():
    """Gradio makes a Blocks' FastAPI app when the Blocks is made, when its ``with`` ends and at ``.queue()``, and
    ``mount_gradio_app`` makes the one that is served; the first three are thrown away. Each costs about 0.1 s here
    (80 routes analysed by FastAPI), which is a tenth of a fresh start to the first answer: while the apps are
    built, none is made."""
    from gradio.routes import App

    made = App.__dict__["create_app"]
    App.create_app = staticmethod(lambda *args, **kwargs: None)
    try:
        yield
    finally:
        App.create_app = made


def restore_kept(settings):
    """After a restart with an empty ``DATA_DIR``: the runs and evaluations kept in ``PERSIST_DIR`` come back, in the
    background (the label store is restored before anything is served, by the Review tab)."""
    restored = settings.layout.restore_kept()
    if any(restored.values()):
        print("restored from PERSIST_DIR: " + "; ".join(f"{k} {', '.join(v)}" for k, v in restored.items() if v),
              file=sys.stderr, flush=True)


def mount(server, blocks, path: str, settings, **kwargs):
    """Mount ``blocks`` at ``path`` of ``server``, with the checks a launched app has. Gradio checks that a file
    input is a file a user uploaded (not a server path such as ``/etc/hostname``, the label database or
    ``/dev/zero``) and outside ``blocked_paths`` only once ``has_launched`` is set, which ``launch()`` does and
    ``mount_gradio_app`` does not: without it any server path given as a file input is read (and hashed on the
    event loop: ``/dev/zero`` stops the server)."""
    # show_error=False: an unexpected exception's own text (which may name server paths) never reaches a user, only
    # the refusals the handlers raise as gr.Error with words of their own
    # ssr_mode=False, explicitly: server-side rendering would start a Node server beside Python for nothing a
    # 2-vCPU Space needs
    gr.mount_gradio_app(server, blocks, path=path, blocked_paths=[str(settings.data_dir.resolve())], show_error=False,
                        ssr_mode=False, **kwargs)
    blocks.has_launched = True
    given.install(blocks)  # its handlers open only the files its upload route stored (studio.given)
    one_line_refusals(blocks)  # a refused request: one log line, a short reply with no server path


def make_server(settings, door: bool = True, warm: bool = False):
    """The studio at ``/`` and the agents' read-only tools (MCP) at ``/tools``, in one FastAPI server (one port, as
    a Space has). ``door=False`` leaves out the HTTP door, only so that the tests can show each handler's own file
    rule holds without it (:mod:`studio.given`). ``warm``: once it serves, Grad-CAM is loaded in the background
    (:meth:`classifier.serving.ModelSlot.warm`), so the first heatmap is as quick as the next."""
    from fastapi import FastAPI

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with served_apps_only():
        demo = build_app(settings).queue(default_concurrency_limit=4, max_size=256)
        # its photos are bounded as the Classify tab's, and so is its own queue (no password: it only reads)
        tools = build_tools(demo.slot, settings).queue(default_concurrency_limit=2, max_size=64)
    # each new session keeps copies of the inputs it sent (about 0.3 MB in the studio): Gradio keeps 10,000, so a
    # script making up sessions could hold 3 GB; the oldest beyond 1,000 are forgotten (their page starts again)
    demo.state_session_capacity = tools.state_session_capacity = 1000
    doors = [Middleware(HttpDoor, min_free_mb=settings.min_free_mb)] if door else []
    @contextlib.asynccontextmanager
    async def serving(_):
        if warm:  # once it listens, after the first answer (or WARM_AFTER s): neither the start nor it is slowed
            demo.slot.warm(WARM_AFTER)
        yield

    fair = Middleware(FairShare, apps={"/tools": tools, "": demo})
    server = FastAPI(middleware=[fair, *doors, Middleware(LanguagePage)], lifespan=serving)
    # first: the studio, mounted at the root, would otherwise answer /tools too
    mount(server, tools, "/tools", settings, mcp_server=True, footer_links=["api"],
          max_file_size=f"{settings.max_upload_mb}mb")
    mount(
        server, demo, "/", settings,
        # one limit for every uploaded file, applied before any handler: a data set's; Classify checks its own
        max_file_size=f"{max(settings.max_upload_mb, settings.max_dataset_mb)}mb",
        i18n=T, footer_links=["api", "settings"], css=CSS, head=SCRIPTS,
        # Nothing under DATA_DIR is served by path (the label DB, logs, runs): users get copies of what they were
        # handed (pictures, exports made for their request), which Gradio serves from its own cache.
        allowed_paths=[str(classify_tab.EXAMPLES_DIR)])
    # mount_gradio_app serves each app from a new App and leaves blocks.app as it was: point it at the mounted
    # one, whose per-session state (a dropdown's new choices after an upload) the queue reads
    tools.app, demo.app = server.routes[-2].app, server.routes[-1].app
    server.state.tools = tools
    return server


def main(door: bool = True):
    """Serve :func:`make_server` on ``GRADIO_SERVER_NAME``:``PORT`` (127.0.0.1:7860 unless set)."""
    import uvicorn

    settings = Settings.from_env()
    if why := settings.sign_in_refusal():  # a sign-in anyone could forge: not started, and why (settings.py)
        raise SystemExit(str(why))
    server = make_server(settings, door, warm=settings.warm_grad_cam)
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    port = int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860)
    # the MCP tools call their app back here, on loopback: left unset, Gradio takes the address from the first
    # MCP request's headers (x-gradio-server, X-Forwarded-Host), which anyone can write
    server.state.tools.mcp_server_obj._local_url = f"http://127.0.0.1:{port}/tools/"
    print(f"* Running on http://{host}:{port}/ (MCP tools: http://{host}:{port}/tools/gradio_api/mcp/)", flush=True)
    # Gradio imports matplotlib at the first event: do it while the server starts, not while a user waits
    threading.Thread(target=importlib.import_module, args=("matplotlib",), daemon=True).start()
    # a stop (SIGTERM) waits at most 3 s for open connections (a browser keeps its event stream open)
    uvicorn.run(server, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
