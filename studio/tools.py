"""The classifier as tools for agents: a small read-only app served over MCP beside the main one.

Gradio makes every public endpoint of an app an MCP tool, and the main app's endpoints include the ones that change
labels, import, train and serve. So the tools live in their own app, mounted at ``/tools`` (``app.py``), whose only
endpoints read: classify a photo, its top-k classes, what model answers, and a data set's copies and leaks as last
computed (never computed here). An agent connects to
``/tools/gradio_api/mcp/`` (streamable HTTP).
"""

import json

import gradio as gr
import numpy as np

from classifier.classes import CHINESE, NONE, TOP_K, display_name
from classifier.images import ImageError

from .given import given_file


def build_tools(slot, settings=None) -> gr.Blocks:
    """The read-only tools app for the model in ``slot`` (a :class:`~classifier.serving.ModelSlot`); "none" under
    the model's answer rule, as the Classify tab (:attr:`~classifier.predictor.Classifier.none_threshold`).
    ``settings`` (the app's): where the data sets and their cached curation reports are."""

    def classify(image: str) -> str:
        """Classify a photo of an animal into the ten Animals-10 classes (butterfly, cat, chicken, cow, dog,
        elephant, horse, sheep, spider, squirrel), or "none" when it is none of them.

        Args:
            image: the photo (JPEG, PNG, WebP...) as a data URL (data:image/jpeg;base64,...); URLs are not fetched.

        Returns:
            answer (a class id, or "none" under the model's calibrated threshold), its English and Chinese name,
            and the five most likely classes with their probabilities.
        """
        clf, probs, top = scores(slot, image, TOP_K)
        threshold = clf.none_threshold
        said = clf.answer(probs, threshold)
        return _json({"answer": said, "name": display_name(said), "threshold": threshold, "top": top})

    def top_k(image: str, k: float = 3) -> str:
        """The k most likely of the ten classes for a photo, best first, with their probabilities.

        Args:
            image: the photo as a data URL (data:image/jpeg;base64,...).
            k: how many classes, 1 to 10.
        """
        return _json(scores(slot, image, k)[2])

    def model_info() -> str:
        """Which model answers: its name, engine, the classes it knows (English and Chinese), its measured accuracy
        on held-out photos and its "none of the 10" threshold."""
        clf = slot.get()
        return _json({"name": clf.name, "engine": clf.engine_name, "input_size": clf.size,
                      "classes": {c: CHINESE[c] for c in clf.classes}, "none": display_name(NONE),
                      "accuracy": clf.meta.get("accuracy"), "held_out_photos": clf.meta.get("test_images"),
                      "none_threshold": clf.none_threshold, "temperature": clf.temperature})

    with gr.Blocks(title="Animals-10 tools") as tools:
        gr.Markdown("Read-only tools of the Animals-10 classifier, for agents (MCP). The studio is at `/`.")
        image = gr.Image(type="filepath", label="photo")
        k = gr.Number(value=3, precision=0, label="k")
        out = gr.Code(language="json", label="answer")  # JSON text: what an agent reads
        dataset = gr.Textbox(label="dataset", visible=settings is not None)
        with gr.Row():
            for fn, inputs in ((classify, [image]), (top_k, [image, k]), (model_info, []),
                               *(((curation_tool(settings, slot), [dataset]),) if settings else ())):
                gr.Button(fn.__name__).click(fn, inputs, out, api_name=fn.__name__, concurrency_limit=2,
                                             preprocess=False)
    return tools


def scores(slot, image, k):
    """The model answering, its probabilities for a photo, and its top ``k`` classes as an agent reads them; a
    refusal in plain words for no photo, a ``k`` that is not a number, or a file that is not a photo."""
    clf = slot.get()
    if not image:
        raise gr.Error("Give a photo as a data URL (data:image/jpeg;base64,...).",
                       print_exception=False)
    path = given_file(image)  # only what this process stored from the request: never a server path
    try:
        k = int(float(TOP_K if k is None else k))
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"k must be a whole number from 1 to {len(clf.classes)}.", print_exception=False) from None
    try:  # the raw upload (preprocess off): every file goes through the one decode, with its clear errors
        probs = clf.predict(path)
    except ImageError as e:
        raise gr.Error(str(e), print_exception=False) from None
    return clf, probs, [{"class": c, "name": display_name(c), "probability": round(p, 4)}
                        for c, p in clf.top_k(np.asarray(probs), max(1, min(k, len(clf.classes))))]


def curation_tool(settings, slot):
    """The tools app's ``curation_report`` for the data sets of ``settings`` and the model in ``slot``."""
    def curation_report(dataset: str) -> str:
        """Copies and leaks of a data set, as last computed (in the studio's Evaluate tab or with
        ``python -m evaluation curate``): groups of near-copies within it by photo key, its photos that are
        near-copies of the served model's training photos (leaks; "unavailable" when the model carries no index of
        them), copies in other data sets, and the figures with and without the leaked photos. Read-only: nothing is
        computed here.

        Args:
            dataset: a data set's name as the studio lists it (for example "datasets/demo").

        Returns:
            the report as JSON (counts, groups, leaks by key, across, figures, left_out), or what to do when it was
            not computed yet.
        """
        return _json(cached_report(settings, slot, dataset))

    return curation_report


def cached_report(settings, slot, name) -> dict:
    """The cached curation report (:func:`evaluation.curation.read_report`) of the data set ``name``, one of the
    studio's names only (never a path), for the served model (else the newest for any model); a refusal in plain
    words for any other name, and ``{"status": "not computed yet; ..."}`` when none is cached."""
    from evaluation.curation import NotComputed, read_report

    names = settings.datasets()
    if name not in names:
        raise gr.Error(f"No data set named {str(name)[:80]!r}; these exist: {', '.join(names) or 'none'}.",
                       print_exception=False)
    try:
        report = read_report(settings.layout, settings.dataset_path(name), slot.get().path)
    except NotComputed as e:
        return {"dataset": name, "status": str(e)}
    return {**report, "dataset": name, "status": "computed"}


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)
