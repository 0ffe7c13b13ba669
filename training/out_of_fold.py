"""Out-of-fold probabilities of a labelled set's photos by the probe recipe's own cross-validation, so a training
set's labels can be ranked like a test set's: each photo's probabilities come from a probe that never saw it (nor
its mirror image).

>>> c, probs, mirror_probs = out_of_fold(own, labels, mirror)   # raw pooled features, labels 0-9 and -1 (none)
>>> scores = label_quality_scores(np.where(labels < 0, 10, labels), probs, mirror_probs)  # labeling/quality.py
"""

import numpy as np

from . import probe


def out_of_fold(features: np.ndarray, labels, mirror: np.ndarray | None = None, cs=probe.CS, folds: int = 5,
                seed: int = 0, leave_out=None, log=None) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``(C, probabilities (n, 11), mirror image's probabilities (n, 11) or None)`` of the ``n`` photos of a
    labelled set, each from a probe fitted without it, as :func:`training.probe.cross_validate` computes them:
    ``C`` chosen among ``cs`` by ``folds``-fold cross-validation over the photos, a photo and its mirror image in
    the same fold, both learnt as the recipe learns them.

    ``features``: the backbone's pooled features (``extract_features``; with ``mirror=True`` its second half is
    ``mirror``). ``labels``: 0-9, or -1 for a photo of none of the ten (the 11th column). ``leave_out``: a boolean
    mask of photos no probe learns from (likely wrong labels from a first pass, or photos a reviewer left out):
    the others are cross-validated among themselves, and these are scored by one probe fitted on all the others."""
    features, labels = np.asarray(features, np.float32), np.asarray(labels, int)
    n = len(labels)
    views = (features,) if mirror is None else (features, np.asarray(mirror, np.float32))
    kept = np.ones(n, bool) if leave_out is None else ~np.asarray(leave_out, bool)
    at = np.flatnonzero(kept)
    x, y = np.concatenate([v[at] for v in views]), np.tile(labels[at], len(views))
    photo = np.tile(np.arange(len(at)), len(views))
    c, oof = probe.cross_validate(x, y, photo, np.ones(len(x), bool), cs, folds, seed, log or (lambda _: None))
    out = np.zeros((len(views), n, oof.shape[1]))
    out[:, at] = oof.reshape(len(views), len(at), -1)
    if not kept.all():
        fitted = probe.fit(c, x, np.where(y < 0, oof.shape[1] - 1, y))
        for v, view in enumerate(views):
            out[v, ~kept] = probe.probabilities(fitted, view[~kept])
    return c, out[0], (out[1] if mirror is not None else None)
