"""A model's pooled backbone features of photos: what the probe trains on, and what near-copies, leaks and label
suspects are found with (one decode for a photo and its mirror image)."""

import keras
import numpy as np

from .predictor import Classifier


def feature_model(classifier_model):
    """The part of a classifier from pixels to pooled backbone features."""
    return keras.Model(classifier_model.input, classifier_model.get_layer("avg_pool").output)


def extract_features(classifier_model, paths, batch_size=32, progress=None, mirror=False):
    """Pooled features of a Keras classifier for ``paths``; returns ``(features, ok_mask, errors)``, skipping
    unreadable files. With ``mirror``, each row is the photo's features followed by its mirror image's (twice as
    wide). (:meth:`Classifier.features` gives the same of a loaded model, LiteRT's included.)"""
    paths = [str(p) for p in paths]
    features, _, readable, errors = Classifier.from_keras(classifier_model).features(paths, progress, batch_size,
                                                                                     mirror)
    readable = set(readable)
    ok = np.array([p in readable for p in paths], bool)
    dim = classifier_model.get_layer("avg_pool").output.shape[-1] * (2 if mirror else 1)
    return features.reshape(-1, dim), ok, errors
