"""The Classify tab: a photo in, the top-k classes (English and Chinese names) out, at once.

The event ``/classify`` takes the raw upload (``preprocess=False``) so that Gradio never opens the file with PIL
first: every file goes through the one decode, and a bad file gets its clear message.
"""

import time

import gradio as gr

from . import ASSETS
from .classes import TOP_K, display_name
from .images import ImageError, decode_with_info

EXAMPLES_DIR = ASSETS / "examples"


def classify_image(slot, image, top_k: int = TOP_K, low_confidence: float = 0.5) -> tuple[dict, str]:
    """Classify one upload; return ``(label dict for gr.Label, status markdown)``.

    ``image`` is Gradio's raw file payload (a dict with ``path``) or a path. Raises ``gr.Error`` with the
    decode's message for a file that is not a usable image.
    """
    if not image:
        raise gr.Error("No photo yet: upload, paste or take one first.", print_exception=False)
    path = image.get("path") if isinstance(image, dict) else image
    clf = slot.get()
    start = time.perf_counter()
    try:
        pixels, info = decode_with_info(path, clf.size)
    except ImageError as e:
        raise gr.Error(str(e), title="Not a usable image", print_exception=False) from None
    probs = clf.predict_pixels(pixels[None])[0]
    low_confidence = clf.threshold or low_confidence  # the calibrated cut, when the model has one
    ms = (time.perf_counter() - start) * 1000
    top = clf.top_k(probs, max(1, min(int(top_k or TOP_K), len(clf.classes))))
    lines = [f"**{display_name(top[0][0])}** ({top[0][1]:.0%}) in {ms:.0f} ms"]
    if top[0][1] < low_confidence:
        lines.append(f"⚠️ Not one of the 10 animals? The model is unsure (top score {top[0][1]:.0%} < "
                     f"{low_confidence:.0%}); it only knows these ten classes.")
    lines += [f"ℹ️ {note}" for note in info["notes"]]
    return {display_name(c): p for c, p in top}, "\n\n".join(lines)


def model_line(clf) -> str:
    """``model: NAME, 94.1% accuracy on 353 held-out photos, served by LiteRT``: which model serves, how good it
    measured, and which engine runs it."""
    meta, engine = clf.meta, f", served by {clf.engine_name}"
    if "accuracy" in meta:
        return (f"model: {clf.name}, {meta['accuracy']:.1%} accuracy on {meta.get('test_images', '?')} held-out "
                f"photos{engine}")
    return f"model: {clf.name} (accuracy not measured){engine}"


def build(settings, slot, guard, T):
    """Add the Classify tab's components and events to the current ``gr.Blocks``."""
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(label=T("photo"), sources=["upload", "clipboard", "webcam"], type="filepath",
                             height=360)
            top_k = gr.Slider(1, 10, value=TOP_K, step=1, label=T("top_k"))
            button = gr.Button(T("classify"), variant="primary")
        with gr.Column(scale=1):
            scores = gr.Label(label=T("scores"), num_top_classes=10)
            status = gr.Markdown(T("status_idle"))
            serving = gr.Markdown(model_line(slot.get()))
    gr.Examples([[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.jpg"))], inputs=[image], label=T("examples"),
                examples_per_page=10)
    last_status = gr.State("")

    def run(img, k):
        return classify_image(slot, img, k, settings.low_confidence)

    for trigger, api_name in ((button.click, "classify"), (image.upload, False)):
        event = trigger(run, [image, top_k], [scores, last_status], api_name=api_name, preprocess=False,
                        concurrency_limit=4, api_visibility="public" if api_name else "private")
        event.then(lambda s: s, last_status, status, api_visibility="private", queue=False)
    image.clear(lambda: (None, ""), None, [scores, status], api_visibility="private", queue=False)
    return serving
