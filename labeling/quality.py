"""Label quality from more than the model's probability of the label: also the photo's mirror image, its neighbours
in embedding space and, where there is one, the LLM's answer.

cleanlab's self-confidence (the model's probability of the given label, lowest first) is what
:func:`labeling.suspects.rank` orders by. It misses a wrong label where the model errs the same way, and it ranks a
photo the model is merely unsure of before a clear mistake. Three more views of each photo, each a probability of
its label, are averaged with it (:func:`label_quality_scores`):

- **mirror**: the model's probabilities for the photo's mirror image (from the same decode; a second look that
  steadies an unsure answer), averaged with its own;
- **neighbours**: the labels of its ``k`` nearest photos of the same set in embedding space, weighted by
  similarity (:func:`neighbour_label_probabilities`): a photo labelled dog among photos labelled cat is suspect
  whatever the model says;
- **LLM**: 1 when the LLM answered the label, 0 when it answered another one, left out where it did not answer.

Labels are integer indices into the probability columns; with the served model's ten probabilities, add the
"none of the ten" column with :func:`with_none`. ``benchmarks/suspects_flips.py`` measures the ranking against
cleanlab's on planted flips.

>>> scores = label_quality_scores(labels, probs, mirror_probs=mirror, neighbours=neighbour_label_probabilities(
...     emb.own, labels, probs.shape[1]))
>>> order = np.argsort(scores, kind="stable")   # most suspicious first
"""

import numpy as np

WEIGHTS = {"model": 1.0, "neighbours": 1.0, "llm": 0.5}  # chosen on one seed of benchmarks/suspects_flips.py
NEIGHBOURS = 10


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
    distances, neighbours = NearestNeighbors(n_neighbors=k, metric="cosine").fit(embeddings).kneighbors()
    weights = np.clip(1 - distances, 0, None)  # kneighbors() without X leaves each photo out of its own list
    np.add.at(out, (np.repeat(np.arange(n), k), labels[neighbours].ravel()), weights.ravel())
    return out / out.sum(1, keepdims=True)


def label_quality_scores(labels, probs: np.ndarray, mirror_probs: np.ndarray | None = None,
                         neighbours: np.ndarray | None = None, llm=None, weights: dict | None = None) -> np.ndarray:
    """``(n,)`` scores in 0-1 of how likely each label is right (lowest: most suspect), as cleanlab's
    ``get_label_quality_scores``: the weighted mean of the probabilities of the label given by the model (its own
    view and, if given, its mirror image's, averaged), by the ``neighbours`` (:func:`neighbour_label_probabilities`)
    and by the ``llm`` (an answer index per photo, -1 where it gave none), each where available.

    ``labels``: indices into the columns of ``probs`` (``(n, k)``). ``weights``: ``{"model", "neighbours", "llm"}``,
    default :data:`WEIGHTS`."""
    weights = {**WEIGHTS, **(weights or {})}
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    model = np.asarray(probs, np.float64)
    if mirror_probs is not None:
        model = (model + np.asarray(mirror_probs, np.float64)) / 2
    total = weights["model"] * model[rows, labels]
    weight = np.full(len(labels), weights["model"])
    if neighbours is not None:
        total += weights["neighbours"] * np.asarray(neighbours)[rows, labels]
        weight += weights["neighbours"]
    if llm is not None:
        llm = np.asarray(llm)
        answered = llm >= 0
        total += weights["llm"] * (answered & (llm == labels))
        weight += weights["llm"] * answered
    return total / weight


def suspects_first(scores: np.ndarray) -> np.ndarray:
    """Row indices, most suspect first (lowest score; ties in row order)."""
    return np.argsort(np.asarray(scores), kind="stable")
