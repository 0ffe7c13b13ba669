"""Rank images by how likely their current label is wrong, so reviewers see the likely mistakes first.

A few clear lines of numpy (cleanlab's ideas without its AGPL licence): images whose label the classifier disagrees
with come first, then images by the classifier's probability for the given label (self-confidence), lowest first.
Images labelled "none" are suspects when the classifier is sure of a class; images with no usable label (an
unknown name, an unparseable LLM reply) come first of all, since they need a person anyway.
"""

import hashlib
from pathlib import Path

import numpy as np

from classifier.classes import NONE
from classifier.predictor import answers


def model_key(classifier) -> str:
    """Identifies a model's predictions in the cache: its name, file size and modification time."""
    path = Path(classifier.path) if classifier.path else None
    stamp = f"{path.stat().st_size}-{path.stat().st_mtime_ns}" if path and path.exists() else ""
    return hashlib.sha1(f"{classifier.name}|{classifier.path}|{stamp}".encode()).hexdigest()[:16]


def predict_store(store, classifier, progress=None, batch_size: int = 32, save_every: int = 256) -> dict:
    """Probabilities for every image in the store, computed once per model and cached in the database; saved every
    ``save_every`` images, so a reader (the review queue) sees them arrive and a killed process keeps them."""
    key = model_key(classifier)
    cached = store.cached_predictions(key)
    rows = [r for r in store.query("SELECT i.id, d.root, i.path FROM images i JOIN datasets d "
                                   "ON d.id = i.dataset_id ORDER BY i.id") if r["id"] not in cached]
    for start in range(0, len(rows), save_every):
        chunk = {str(Path(r["root"]) / r["path"]): r["id"] for r in rows[start:start + save_every]}
        done = (lambda i, n, s=start: progress(s + i, len(rows))) if progress else None
        probs = classifier.predict_paths(chunk, done, batch_size)[0]  # unreadable images are left out
        fresh = {chunk[path]: row for path, row in probs.items()}
        store.cache_predictions(key, fresh)
        cached.update({k: list(v) for k, v in fresh.items()})
    return {k: np.asarray(v, np.float32) for k, v in cached.items()}


def sure(probs: dict, classes, below: float, weak=()) -> set:
    """The images the classifier is sure about, so an LLM's answer would add little: its top probability is at
    least ``below`` and its top class is not one of the ``weak`` classes (where it is known to err). Images
    without a prediction are not among them: they are worth asking about."""
    weak = set(weak)
    return {i for i, p in probs.items() if max(p) >= below and classes[int(np.argmax(p))] not in weak}


def label_sure(store, classifier, ids) -> int:
    """Where the LLM is not asked (:func:`sure`), the classifier's answer becomes the label, recorded as the
    model's (source "model", the model's name), for the images in ``ids`` that have no label yet; returns how many."""
    probs = store.cached_predictions(model_key(classifier))
    todo = [r["id"] for r in store.state(list(ids)) if r["label"] is None and r["id"] in probs]
    for i in todo:
        store.add_event(i, classifier.answer(np.asarray(probs[i], np.float32)), "model", author=classifier.name,
                        model=classifier.name)
    return len(todo)


def rank(rows: list[dict], probs: dict, classes, none_threshold: float) -> list[dict]:
    """Sort store rows (from ``LabelStore.state``) most suspicious first; adds the scoring fields to each row.

    Added: ``predicted`` (the model's answer: top-1 class, or none when its top probability is under
    ``none_threshold``: the model's own rule, ``Classifier.none_threshold``, as the Classify tab answers),
    ``p_predicted`` (the top probability), ``p_label`` (the classifier's probability for the current label; for
    "none", one minus its top probability), ``disagree`` (a model "none" disagrees with a class label) and ``rank``
    (1 = most suspicious).
    """
    known = [row["id"] for row in rows if probs.get(row["id"]) is not None]
    table = np.array([probs[i] for i in known], np.float32).reshape(-1, len(classes))  # as cached: as Classify cuts
    # the whole table's answers and top probabilities in one pass, not a row at a time
    scored = {i: (p, float(top), said) for i, p, top, said in
              zip(known, table, table.max(1), answers(table, classes, none_threshold))}
    out = []
    for row in rows:
        row = dict(row, predicted=None, p_predicted=None, p_label=None, disagree=False)
        if row["id"] in scored:
            p, top, said = scored[row["id"]]
            row.update(predicted=said, p_predicted=top)
            label = row["label"]
            if label in classes:
                row.update(p_label=float(p[classes.index(label)]), disagree=said != label)
            elif label == NONE:
                row.update(p_label=1 - top, disagree=top >= none_threshold)
        out.append(row)
    # No usable label first, then disagreements, then by self-confidence (lowest first); a photo a reviewer left out
    # has no label to doubt: it comes last
    out.sort(key=lambda r: (r.get("status") == "left_out", r["label"] in classes or r["label"] == NONE,
                            not r["disagree"], r["p_label"] if r["p_label"] is not None else 1.0, r["id"]))
    for i, row in enumerate(out, 1):
        row["rank"] = i
    return out
