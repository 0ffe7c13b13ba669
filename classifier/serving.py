"""The model the app serves, swappable at run time without a restart."""

import threading

import numpy as np

from .predictor import Classifier


class ModelSlot:
    """Holds the serving :class:`Classifier`; :meth:`swap` loads a new one fully before switching to it.

    ``engine`` and ``cache_dir`` are passed to :meth:`Classifier.load` (LiteRT by default, its converted models
    cached there). Requests already running keep the model they started with, so a swap never serves a half-loaded
    (or half-converted) model.
    """

    def __init__(self, path, engine=None, cache_dir=None):
        self._lock = threading.Lock()
        self._options = {"engine": engine, "cache_dir": cache_dir}
        self._classifier = _ready(Classifier.load(path, **self._options))
        self._explainer = (None, None)  # (model path, Explainer): loaded at the first heatmap asked for

    def get(self) -> Classifier:
        return self._classifier

    def swap(self, path) -> Classifier:
        classifier = _ready(Classifier.load(path, **self._options))  # may raise: the old model keeps serving
        with self._lock:
            self._classifier = classifier
        return classifier

    def explainer(self):
        """Grad-CAM (:class:`classifier.heatmap.Explainer`) for the model serving now: the same file loaded in Keras
        (LiteRT has no gradients), at the first heatmap asked for, as TensorFlow's import takes seconds."""
        path = self._classifier.path
        with self._lock:
            if self._explainer[0] != path:
                from .heatmap import Explainer

                self._explainer = (path, Explainer.load(path))
            return self._explainer[1]


def _ready(classifier):
    """Run the model once now, so the first user does not wait for its first call (tracing, allocation)."""
    classifier.predict_pixels(np.zeros((1, classifier.size, classifier.size, 3), np.float32))
    return classifier
