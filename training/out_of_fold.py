"""Out-of-fold probabilities of a labelled set's photos by the probe recipe's own cross-validation, so a training
set's labels can be ranked like a test set's: each photo's probabilities come from a probe that never saw it (nor
its mirror image).

>>> c, probs, mirror_probs = out_of_fold(own, labels, mirror)   # raw pooled features, labels 0-9 and -1 (none)
>>> scores = label_quality_scores(np.where(labels < 0, 10, labels), probs, mirror_probs)  # labeling/quality.py
"""

import numpy as np

from . import probe


def out_of_fold(features: np.ndarray, labels, mirror: np.ndarray | None = None, cs=probe.CS, folds: int = 5,
                seed: int = 0, log=None) -> tuple[float, np.ndarray, np.ndarray | None]:
    """``(C, probabilities (n, 11), mirror image's probabilities (n, 11) or None)`` of the ``n`` photos of a
    labelled set, each from a probe fitted without it, as :func:`training.probe.cross_validate` computes them:
    ``C`` chosen among ``cs`` by ``folds``-fold cross-validation over the photos, a photo and its mirror image in
    the same fold, both learnt as the recipe learns them.

    ``features``: the backbone's pooled features (``extract_features``; with ``mirror=True`` its second half is
    ``mirror``). ``labels``: 0-9, or -1 for a photo of none of the ten (the 11th column)."""
    features, labels = np.asarray(features, np.float32), np.asarray(labels, int)
    n = len(labels)
    x, y = (features, labels) if mirror is None else (np.concatenate([features, mirror]), np.tile(labels, 2))
    photo = np.tile(np.arange(n), len(x) // n)
    c, oof = probe.cross_validate(x, y, photo, np.ones(len(x), bool), cs, folds, seed, log or (lambda _: None))
    return c, oof[:n], (oof[n:] if mirror is not None else None)
