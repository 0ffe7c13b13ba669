"""Phase 1 helpers: backbone features computed once and cached, and the class weights.

The backbone is frozen in this phase, so its pooled features of a photo never change: computing them once and
training the head on the cache is exact and much faster than running the backbone every epoch.
"""

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from classifier.classes import CLASSES
from classifier.predictor import Classifier


def feature_model(classifier_model):
    """The part of a classifier from pixels to pooled backbone features."""
    return keras.Model(classifier_model.input, classifier_model.get_layer("avg_pool").output)


def extract_features(classifier_model, paths, batch_size=32, progress=None):
    """Pooled features for ``paths``; returns ``(features, ok_mask, errors)``, skipping unreadable files."""
    extractor = Classifier.from_keras(feature_model(classifier_model))
    features, errors = extractor.predict_paths(paths, progress, batch_size)
    dim = classifier_model.get_layer("avg_pool").output.shape[-1]
    ok = np.array([p in features for p in paths], bool)
    rows = [features[p] for p in paths if p in features]
    return np.array(rows, np.float32).reshape(-1, dim), ok, list(errors.items())


def class_weights(labels, multipliers=None):
    """Balanced class weights (scikit-learn) for integer ``labels``, times optional per-class multipliers."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    out = {int(c): float(w) for c, w in zip(present, weights)}
    for name, factor in (multipliers or {}).items():
        idx = CLASSES.index(name)
        if idx in out:
            out[idx] *= factor
    return out
