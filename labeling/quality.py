"""Label quality from more than the model's probability of the label: also the photo's mirror image, a probe of the
set's own labels, the photo's neighbours in embedding space and, where there is one, the LLM's answer.

cleanlab's self-confidence (the model's probability of the given label, lowest first) is what
:func:`labeling.suspects.rank` orders by. It ranks a photo the model gets confidently wrong (an elephant in
silhouette, a drawing) as high as a wrong label. More views of each photo, each probabilities of the classes, are
averaged with the model's, and a label scores by its margin over the likeliest other class
(:func:`label_quality_scores`):

- **mirror**: the model's probabilities for the photo's mirror image (from the same decode), averaged with its own;
- **the set's own probe**: out-of-fold probabilities of a probe fitted on the set's own labels with the recipe
  (:func:`training.out_of_fold.out_of_fold`): it learns what this set calls each class, so the photos the served
  model misses but the set labels consistently (silhouettes, art) score well, while a flipped label, against the
  bulk of its class, still scores low. For a training set this probe *is* the model;
- **neighbours**: the labels of the ``k`` nearest photos of the set in embedding space, weighted by similarity
  (:func:`neighbour_label_probabilities`);
- **LLM**: its answer as certain (all its weight on the class it answered), left out where it did not answer.

:func:`review_scores` does it all from a set's features, in two passes: the photos scoring under ``refit_below``
are left out of the set's probe and it is fitted again, so wrong labels do not teach it. ``benchmarks/
suspects_flips.py`` measures it against cleanlab on planted flips.

Labels are integer indices into the probability columns; with the served model's ten probabilities, add the
"none of the ten" column with :func:`with_none` (label 10).

>>> scores = review_scores(features, mirror, labels, with_none(served), with_none(served_mirror), llm)
>>> order = suspects_first(scores)   # most suspect first
"""

import numpy as np

WEIGHTS = {"model": 1.0, "set": 1.0, "neighbours": 1.0, "llm": 0.5}  # benchmarks/suspects_flips.py: robust to 2x
NEIGHBOURS = 10
REFIT_BELOW = 0.5  # the second pass leaves out photos whose views prefer another class to their label


def with_none(probs: np.ndarray) -> np.ndarray:
    """``(n, k + 1)`` probabilities: the model's ``k`` (which sum to less than one on a photo of none of them), then
    "none of them" as what is left."""
    probs = np.asarray(probs, np.float64)
    return np.column_stack([probs, np.clip(1 - probs.sum(1), 0, 1)])


def neighbour_label_probabilities(embeddings: np.ndarray, labels, n_classes: int, k: int = NEIGHBOURS,
                                  smoothing: float = 1.0) -> np.ndarray:
    """``(n, n_classes)``: for each photo, the labels of its ``k`` nearest other photos (cosine on ``embeddings``),
    each weighted by its similarity, with ``smoothing`` spread evenly over the classes (so a photo with few or
    distant neighbours says little). The photo's own label is never among them."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    n = len(labels)
    out = np.full((n, n_classes), smoothing / n_classes)
    k = min(k, n - 1)
    if k < 1:
        return out / out.sum(1, keepdims=True)
    # kneighbors() without X leaves each photo out of its own list
    distances, neighbours = NearestNeighbors(n_neighbors=k, metric="cosine").fit(embeddings).kneighbors()
    np.add.at(out, (np.repeat(np.arange(n), k), labels[neighbours].ravel()), np.clip(1 - distances, 0, None).ravel())
    return out / out.sum(1, keepdims=True)


def label_quality_scores(labels, probs: np.ndarray, mirror_probs: np.ndarray | None = None,
                         set_probs: np.ndarray | None = None, neighbours: np.ndarray | None = None, llm=None,
                         weights: dict | None = None, method: str = "normalized_margin") -> np.ndarray:
    """``(n,)`` scores in 0-1 of how likely each label is right (lowest: most suspect), as cleanlab's
    ``get_label_quality_scores``, on the weighted mean of the views' probabilities: the model's (its own view and,
    if given, its mirror image's, averaged), the set's own probe's (``set_probs``, its two views already averaged),
    the ``neighbours``' (:func:`neighbour_label_probabilities`) and the ``llm``'s (an answer index per photo, -1
    where it gave none: its answer counts as certain, on the photos it answered), each where given.

    ``method``: ``"normalized_margin"`` (default), the label's probability less the likeliest other class's, mapped
    to 0-1 (under 0.5: the views prefer another class); ``"self_confidence"``, the label's probability alone. The
    margin ranks better where a class is crowded by look-alikes (a sheep among goats labelled none gets a low
    probability of its label but no other class a high one): precision at N on planted flips in a training set
    0.87 -> 0.91 (``benchmarks/suspects_flips.py``).

    ``labels``: indices into the columns of ``probs`` (``(n, k)``). ``weights``: any of ``{"model", "set",
    "neighbours", "llm"}``, default :data:`WEIGHTS`."""
    weights = {**WEIGHTS, **(weights or {})}
    labels = np.asarray(labels, int)
    rows = np.arange(len(labels))
    model = np.asarray(probs, np.float64)
    views = {"mirror_probs": mirror_probs, "set_probs": set_probs, "neighbours": neighbours}
    for name, view in {"probs": probs, **views}.items():  # numpy would broadcast a wrong shape silently
        if view is not None and np.shape(view) != (len(labels), model.shape[-1]):
            raise ValueError(f"{name} has shape {np.shape(view)}; expected (photos, classes) = "
                             f"{(len(labels), model.shape[-1])}")
    if min(weights.values()) < 0 or weights["model"] <= 0:
        raise ValueError(f"weights must be 0 or more, the model's above 0: {weights}")
    if mirror_probs is not None:
        model = (model + np.asarray(mirror_probs, np.float64)) / 2
    total, weight = weights["model"] * model, np.full((len(labels), 1), float(weights["model"]))
    for name, view in (("set", set_probs), ("neighbours", neighbours)):
        if view is not None:
            total += weights[name] * np.asarray(view, np.float64)
            weight += weights[name]
    if llm is not None:
        llm = np.asarray(llm)
        answered = np.flatnonzero(llm >= 0)
        total[answered, llm[answered]] += weights["llm"]
        weight[answered] += weights["llm"]
    mean = total / weight
    own = mean[rows, labels]
    if method == "self_confidence":
        return own
    if method != "normalized_margin":
        raise ValueError(f"method must be 'normalized_margin' or 'self_confidence', got {method!r}")
    mean[rows, labels] = -np.inf
    return (own - mean.max(1) + 1) / 2


def review_scores(features: np.ndarray, mirror: np.ndarray, labels, probs: np.ndarray | None = None,
                  mirror_probs: np.ndarray | None = None, llm=None, cs=None, refit_below: float | None = REFIT_BELOW,
                  weights: dict | None = None) -> np.ndarray:
    """:func:`label_quality_scores` of a whole set from its photos' pooled backbone features (``features`` and
    their ``mirror`` images', as :func:`evaluation.copies.features` gives them) and ``labels`` (0-9, 10 for none).

    A test set brings the served model's ``probs`` (and ``mirror_probs``; :func:`with_none` adds the none column);
    a training set brings none: its model is its own probe, out of fold. The set's probe is the recipe's
    (``cs``: its strengths to choose among, default the recipe's); with ``refit_below``, a second pass fits it again
    without the photos scoring under it (None: one pass), unless the others leave too little to fit (one class:
    :func:`fittable`), where the first pass stands. The neighbours' view counts every label in both passes."""
    from evaluation.copies import embedding
    from training import probe
    from training.out_of_fold import out_of_fold

    labels = np.asarray(labels)
    none = 10
    near = neighbour_label_probabilities(embedding(features), labels, none + 1)
    leave_out = None
    while True:
        _, own, own_mirror = out_of_fold(features, np.where(labels == none, -1, labels), mirror,
                                         cs or probe.CS, leave_out=leave_out)
        if probs is None:
            scores = label_quality_scores(labels, own, own_mirror, None, near, llm, weights)
        else:
            scores = label_quality_scores(labels, probs, mirror_probs, (own + own_mirror) / 2, near, llm, weights)
        if leave_out is not None or refit_below is None:
            return scores
        leave_out = scores < refit_below
        if not fittable(labels[~leave_out]):  # e.g. every photo of all classes but one suspect: keep the first pass
            return scores


def fittable(labels, folds: int = 5) -> bool:
    """Whether a set's own probe can be cross-validated on ``labels``: at least ``folds`` photos, and two classes
    (none counts as one) with two photos or more each."""
    labels = np.asarray(labels, int)
    return len(labels) >= folds and np.count_nonzero(np.bincount(labels) >= 2) >= 2


def suspects_first(scores: np.ndarray) -> np.ndarray:
    """Row indices, most suspect first (lowest score; ties in row order)."""
    return np.argsort(np.asarray(scores), kind="stable")
