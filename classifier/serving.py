"""The model the app serves, swappable at run time without a restart."""

import threading

import numpy as np

from .model import Classifier


class ModelSlot:
    """Holds the serving :class:`Classifier`; :meth:`swap` loads a new one fully before switching to it.

    Requests already running keep the model they started with, so a swap never serves a half-loaded model.
    """

    def __init__(self, path):
        self._lock = threading.Lock()
        self._classifier = _ready(Classifier.load(path))

    def get(self):
        return self._classifier

    def swap(self, path):
        classifier = _ready(Classifier.load(path))  # may raise: the old model keeps serving
        with self._lock:
            self._classifier = classifier
        return classifier


def _ready(classifier):
    """Trace the model once now, so the first user does not wait for it (~1.4 s on this CPU)."""
    classifier.predict_pixels(np.zeros((1, classifier.size, classifier.size, 3), np.float32))
    return classifier
