"""Curating a data set: its near-copies (within it, and across the other data sets already computed), the photos
that are near-copies of the served model's training photos (leaks), the figures without those, and a map of its
embeddings. ``python -m evaluation curate``, the Evaluate tab's "Copies and leaks" and the tools app's
``curation_report`` give the one report :func:`curate` writes.

Everything comes from the backbone's pooled features (:mod:`evaluation.copies`), computed by the served model
through LiteRT (one pass gives them and the probabilities; no TensorFlow) and cached per model file and data set
under ``DATA_DIR/features`` (the layout's :attr:`~settings.Layout.features`), in ``<model hash>/``
(:func:`cache_dir`)::

    <set>.npz             each photo's features and its mirror image's, and the model's probabilities of both
                          (evaluation.copies.features)
    <set>.unreadable.npz  the photos that could not be read (not tried again until they change)
    <set>.map.npz         the map's 2-D coordinates (:func:`map_coordinates`)
    <set>.curation.json   the last report (:func:`curate`)

``<set>`` is the folder's name and a short hash of its full path (:func:`set_id`): two roots' ``demo`` stay apart.
A photo is known by its path, size and modification time, so a replaced photo is computed again and a set computed
once costs a read after that.

The map (:func:`map_coordinates`) is PCA to 50 dimensions, then t-SNE (scikit-learn), measured by
``benchmarks/map_speed.py``; a set of more than :data:`MAP_LIMIT` photos is refused (:class:`MapTooLarge`) unless a
random sample of that many is asked for.
"""

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from classifier.classes import CLASSES
from classifier.files import list_images, write_atomic
from classifier.modelfile import DEFAULT_MODEL, content_hash, model_meta
from i18n import Message

from .copies import (
    THRESHOLD,
    LeakCheckUnavailable,
    check_leaks,
    copy_groups,
    copy_pairs,
    embedding,
    features,
    load_index,
)

# photos the map draws at most: t-SNE takes 1.8 s for 1,000 real photos on 2 cores, 3.3 s for 3,000, 14-18 s for
# 5,000-8,000 as other jobs share them (benchmarks/map_speed.py), and the browser draws each point as SVG
MAP_LIMIT = 5000
TSNE_ITER = 500  # t-SNE iterations (scikit-learn's least): half the default's time, clusters already apart
PCA_DIMS = 50
SAMPLE_SEED = 0  # a sample is drawn the same way each time: its coordinates are cached too
REPORT, UNREADABLE, MAP = ".curation.json", ".unreadable.npz", ".map.npz"


class MapTooLarge(Message):
    """A set with more photos than the map draws: say so, and offer a sample."""


class NotComputed(Message):
    """No report of this set is cached yet."""


def set_id(folder) -> str:
    """The name a data set's cache files take: its folder's name and 8 hex digits of its full path."""
    folder = Path(folder).resolve()
    return f"{folder.name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"


@lru_cache(maxsize=16)
def _hash(path: str, size: int, mtime: int) -> str:
    return content_hash(path)


def model_hash(model_path=None) -> str:
    """:func:`~classifier.modelfile.content_hash` of a model file, read once per file version."""
    path = Path(model_path or DEFAULT_MODEL)
    st = path.stat()
    return _hash(str(path), st.st_size, st.st_mtime_ns)


def cache_dir(layout, model_path=None) -> Path:
    """Where the features of ``model_path`` (None: the default model) and what is made of them lie."""
    return Path(layout.features) / model_hash(model_path)


def cached(layout, model_path, folder, suffix: str = ".npz") -> Path:
    """One of a set's cache files (``suffix``: ``.npz``, :data:`UNREADABLE`, :data:`MAP`, :data:`REPORT`)."""
    return cache_dir(layout, model_path) / f"{set_id(folder)}{suffix}"


# -- features and probabilities ---------------------------------------------------------------------------------


def photo_features(items, model_path, layout, folder, progress=None):
    """``(keys, features (n, 2d), probabilities (n, k), unreadable keys)`` of the readable photos of ``items``
    (``[(key, path)]``), from the cache, the missing ones computed by the model served through LiteRT (no
    TensorFlow). A photo found unreadable is remembered (:data:`UNREADABLE`), not decoded again at each report."""
    from .copies import _read_cache, _stamp, _write_cache

    unreadable_cache = cached(layout, model_path, folder, UNREADABLE)
    bad = _read_cache(unreadable_cache)
    paths = [p for _, p in items if _stamp(p) not in bad]
    rows, probs, readable, errors = features(paths, model_path, progress, cache=cached(layout, model_path, folder))
    if errors:
        bad.update({_stamp(p): np.zeros(1, np.float32) for p, _ in errors})
        _write_cache(unreadable_cache, bad)
    at = {p: n for n, p in enumerate(readable)}
    good = [(k, p) for k, p in items if p in at]
    rows, probs = rows[[at[p] for _, p in good]], probs[[at[p] for _, p in good]]
    return [k for k, _ in good], rows, probs[:, :probs.shape[1] // 2], sorted({k for k, _ in items} - dict(good).keys())


def _views(rows):
    half = rows.shape[1] // 2
    return embedding(rows[:, :half]), embedding(rows[:, half:])


# -- the report ---------------------------------------------------------------------------------------------------


def curate(folder, model_path=None, layout=None, name: str | None = None, labels: dict | None = None,
           left_out: dict | None = None, label_source: str | None = None, others: dict | None = None,
           progress=None, threshold: float = THRESHOLD) -> dict:
    """The curation report of the data set at ``folder`` for the model file ``model_path`` (None: the default),
    written to its cache (:data:`REPORT`) and returned. ``name``: how the report names the set (never a server
    path; default the folder's name). ``labels`` (``{key: label}``; left-out photos not among them) give the
    figures with and without the leaked photos, ``left_out`` (``{key: reason}``) is counted, ``label_source`` names
    where the labels came from. ``others`` (``{name: folder}``): the data sets whose features are cached for this
    model are searched for copies too (none is computed for it). ``progress(done, total)``: as photos are computed.

    The report (JSON): ``counts``; ``groups``, the copies within the set as lists of keys; ``leaks``, with
    ``status`` ``"checked"`` and ``by_key`` (each leaked photo's nearest training photo) or ``"unavailable"`` and
    the ``reason`` (a model without a training index: never "none"); ``across``; ``figures``; ``left_out``;
    ``unreadable``."""
    folder = Path(folder)
    model_path = Path(model_path or DEFAULT_MODEL)
    items = list_images(folder)
    keys, rows, probs, unreadable = photo_features(items, model_path, layout, folder, progress)
    own, mirror = _views(rows) if len(rows) else (rows, rows)
    groups = [sorted((keys[i] for i in g)) for g in copy_groups(own, mirror, threshold)] if len(rows) else []
    try:
        if not len(rows) and load_index(model_path) is None:  # nothing to check, but say why it could not be
            raise LeakCheckUnavailable(f"{model_path.name} carries no index of its training photos")
        found = check_leaks(own, mirror, model_path, threshold) if len(rows) else []
        leaks = {"status": "checked", "by_key": {keys[f["row"]]: {
            "training_key": f["key"], "source": f["source"], "label": f["label"], "distance": round(f["distance"], 4)}
            for f in found}}
    except LeakCheckUnavailable as e:
        leaks = {"status": "unavailable", "reason": str(e)}
    across = _across(folder, own, mirror, keys, model_path, layout, others or {}, threshold) if len(rows) else []
    figures = _figures(keys, probs, labels, set(leaks.get("by_key", ())), label_source) if labels else None
    report = {
        "dataset": name or folder.name, "model": model_meta(model_path).get("name", model_path.stem),
        "model_hash": model_hash(model_path), "threshold": threshold,
        "computed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": {"photos": len(items), "readable": len(keys), "unreadable": len(unreadable),
                   "copy_groups": len(groups), "photos_in_copy_groups": sum(map(len, groups)),
                   "leaks": len(leaks["by_key"]) if leaks["status"] == "checked" else None,
                   "copies_in_other_sets": len({a["key"] for a in across}),
                   "left_out": len(left_out or {})},
        "groups": groups, "leaks": leaks, "across": across, "figures": figures,
        "left_out": dict(sorted((left_out or {}).items())), "unreadable": unreadable,
    }
    path = cached(layout, model_path, folder, REPORT)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(report, indent=1, ensure_ascii=False))
    return report


def _across(folder, own, mirror, keys, model_path, layout, others, threshold) -> list[dict]:
    """Copies of the set's photos in the other data sets whose features are cached for this model (cheap: no
    photo is computed), nearest first."""
    from .copies import _read_cache, _stamp

    out = []
    for other_name, other in others.items():
        other = Path(other)
        cache = cached(layout, model_path, other)
        if other.resolve() == folder.resolve() or not cache.exists():
            continue
        known = _read_cache(cache)
        paths = {s.rsplit("|", 2)[0] for s in known}
        found = [(k, p) for k, p in list_images(other) if p in paths and _stamp(p) in known]
        if not found:
            continue
        theirs = embedding(np.array([known[_stamp(p)] for _, p in found], np.float32)[:, :own.shape[1]])
        out += [{"key": keys[i], "dataset": other_name, "other_key": found[j][0], "distance": round(d, 4)}
                for i, j, d in copy_pairs(own, mirror, other=theirs, threshold=threshold)]
    return sorted(out, key=lambda a: (a["distance"], a["key"]))


def _figures(keys, probs, labels, leaked, label_source) -> dict:
    """Accuracy and balanced accuracy (with 95% intervals) of the model's answers against ``labels``, on every
    labelled photo and without the ``leaked`` ones (:func:`evaluation.metrics.evaluate`)."""
    from .metrics import evaluate

    scored = [i for i, k in enumerate(keys) if k in labels]
    classes = CLASSES[:probs.shape[1]] if probs.ndim == 2 and len(probs) else CLASSES

    def score(rows):
        report = evaluate([labels[keys[i]] for i in rows], [classes[int(probs[i].argmax())] for i in rows],
                          n_boot=500)
        return {k: report[k] for k in ("n_scored", "accuracy", "accuracy_ci95", "balanced_accuracy",
                                       "balanced_accuracy_ci95")}

    return {"labels": label_source, "all": score(scored),
            "without_leaks": score([i for i in scored if keys[i] not in leaked]),
            "leaked_labelled": sum(keys[i] in leaked for i in scored)}


def read_report(layout, folder, model_path=None) -> dict:
    """The cached report of the set at ``folder`` for ``model_path``, else the newest one for any model; raises
    :class:`NotComputed` when there is none. Reads files only."""
    path = cached(layout, model_path, folder, REPORT)
    if not path.exists():
        found = sorted(Path(layout.features).glob(f"*/{set_id(folder)}{REPORT}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise NotComputed("cu_not_computed")
        path = found[-1]
    return json.loads(path.read_text(encoding="utf-8"))


def file_labels(folder) -> dict:
    """``{key: label}`` of the set at ``folder`` from its own results.json or class folders (empty: none)."""
    from classifier.labels import labels_file, labels_for

    return labels_for([k for k, _ in list_images(folder)], labels_file(folder))[0]


# -- the map --------------------------------------------------------------------------------------------------------


def layout_2d(embeddings: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(coordinates (n, 2), method)``: PCA to :data:`PCA_DIMS` dimensions, then t-SNE; PCA alone for a set too
    small for t-SNE's neighbourhoods."""
    from sklearn.decomposition import PCA

    x = np.asarray(embeddings, np.float32)
    n = len(x)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)]), "none"
    reduced = PCA(min(PCA_DIMS, n, x.shape[1]), random_state=seed).fit_transform(x)
    if n < 10:
        return reduced[:, :2].astype(np.float32), "pca"
    from sklearn.manifold import TSNE

    tsne = TSNE(2, perplexity=min(30.0, (n - 1) / 3), init="pca", max_iter=TSNE_ITER, random_state=seed)
    return tsne.fit_transform(reduced).astype(np.float32), "pca+tsne"


def map_coordinates(folder, model_path=None, layout=None, sample: bool = False, limit: int = MAP_LIMIT,
                    progress=None) -> dict:
    """The map of the set at ``folder``: ``{"keys", "xy" (n, 2), "probs", "method", "sampled", "photos"}``, its
    coordinates cached (:data:`MAP`) for these photos and this model. A set of more than ``limit`` readable photos
    raises :class:`MapTooLarge` unless ``sample`` (a random ``limit`` of them, drawn the same way each time)."""
    from .copies import _stamp

    folder, model_path = Path(folder), Path(model_path or DEFAULT_MODEL)
    items = list_images(folder)
    keys, rows, probs, _ = photo_features(items, model_path, layout, folder, progress)
    total = len(keys)
    chosen = np.arange(total)
    if total > limit:
        if not sample:
            raise MapTooLarge("cu_map_too_large", n=total, limit=limit)
        chosen = np.sort(np.random.default_rng(SAMPLE_SEED).choice(total, limit, replace=False))
    paths = dict(items)
    stamps = np.array([_stamp(paths[keys[i]]) for i in chosen], str)
    path = cached(layout, model_path, folder, MAP)
    xy, method = None, None
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            if data["stamps"].shape == stamps.shape and (data["stamps"] == stamps).all():
                xy, method = data["xy"], str(data["method"])
    if xy is None:
        xy, method = layout_2d(_views(rows[chosen])[0] if len(chosen) else rows[:0])
        tmp = path.with_name(f".{path.name}")
        np.savez(tmp, stamps=stamps, xy=xy, method=method)
        tmp.replace(path)
    return {"keys": [keys[i] for i in chosen], "xy": np.asarray(xy), "probs": probs[chosen], "method": method,
            "sampled": len(chosen) < total, "photos": total}
