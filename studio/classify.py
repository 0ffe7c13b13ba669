"""The Classify tab: a photo in, the top-k classes (English and Chinese names) out, at once.

The event ``/classify`` takes the raw upload (``preprocess=False``) so that Gradio never opens the file with PIL
first: every file goes through the one decode, and a bad file gets its clear message.
"""

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from classifier import ASSETS
from classifier.classes import CLASSES, NONE, TOP_K, display_name
from classifier.images import ImageError, decode_with_info
from escaping import plain
from i18n import language, say

from .given import allow, given_file

EXAMPLES_DIR = ASSETS / "examples"


ANSWERS = Path(tempfile.gettempdir()) / "animals10-answers"


class Unusable(gr.Error):
    """A file a user gave (it passed the file rule, :func:`studio.given.given_file`) that is no usable photo: text
    named ``.jpg``, a truncated file... Its words are the decode's."""


def headline_value(headline: str, scores: dict) -> str:
    """A ``gr.Label`` value whose headline differs from its top score ("none of the 10 animals" above the ten
    scores). Gradio 6's Label reads that form only from a .json file (its dict form is taken as class -> score),
    so it goes through one, read as the handler returns and removed a minute later."""
    ANSWERS.mkdir(exist_ok=True)
    for old in ANSWERS.glob("*.json"):
        if time.time() - old.stat().st_mtime > 60:
            old.unlink(missing_ok=True)
    fd, path = tempfile.mkstemp(suffix=".json", dir=ANSWERS)
    with os.fdopen(fd, "w") as f:
        json.dump({"label": headline, "confidences": [{"label": c, "confidence": p} for c, p in scores.items()]}, f)
    return path


def classify_image(slot, image, lang: str = "en", top_k: int = TOP_K, max_mb: float = 20,
                   threshold: float | None = None) -> tuple[dict, str]:
    """Classify one upload; return ``(value for gr.Label, status markdown)``.

    ``image`` is Gradio's raw file payload (a dict with ``path``) or a path; ``lang`` is the user's language
    (``"en"`` or ``"zh"``: assets/i18n.json). Under the "none of the 10" threshold (``threshold``, picked for this
    session, else the model's own rule: :attr:`~classifier.predictor.Classifier.none_threshold`) the answer is "none
    of the 10 animals", with the ten scores below it. Raises ``gr.Error`` with the decode's message for a file that
    is not a usable image, and for one over ``max_mb`` (Gradio's own upload limit is the larger one data sets need).
    """
    path = upload_path(image, lang, max_mb)
    clf = slot.get()
    start = time.perf_counter()
    try:
        pixels, info = decode_with_info(path, clf.size)
    except ImageError as e:
        raise Unusable(e.said(lang), title=say(lang, "unusable_title"), print_exception=False) from None
    probs = clf.predict_pixels(pixels[None])[0]
    slot.answered.set()  # Grad-CAM's warm-up, if it waits, may start (ModelSlot.warm)
    cut = threshold or clf.none_threshold  # chosen for the session, else the model's own
    ms = (time.perf_counter() - start) * 1000
    top = clf.top_k(probs, max(1, min(int(top_k or TOP_K), len(clf.classes))))
    scores = {display_name(c): p for c, p in top}
    if clf.answer(probs, cut) == NONE:
        lines = [say(lang, "answer_none", name=display_name(NONE), ms=ms, p=top[0][1], threshold=cut,
                     closest=display_name(top[0][0]))]
        scores = headline_value(display_name(NONE), {c: float(p) for c, p in scores.items()})
    else:
        lines = [say(lang, "answer", name=display_name(top[0][0]), p=top[0][1], ms=ms)]
    lines += [f"ℹ️ {note.said(lang)}" for note in info["notes"]]
    return scores, "\n\n".join(lines)


def answer_on_change(classify, image) -> tuple:
    """What a photo put in the box answers, as ``(scores, status, the photo)`` (``classify()`` gives the first
    two). A file that is no usable photo (:class:`Unusable`: text named ``.jpg``...) is said once, in the status,
    with no toast; the previous answer and the photo (a broken picture) are cleared. Any other refusal (a file
    that is not one this page uploaded, too large) is the request's refusal, as for every file input. The box
    emptied, as that clears it: nothing to say (``image.clear`` empties the answer when a person does it)."""
    if not image:
        return gr.skip(), gr.skip(), gr.skip()
    try:
        scores, line = classify()
    except Unusable as e:
        return None, f"⚠️ {plain(e.message)}", None
    return scores, line, gr.skip()


def model_line(clf, lang: str = "en") -> str:
    """``model: NAME, 95.8% accuracy on 285 held-out photos, served by LiteRT``: which model serves, how good it
    measured, and which engine runs it, in the user's language (as for :func:`classify_image`)."""
    meta = clf.meta
    if "accuracy" in meta:  # read off the model's own card: its recalls' mean is the balanced figure
        recalls = list((meta.get("per_class_recall") or {}).values())
        balanced = meta.get("balanced_accuracy") or (sum(recalls) / len(recalls) if recalls else meta["accuracy"])
        key = "model_measured_cv" if meta.get("measured_on") == "out-of-fold" else "model_measured"
        return say(lang, key, name=clf.name, balanced=balanced, accuracy=meta["accuracy"],
                   n=meta.get("test_images", "?"), engine=clf.engine_name)
    return say(lang, "model_unmeasured", name=clf.name, engine=clf.engine_name)


def upload_path(image, lang: str = "en", max_mb: float = 20) -> str:
    """The file of a photo upload (Gradio's raw payload): only one this process stored from what a user sent
    (:func:`studio.given.given_file`); ``gr.Error`` when there is none, when it is anything else, or when it is over
    ``max_mb`` (Gradio's own upload limit is the larger one data sets need)."""
    return given_file(image, lang, max_mb)


def heatmap(slot, image, label=None, lang: str = "en", max_mb: float = 20) -> tuple:
    """Where the model looked in an upload, for ``label`` (None or "": its top class): ``(picture, the class
    shown, its top-k classes)``. Raises ``gr.Error`` as :func:`classify_image` does for what is not a photo."""
    path = upload_path(image, lang, max_mb)
    try:
        return slot.explainer().explain(path, label or None)
    except ImageError as e:
        raise gr.Error(e.said(lang), title=say(lang, "unusable_title"), print_exception=False) from None


@dataclass(frozen=True)
class ClassifyParts:
    """What the Classify tab hands the app to wire across tabs."""

    model_line: gr.Markdown  # which model serves: named again after "Serve this model" and at each page load


def build(settings, slot, guard, T, session_threshold=None) -> ClassifyParts:
    """Add the Classify tab's components and events to the current ``gr.Blocks``; ``session_threshold`` (a
    ``gr.State``) holds a "none of the 10" threshold this browser session picked in the Evaluate tab. Returns the
    parts the app wires across tabs (:class:`ClassifyParts`)."""
    session_threshold = session_threshold or gr.State(None)
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(label=T("photo"), sources=["upload", "clipboard", "webcam"], type="filepath",
                             height=360)
            top_k = gr.Slider(1, len(CLASSES), value=TOP_K, step=1, label=T("top_k"))
            button = gr.Button(T("classify"), variant="primary")
        with gr.Column(scale=1):
            scores = gr.Label(label=T("scores"), num_top_classes=10)
            status = gr.Markdown(T("status_idle"))
            serving = gr.Markdown(model_line(slot.get()))
            with gr.Row():
                explain = gr.Checkbox(label=T("cl_explain"), value=False, elem_id="cl-explain", scale=2)
                explain_for = gr.Dropdown([(display_name(c), c) for c in CLASSES], value=None,
                                          label=T("cl_explain_for"), visible=False, scale=1)
            heat = gr.Image(label=T("cl_heat"), type="pil", format="jpeg", interactive=False, visible=False,
                            height=360, elem_id="cl-heat")
    examples = gr.Examples([[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.jpg"))], inputs=[image],
                           label=T("examples"), examples_per_page=10)
    allow(s[0]["path"] for s in examples.dataset.samples)  # their cached copies: what a click on one sends
    last_status = gr.State("")

    def run(img, k, chosen, request: gr.Request):
        return classify_image(slot, img, language(request), k, settings.max_upload_mb, chosen)

    def run_on_change(img, k, chosen, request: gr.Request):
        """However the photo came (a file, an example clicked, a paste, the webcam): classified at once
        (:func:`answer_on_change`)."""
        return answer_on_change(lambda: run(img, k, chosen, request), img)

    classified = []
    for trigger, fn, outputs, api_name in ((button.click, run, [scores, last_status], "classify"),
                                           (image.change, run_on_change, [scores, last_status, image], False)):
        event = trigger(fn, [image, top_k, session_threshold], outputs, api_name=api_name, show_progress_on=scores,
                        preprocess=False, concurrency_limit=4, api_visibility="public" if api_name else "private")
        classified.append(event.then(lambda s: s, last_status, status, api_visibility="private", queue=False))
    image.clear(lambda: (None, "", ""), None, [scores, status, last_status], api_visibility="private", queue=False)

    wire_heatmap(settings, slot, classified, image, explain, explain_for, heat)
    return ClassifyParts(serving)


def wire_heatmap(settings, slot, classified, image, explain, explain_for, heat):
    """Where the model looked: after each classification while the toggle is on, when it is turned on, and for
    another of the top-k classes picked (also the API's ``/heatmap``)."""
    def show_heat(img, on, label, request: gr.Request):
        """The heatmap beside the scores while the toggle is on, for ``label`` (None: the top class); the class
        choice then offers the photo's top-k classes."""
        if img:
            given_file(img, language(request))  # a file input passes the one rule whether or not it is used
        if not on or not img:
            return gr.Image(value=None, visible=bool(on)), gr.Dropdown(visible=bool(on))
        picture, shown, top = heatmap(slot, img, label, language(request), settings.max_upload_mb)
        choices = [(display_name(c), c) for c in dict.fromkeys([*top, shown])]
        return gr.Image(value=picture, visible=True), gr.Dropdown(choices=choices, value=shown, visible=True)

    def after_classify(img, on, request: gr.Request):
        return show_heat(img, on, None, request)

    def pick(img, label, request: gr.Request):
        picture, shown, _ = heatmap(slot, img, label, language(request), settings.max_upload_mb)
        return picture, shown

    for event in classified:
        event.then(after_classify, [image, explain], [heat, explain_for], api_visibility="private", preprocess=False,
                   concurrency_id="heatmap", concurrency_limit=2)
    explain.change(after_classify, [image, explain], [heat, explain_for], api_visibility="private", preprocess=False,
                   concurrency_id="heatmap", concurrency_limit=2)
    # also the API's "where did the model look" (read-only): a photo and a class id in, the picture out
    explain_for.input(pick, [image, explain_for], [heat, explain_for], api_name="heatmap", concurrency_limit=2,
                      concurrency_id="heatmap", preprocess=False)  # every file through the one decode, as /classify
