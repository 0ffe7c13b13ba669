"""Phase 1 helpers: backbone features computed once and cached, and the class weights.

The backbone is frozen in this phase, so its pooled features of a photo never change: computing them once and
training the head on the cache is exact and much faster than running the backbone every epoch.
"""

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from classifier.classes import CLASSES
from classifier.features import extract_features, feature_model  # noqa: F401 - phase 1's, kept here by name


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
