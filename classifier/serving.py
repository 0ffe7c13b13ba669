"""The model the app serves, swappable at run time without a restart."""

import sys
import threading
import time

import numpy as np

from .predictor import LOW_CONFIDENCE, Classifier


class ModelSlot:
    """Holds the serving :class:`Classifier`; :meth:`swap` loads a new one fully before switching to it.

    ``engine``, ``cache_dir`` and ``fallback`` are passed to :meth:`Classifier.load` (LiteRT by default, its
    converted models cached there; ``fallback``, the app's ``LOW_CONFIDENCE``, is the "none of the 10" cut of a model
    that brings none: :attr:`Classifier.none_threshold`). Requests already running keep the model they started with,
    so a swap never serves a half-loaded (or half-converted) model.
    """

    def __init__(self, path, engine=None, cache_dir=None, fallback=LOW_CONFIDENCE):
        self._lock = threading.Lock()
        self._options = {"engine": engine, "cache_dir": cache_dir, "fallback": fallback}
        self._classifier = _ready(Classifier.load(path, **self._options))
        self._explainer = (None, None)  # (model path, Explainer): loaded at the first heatmap asked for
        self.answered = threading.Event()  # set at each answer given (Classify): a warm-up waits for the first

    def get(self) -> Classifier:
        return self._classifier

    def swap(self, path) -> Classifier:
        classifier = _ready(Classifier.load(path, **self._options))  # may raise: the old model keeps serving
        with self._lock:
            self._classifier = classifier
        return classifier

    def explainer(self):
        """Grad-CAM (:func:`classifier.heatmap.explainer`) for the model serving now, made at the first heatmap
        asked for: from the served model's own pass for a linear head (the default), else the same file loaded in
        Keras (LiteRT has no gradients), whose TensorFlow import takes seconds."""
        classifier = self._classifier
        with self._lock:
            if self._explainer[0] != classifier.path:
                from .heatmap import explainer

                self._explainer = (classifier.path, explainer(classifier))
            return self._explainer[1]

    def warm(self, wait: float = 0.0) -> threading.Thread:
        """Load the Grad-CAM explainer of the model serving now in the background and run it once (its first
        trace), so the first heatmap asked for takes what the next ones do, not the seconds TensorFlow's import
        takes. It starts once the first answer has left (:attr:`answered`) or ``wait`` seconds have passed, whichever
        is first, so the first answer after a start is not slowed by it (LiteRT needs no TensorFlow). For a linear
        head (the default), the served model draws the heatmap itself: nothing is loaded then. Not at a lower
        CPU priority: the threads TensorFlow starts would keep it, and every later heatmap with them. Returns the
        thread."""
        def run():
            if self.answered.wait(wait):
                time.sleep(0.5)  # the answer's reply leaves first
            try:
                explainer = self.explainer()
                explainer.heatmaps(np.zeros((1, explainer.size, explainer.size, 3), np.float32), [None])
            except Exception as e:  # Keras missing, a model it cannot load: the first heatmap asked for says so
                print(f"Grad-CAM not warmed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)

        thread = threading.Thread(target=run, name="warm-explainer", daemon=True)
        thread.start()
        return thread


def _ready(classifier):
    """Run the model once now, so the first user does not wait for its first call (tracing, allocation)."""
    classifier.predict_pixels(np.zeros((1, classifier.size, classifier.size, 3), np.float32))
    return classifier
