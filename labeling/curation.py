"""The review queue's finer ranking and its copies, from the backbone features of the label store's photos.

The queue first ranks by the served model's probability of each label (:func:`labeling.suspects.rank`: cleanlab's
self-confidence). Once a data set's features exist (:func:`store_features`: each photo's pooled backbone features
and its mirror image's, :func:`evaluation.copies.features`, cached per model under ``features/`` beside the label
store), its photos are ranked by :func:`labeling.quality.review_scores` instead (:func:`score_sets`): the model's
probabilities of the photo and of its mirror image, a probe of the set's own labels out of fold, the labels of its
neighbours in embedding space and, where there is one, the LLM's answer. A data set the served model was trained on
(or any, when asked) is ranked *out of fold*: by a probe that never saw the photo (:mod:`training.out_of_fold`), not
by the served model, which learnt those labels. The same features give the copies (:func:`find_copies`): groups of
near-copies among the store's photos, and the photos that are near-copies of the served model's training photos
(its training index; "unavailable" when it carries none).

:class:`Curation` computes all this in a background thread, one job at a time, as the review's predictions are.

>>> feats = store_features(rows, clf, cache=features_cache(db, model_key(clf)))
>>> scored = score_sets(rows, feats, out_of_fold={"my-training-set"})
>>> rows = rerank(rank(rows, probs, ...), scored, find_copies(feats, clf.path))
"""

import hashlib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.classes import CLASSES, NONE

RANKINGS = ("suspects", "review", "out_of_fold")  # how a row was ranked: today's, review_scores, out of fold
COPIES = ("all", "copies", "groups", "leaked")  # the queue's copies filter: any kind, near-copies in the store, leaks
CS = (0.1,)  # the set's probe strength: the default's own choice, one value for speed (5x faster than the recipe's)
MIN_PHOTOS = 20  # labelled photos a data set needs for a probe of its own (cross-validated); fewer: today's ranking
RESCORE_SECONDS = 60  # after decisions, a data set is scored again at most this often (a key press costs nothing)
MORE = 5  # near-copies named in the review's line at most


def features_cache(db_path, key: str) -> Path:
    """Where the features of the store's photos by the model ``key`` (:func:`labeling.suspects.model_key`) are
    cached: ``features/<key>.npz`` beside the label store (``DATA_DIR``)."""
    return Path(db_path).parent / "features" / f"{key}.npz"


@dataclass
class StoreFeatures:
    """The features of the readable photos of a store: ``ids`` (image ids, in row order), ``own`` and ``mirror``
    (pooled backbone features, ``(n, d)``), the served model's probabilities of each view (``probs`` and
    ``mirror_probs``, ``(n, 11)``: none of the ten last) and ``errors`` (``[(image id, message)]``)."""

    ids: list
    own: np.ndarray
    mirror: np.ndarray
    probs: np.ndarray
    mirror_probs: np.ndarray
    errors: list = field(default_factory=list)

    def __post_init__(self):
        self.at = {i: n for n, i in enumerate(self.ids)}


def store_features(rows, model=None, cache=None, progress=None) -> StoreFeatures:
    """:class:`StoreFeatures` of the photos of ``rows`` (:meth:`labeling.store.LabelStore.state` rows: ``id``,
    ``file``) by ``model`` (a loaded :class:`~classifier.predictor.Classifier`, such as the served one, or a model
    file; through LiteRT, without TensorFlow), ``cache``: an ``.npz`` of features computed before
    (:func:`features_cache`)."""
    from evaluation.copies import features
    from labeling.quality import with_none

    by_file = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r["id"])
    feats, probs, readable, errors = features(list(by_file), model, progress, cache=cache)
    ids, at = [], []
    for n, path in enumerate(readable):
        ids += by_file[path]
        at += [n] * len(by_file[path])
    if not readable:  # nothing read: no width to take from the model's rows
        probs = np.zeros((0, 2 * len(CLASSES)), np.float32)
    d, k = feats.shape[1] // 2, probs.shape[1] // 2
    feats, probs = feats[at], probs[at]
    return StoreFeatures(ids, feats[:, :d], feats[:, d:], with_none(probs[:, :k]), with_none(probs[:, k:]),
                         [(i, message) for path, message in errors for i in by_file.get(path, [])])


def label_index(label) -> int:
    """A label as a column of the probabilities: 0-9 for a class, 10 for none, -1 for anything else."""
    return CLASSES.index(label) if label in CLASSES else len(CLASSES) if label == NONE else -1


@dataclass
class SetScores:
    """One data set's ranking: ``mode`` (``review``, ``out_of_fold``, or ``suspects`` when it could not be scored:
    ``why``), ``scores`` ``{image id: 0-1}`` (lowest: most suspect) and the ``labels`` it was computed from (a
    digest), at ``at`` (``time.time()``)."""

    mode: str
    scores: dict
    labels: str = ""
    at: float = 0.0
    why: str = ""


def usable(rows, feats: StoreFeatures):
    """The rows of ``rows`` that a score can be given: a class or none as their label, features computed."""
    return [r for r in rows if label_index(r["label"]) >= 0 and r["id"] in feats.at]


def labels_digest(rows) -> str:
    """What a set's scores depend on besides the features: its photos' labels and the LLM's answers."""
    text = "|".join(f"{r['id']}:{r['label']}:{r.get('llm_label')}" for r in sorted(rows, key=lambda r: r["id"]))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def out_of_fold_sets(rows, meta: dict, every: bool = False) -> frozenset:
    """The data sets of ``rows`` ranked out of fold: those the model of ``meta`` was trained on (it learnt their
    labels), or ``every`` one."""
    from classifier.modelfile import trained_on

    learnt = trained_on(meta)
    roots = {(r["dataset"], r["root"]) for r in rows}  # a few data sets: not a path per photo at each key press
    return frozenset(name for name, root in roots if every or Path(root) in learnt)


def by_set(rows, out_of_fold) -> dict:
    """``{data set: (its rows, whether it is ranked out of fold)}`` (``out_of_fold``: :func:`out_of_fold_sets`)."""
    sets = {}
    for r in rows:
        sets.setdefault(r["dataset"], []).append(r)
    return {name: (set_rows, name in out_of_fold) for name, set_rows in sets.items()}


def score_set(rows, feats: StoreFeatures, out_of_fold: bool = False, cs=CS) -> SetScores:
    """:func:`labeling.quality.review_scores` of one data set's ``rows`` (its labels: each row's current one, the
    reviewers' where they decided; a photo left out, or without a usable label, is not scored and no probe learns
    from it). ``out_of_fold``: the served model saw these photos; its probabilities are left out. The LLM's answer
    counts where it is a second opinion: not where the label is the LLM's own."""
    from labeling.quality import fittable, review_scores

    rows = usable(rows, feats)
    digest = labels_digest(rows)
    mode = "out_of_fold" if out_of_fold else "review"
    labels = np.array([label_index(r["label"]) for r in rows], int)
    if len(rows) < MIN_PHOTOS or not fittable(labels):
        return SetScores("suspects", {}, digest, time.time(), "too_few")
    at = [feats.at[r["id"]] for r in rows]
    llm = np.array([label_index(r.get("llm_label")) if r.get("source") != "llm" else -1 for r in rows], int)
    probs = (None, None) if out_of_fold else (feats.probs[at], feats.mirror_probs[at])
    try:
        scores = review_scores(feats.own[at], feats.mirror[at], labels, *probs, llm=llm, cs=cs)
    except ValueError as e:  # a fold with a single class (a set of two classes, one nearly empty)
        print(f"ranking: review scores of a set failed ({e}); its ranking stays the model's", file=sys.stderr)
        return SetScores("suspects", {}, digest, time.time(), "failed")
    return SetScores(mode, {r["id"]: float(s) for r, s in zip(rows, scores)}, digest, time.time())


@dataclass
class Copies:
    """The copies among a store's photos: ``groups`` (``{image id: [the other ids of its group]}``), ``leaks``
    (``{image id: {"key", "source", "label", "distance"}}`` of the served model's nearest training photo), or None
    with ``unavailable`` set when the model carries no index of its training photos."""

    groups: dict
    leaks: dict | None
    unavailable: bool = False

    def has(self, image_id, kind: str = "copies") -> bool:
        """Whether the photo is a copy of the ``kind`` (:data:`COPIES`; ``all``: every photo)."""
        group, leak = image_id in self.groups, image_id in (self.leaks or {})
        return {"all": True, "copies": group or leak, "groups": group, "leaked": leak}[kind]


def find_copies(feats: StoreFeatures, model_path=None, threshold: float | None = None) -> Copies:
    """Groups of near-copies among the photos of ``feats`` (within a data set and across them) and the photos that
    are near-copies of the training photos of the model at ``model_path`` (:mod:`evaluation.copies`)."""
    from evaluation.copies import THRESHOLD, LeakCheckUnavailable, check_leaks, copy_groups, embedding

    threshold = THRESHOLD if threshold is None else threshold
    if not len(feats.ids):  # no photo could be read: nothing to copy, nothing leaked
        return Copies({}, {})
    own, mirror = embedding(feats.own), embedding(feats.mirror)
    groups = {}
    for group in copy_groups(own, mirror, threshold):
        ids = [feats.ids[n] for n in group]
        groups.update({i: [j for j in ids if j != i] for i in ids})
    try:
        leaks = {feats.ids[f["row"]]: {k: f[k] for k in ("key", "source", "label", "distance")}
                 for f in check_leaks(own, mirror, model_path, threshold)}
    except LeakCheckUnavailable:
        return Copies(groups, None, True)
    return Copies(groups, leaks)


def rerank(ranked: list[dict], scored: dict, copies: Copies | None = None) -> list[dict]:
    """Rows ranked by :func:`labeling.suspects.rank`, ranked again where their data set has scores (``scored``:
    ``{data set: SetScores}``): photos without a usable label first (a person must label them), then by score,
    lowest first (a row of a set without scores: by the model's probability of its label, the score it would have
    had in cleanlab's terms), photos left out last. Adds ``score``, ``ranking`` (one of :data:`RANKINGS`), ``copies``
    (the other ids of its group of near-copies) and ``leak`` (the served model's training photo it copies, or None)
    to each row, and numbers ``rank`` again."""
    out = []
    for r in ranked:
        s = scored.get(r["dataset"])
        score = s.scores.get(r["id"]) if s is not None else None
        out.append(dict(r, score=score, ranking=s.mode if score is not None else "suspects",
                        copies=(copies.groups.get(r["id"], []) if copies else []),
                        leak=(copies.leaks or {}).get(r["id"]) if copies else None))
    if any(r["score"] is not None for r in out):
        def key(r):
            out_ = r.get("status") == "left_out"
            value = r["score"] if r["score"] is not None else r["p_label"] if r["p_label"] is not None else 1.0
            return (label_index(r["label"]) >= 0 or out_, out_, value)
        out.sort(key=key)  # stable: ties keep today's order
    for n, r in enumerate(out, 1):
        r["rank"] = n
    return out


def listing(rows: list[dict], uids: dict | None = None) -> list[dict]:
    """Ranked rows as the API and the command line list them (JSON): rank, data set, key, label, ``score`` (None
    where ranked by the model alone), ``ranking`` (:data:`RANKINGS`), the model's answer and probability of the
    label, the near-copies' ``uid`` (``uids``: ``{image id: uid}``) and the training photo it copies, if any."""
    uids = uids or {}
    out = []
    for r in rows:
        leak = r.get("leak")
        out.append({"rank": r["rank"], "dataset": r["dataset"], "key": r["key"], "uid": r["uid"],
                    "label": r["label"], "status": r["status"],
                    "score": None if r.get("score") is None else round(r["score"], 4),
                    "ranking": r.get("ranking", "suspects"), "predicted": r["predicted"],
                    "p_label": None if r["p_label"] is None else round(r["p_label"], 4),
                    "copies": [uids.get(i, i) for i in r.get("copies", [])],
                    "leak": None if not leak else {"key": leak["key"], "label": leak["label"],
                                                   "distance": round(leak["distance"], 4)}})
    return out


class Curation:
    """Features, copies and scores of a label store's photos, computed in a background thread (one job at a time)
    for the model serving now. :meth:`kick` asks for what is missing; :attr:`version` moves when something new is
    ready; :attr:`progress` is ``(done, n)`` while features are computed."""

    def __init__(self, store, cs=CS, busy=None):
        self.store, self.cs = store, cs
        self.busy = busy or (lambda: False)  # another job holds the CPU (the predictions): start after it
        self.lock, self._want = threading.Lock(), None
        self.key, self.feats, self.copies, self.scored = None, None, None, {}  # features of (model key, images)
        self.version, self.progress, self.error = 0, None, None

    def ready(self, key, images: int) -> bool:
        """Whether the features of ``images`` photos by model ``key`` exist."""
        return self.key == (key, images) and self.feats is not None

    def kick(self, clf, key: str, rows: list[dict], out_of_fold: set) -> None:
        """Compute in the background what the queue lacks for the photos of ``rows`` by the classifier ``clf``
        (model key ``key``): their features and copies, then each data set's scores (``out_of_fold``: the data sets
        ranked out of fold). Nothing when it is all there, or being computed."""
        want = (clf, key, rows, frozenset(out_of_fold))
        with self.lock:
            self._want = want
            if getattr(self, "_thread", None) is not None and self._thread.is_alive():
                return  # the running job takes the latest wish when it ends
            if not self._todo(*want):
                return
            self._thread = threading.Thread(target=self._work, daemon=True, name="curation")
            self._thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait for the job in flight (and what it started) to end; True when none is running."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            thread = getattr(self, "_thread", None)
            if thread is None or not thread.is_alive():
                return True
            thread.join(min(0.2, max(deadline - time.time(), 0)))
        return False

    def _todo(self, clf, key, rows, out_of_fold) -> bool:
        if not rows:
            return False
        if self.key != (key, len(rows)):
            return self.error != (key, len(rows))  # a failure is not tried again until something changes
        todo = []
        for name, (set_rows, oof) in by_set(rows, out_of_fold).items():
            s = self.scored.get((name, oof))
            if s is None:
                todo.append(name)
            elif s.labels != labels_digest(usable(set_rows, self.feats)) and time.time() - s.at >= RESCORE_SECONDS:
                todo.append(name)
        return bool(todo)

    def _work(self):
        while True:
            with self.lock:
                want = self._want
                if not self._todo(*want):
                    self._thread = None
                    return
            while self.busy():  # the predictions first: the queue's ranking until these are ready
                time.sleep(0.5)
            try:
                self._step(*want)
            except Exception as e:  # noqa: BLE001 - Keras missing, a model it cannot load: today's ranking stays
                print(f"ranking: features not computed ({type(e).__name__}: {e}); the queue keeps the model's "
                      "ranking", file=sys.stderr, flush=True)
                self.error, self.progress = (want[1], len(want[2])), None
                with self.lock:
                    self._thread = None
                return

    def _step(self, clf, key, rows, out_of_fold):
        if self.key != (key, len(rows)):
            self.progress = (0, len(rows))
            feats = store_features(rows, clf, features_cache(self.store.path, key),  # the served interpreter,
                                   lambda i, n: setattr(self, "progress", (i, n)))      # one photo at a time
            copies = find_copies(feats, clf.path)
            self.key, self.feats, self.copies, self.scored, self.progress = (key, len(rows)), feats, copies, {}, None
            self.version += 1
            return
        for name, (set_rows, oof) in by_set(rows, out_of_fold).items():
            s = self.scored.get((name, oof))
            if s is None or (s.labels != labels_digest(usable(set_rows, self.feats))
                             and time.time() - s.at >= RESCORE_SECONDS):
                self.scored[(name, oof)] = score_set(set_rows, self.feats, oof, self.cs)
                self.version += 1

    def scores_for(self, rows, out_of_fold: set) -> dict:
        """``{data set: SetScores}`` computed so far for the data sets of ``rows`` in their mode."""
        names = {r["dataset"] for r in rows}
        return {name: s for name in names if (s := self.scored.get((name, name in out_of_fold))) is not None}
