"""Copies and leaks: near-copies of photos within a data set, across data sets and against the photos a model was
trained on, found from the backbone's own pooled features (those the linear probe is fitted on; no other model).

A photo's *embedding* is its pooled features, square-rooted and scaled to unit length (:func:`embedding`: the
features are non-negative and a few strong ones otherwise dominate the cosine; at equal recall of planted copies
the square root gave a third as many distinct photos a wrong partner). Two photos are near-copies when the cosine
distance between their embeddings, or between one's and the other's mirror image's, is at most :data:`THRESHOLD`.
Pooled features hardly change in a mirror, so mirrored copies are found without the mirror views too; with them
(from the same decode: :meth:`classifier.predictor.Classifier.features`, ``mirror=True``), copies also cropped,
resized and re-encoded are found a little more often (97.7% of all planted copies against 97.1%). Search is
scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors` (cosine, within a radius), groups are connected
components (SciPy).

A model can carry a small index of its training photos' embeddings beside its file (:func:`index_path`,
:func:`build_index`; ``tools/make_training_index.py`` builds the default's): :func:`leaks` finds the photos of a
set that are near-copies of them. A model without one makes :func:`load_index` return None and
:func:`check_leaks` raise :class:`LeakCheckUnavailable`: "unavailable", never "no leaks".

>>> emb = embed(paths)                                   # backbone features of each photo and its mirror image
>>> groups = copy_groups(emb.own, emb.mirror)            # [[0, 7], [3, 12, 40], ...]: copies within the set
>>> pairs = copy_pairs(emb.own, emb.mirror, other=emb_b.own)   # (i, j, distance): copies across two sets
>>> found = check_leaks(emb.own, emb.mirror)             # the default model's training photos they copy
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from classifier.modelfile import DEFAULT_MODEL, content_hash, model_meta

# Cosine distance. The smallest at which every kind of planted copy made of one or two transforms is found at least
# 95% of the time in benchmarks/copies.py (97.7% of all copies): below it, JPEG-compressed crops and resizes are
# missed; above it, look-alikes (zebras on grass, studio photos of one sheep breed) pair up fast (4.6% of the
# distinct photos get a partner at 0.10, 7.4% at 0.12, a third of them real copies by eye).
THRESHOLD = 0.10


class LeakCheckUnavailable(LookupError):
    """The model has no index of its training photos (or one made for another model file): whether a photo is a
    copy of one of them cannot be said."""


class Embeddings(NamedTuple):
    """The embeddings of the readable photos of a set: ``own`` and ``mirror`` (``(n, d)``, unit rows), ``paths``
    (theirs, in order) and ``errors`` (``[(path, message)]`` of the unreadable ones, left out)."""

    own: np.ndarray
    mirror: np.ndarray
    paths: list
    errors: list


def embedding(features: np.ndarray) -> np.ndarray:
    """Unit-length rows of square-rooted pooled features (power normalisation); ``float32``."""
    from sklearn.preprocessing import normalize

    return normalize(np.sqrt(np.maximum(np.asarray(features, np.float32), 0)))


def features(paths, model=None, progress=None, batch_size: int = 32, cache: str | os.PathLike | None = None) \
        -> tuple[np.ndarray, np.ndarray, list, list]:
    """``(features (n, 2d), probabilities (n, 2k), readable paths, [(path, message)] of the unreadable)``: the
    pooled backbone features of each readable photo of ``paths`` followed by its mirror image's, and the model's
    probabilities of both (before calibration), from one pass of ``model`` (:meth:`Classifier.features`: a loaded
    :class:`~classifier.predictor.Classifier`, a model file, or None for the default; served through LiteRT, so no
    TensorFlow is imported). ``cache``: an ``.npz`` file of rows computed before (by path, size and modification
    time), read and extended, so a set is computed once per model (name the cache after the model: features differ
    between backbones)."""
    paths = [str(p) for p in paths]
    known = _read_cache(cache, probs=True)
    todo = [p for p in paths if _stamp(p) not in known]
    errors = []
    if todo:
        feats, probs, done, errors = _classifier(model).features(todo, progress, batch_size, mirror=True)
        known.update({_stamp(p): (f, q) for p, f, q in zip(done, feats, probs)})
        if cache:
            _write_cache(cache, known)
    readable = [p for p in paths if _stamp(p) in known]
    rows = [known[_stamp(p)] for p in readable]
    widths = [len(part) for part in rows[0]] if rows else [0, 0]
    return (np.array([f for f, _ in rows], np.float32).reshape(len(rows), widths[0]),
            np.array([q for _, q in rows], np.float32).reshape(len(rows), widths[1]), readable, list(errors))


def _classifier(model):
    """A :class:`~classifier.predictor.Classifier` that gives features: ``model`` itself, else the model file
    loaded (LiteRT; Keras for a ``.tflite`` made elsewhere that gives probabilities only)."""
    from classifier.predictor import Classifier

    clf = model if isinstance(model, Classifier) else Classifier.load(model)
    if clf.has_features:
        return clf
    if not clf.path:
        raise ValueError(f"{clf.name} gives no features and has no model file to load them from")
    return Classifier.load(clf.path, engine="keras")


def embed(paths, model=None, progress=None, batch_size: int = 32, cache: str | os.PathLike | None = None) \
        -> Embeddings:
    """The embeddings of each readable photo of ``paths`` and of its mirror image (:func:`features`, the same
    arguments)."""
    rows, _, readable, errors = features(paths, model, progress, batch_size, cache)
    half = rows.shape[1] // 2
    if not len(rows):
        return Embeddings(rows[:, :half], rows[:, half:], readable, errors)
    return Embeddings(embedding(rows[:, :half]), embedding(rows[:, half:]), readable, errors)


def copy_pairs(own: np.ndarray, mirror: np.ndarray | None = None, other: np.ndarray | None = None,
               threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:
    """Near-copies as ``(i, j, distance)``, nearest first: within one set (``i < j``), or with ``other``, between
    photo ``i`` of ``own`` and photo ``j`` of ``other``. ``mirror`` (the mirror images of ``own``) finds mirrored
    copies too; ``distance`` is the smaller cosine distance of the two views."""
    from sklearn.neighbors import NearestNeighbors

    target = own if other is None else other
    if not len(own) or not len(target):
        return []
    search = NearestNeighbors(radius=threshold, metric="cosine").fit(target)
    best = {}
    for view in (own,) if mirror is None else (own, mirror):
        distances, neighbours = search.radius_neighbors(view)
        for i, (ds, js) in enumerate(zip(distances, neighbours)):
            for d, j in zip(ds, js):
                pair = (i, int(j)) if other is not None else (min(i, int(j)), max(i, int(j)))
                if (other is not None or i != j) and d < best.get(pair, np.inf):
                    best[pair] = float(max(d, 0.0))  # cosine distances of equal rows can come out at -1e-7
    return sorted(((i, j, d) for (i, j), d in best.items()), key=lambda p: (p[2], p[0], p[1]))


def copy_groups(own: np.ndarray, mirror: np.ndarray | None = None, threshold: float = THRESHOLD) \
        -> list[list[int]]:
    """Groups of near-copies within one set (rows of ``own``), largest first: the connected components of
    :func:`copy_pairs` with two photos or more."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs = copy_pairs(own, mirror, threshold=threshold)
    if not pairs:
        return []
    i, j, _ = zip(*pairs)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(own), len(own)))
    _, component = connected_components(graph, directed=False)
    groups = {}
    for row, c in enumerate(component):
        groups.setdefault(c, []).append(row)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))


# -- the index of a model's training photos ---------------------------------------------------------------------


@dataclass
class TrainingIndex:
    """The embeddings of the photos a model was trained on (unit rows; in bytes on disk, :func:`save_index`), with
    each one's
    ``key`` (path relative to its data folder, as split files name it), ``source`` and ``label``, and the model
    file it was made for (``model_hash``, :func:`~classifier.modelfile.content_hash`)."""

    embeddings: np.ndarray
    keys: list
    sources: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.keys)


def index_path(model_path: str | os.PathLike | None = None) -> Path:
    """Where a model's training index lies: beside the model file, ``<stem>.training-index.npz``."""
    path = Path(model_path or DEFAULT_MODEL)
    return path.with_name(f"{path.stem}.training-index.npz")


def build_index(own: np.ndarray, keys, sources=(), labels=(), model_path: str | os.PathLike | None = None) \
        -> TrainingIndex:
    """An index of training photos from their embeddings (``own``: :attr:`Embeddings.own`, one row per photo;
    mirror images are not needed, a query brings its own), for the model file at ``model_path``."""
    path = Path(model_path or DEFAULT_MODEL)
    meta = model_meta(path)
    info = {"model": meta.get("name"), "model_hash": content_hash(path), "backbone": meta.get("backbone"),
            "size": meta.get("size"), "embedding": "square root of the pooled features, unit length"}
    return TrainingIndex(np.asarray(own, np.float32), list(keys), list(sources), list(labels), info)


def save_index(index: TrainingIndex, path: str | os.PathLike) -> Path:
    """Write ``index`` as a compressed ``.npz``; returns the path. An embedding is non-negative, so each row is
    stored as bytes 0-255 of its largest value: a quarter of float32's size (5.4 MB for the default's 5,351
    photos, against 9.6 MB in float16) and the same pairs found in ``benchmarks/copies.py``."""
    path = Path(path)
    top = np.maximum(index.embeddings.max(1, keepdims=True), 1e-12)
    np.savez_compressed(path, embeddings=np.round(index.embeddings / top * 255).astype(np.uint8),
                        keys=np.array(index.keys, str),
                        sources=np.array(index.sources, str), labels=np.array(index.labels, str),
                        meta=json.dumps(index.meta))
    return path


def load_index(model_path: str | os.PathLike | None = None, path: str | os.PathLike | None = None) \
        -> TrainingIndex | None:
    """The training index of the model file at ``model_path`` (None: the default), from ``path`` (default
    :func:`index_path`); None when there is none, or when it was made for another model file."""
    from sklearn.preprocessing import normalize

    path = Path(path or index_path(model_path))
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        index = TrainingIndex(normalize(data["embeddings"].astype(np.float32)), data["keys"].tolist(),
                              data["sources"].tolist(), data["labels"].tolist(), json.loads(str(data["meta"])))
    if index.meta.get("model_hash") != content_hash(model_path or DEFAULT_MODEL):
        return None  # the model was retrained since: its training photos may differ
    return index


def leaks(own: np.ndarray, mirror: np.ndarray | None, index: TrainingIndex, threshold: float = THRESHOLD) \
        -> list[dict]:
    """The photos (rows of ``own``) that are near-copies of a training photo of ``index``, each once, nearest
    first: ``{"row", "key", "source", "label", "distance"}`` of its nearest training photo."""
    nearest = {}
    for i, j, d in copy_pairs(own, mirror, other=index.embeddings, threshold=threshold):
        nearest.setdefault(i, (j, d))  # pairs come nearest first
    return [{"row": i, "key": index.keys[j], "source": index.sources[j] if index.sources else None,
             "label": index.labels[j] if index.labels else None, "distance": d}
            for i, (j, d) in sorted(nearest.items(), key=lambda kv: (kv[1][1], kv[0]))]


def check_leaks(own: np.ndarray, mirror: np.ndarray | None = None, model_path: str | os.PathLike | None = None,
                threshold: float = THRESHOLD) -> list[dict]:
    """:func:`leaks` against the training index of the model at ``model_path`` (None: the default). Raises
    :class:`LeakCheckUnavailable` when the model carries no index for its own file."""
    index = load_index(model_path)
    if index is None:
        raise LeakCheckUnavailable(f"{Path(model_path or DEFAULT_MODEL).name} carries no index of its training "
                                   f"photos ({index_path(model_path).name}): the leak check is unavailable")
    if index.embeddings.shape[1] != own.shape[1]:
        raise LeakCheckUnavailable(f"the training index holds {index.embeddings.shape[1]}-wide embeddings, these "
                                   f"are {own.shape[1]} wide: made by another backbone")
    return leaks(own, mirror, index, threshold)


# -- the feature cache ------------------------------------------------------------------------------------------


def _stamp(path: str) -> str:
    """A photo's cache key: its path, size and modification time (a replaced file is computed again)."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _read_cache(cache, probs: bool = False) -> dict:
    """``{stamp: row}`` of a cache file; with ``probs``, ``{stamp: (features row, probabilities row)}`` (a cache
    written before probabilities were kept reads as empty then: computed again)."""
    if not cache or not Path(cache).exists():
        return {}
    with np.load(cache, allow_pickle=False) as data:
        if not probs:
            return dict(zip(data["stamps"].tolist(), data["features"]))
        if "probs" not in data.files:
            return {}
        return dict(zip(data["stamps"].tolist(), zip(data["features"], data["probs"])))


def _write_cache(cache, known: dict) -> None:
    """Write the cache whole or not at all (a reader never sees half of it); ``known``: as :func:`_read_cache`
    gives it."""
    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.npz")
    rows = list(known.values())
    if rows and isinstance(rows[0], tuple):
        arrays = {"features": np.array([f for f, _ in rows], np.float32),
                  "probs": np.array([q for _, q in rows], np.float32)}
    else:
        arrays = {"features": np.array(rows, np.float32)}
    np.savez(tmp, stamps=np.array(list(known), str), **arrays)
    os.replace(tmp, cache)
