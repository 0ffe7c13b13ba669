"""A reviewer's work on the label store, without any UI and in no language: the suspects-first queue, one-key
decisions with leases, leaving a photo out with a reason, previous and undo, bulk accept, import, auto-label, the
audit, export and the push to the Hub.

:class:`Review` is one per app (the store is shared by all sessions); a reviewer's session is a small dict
(``reviewer``, lease ``holder``, ``history``, ``current``, ``blind``) that the tab keeps per browser. A key press
answers a :class:`Step` (the image it opened, the queue it came from); everything else answers plain data (rows,
counts, codes). What the viewer sees of them, in their language (the photo, its details, the progress line, the
impact table), is made by the presenter, :mod:`studio.review_view`. Requests the review cannot do raise
:class:`ReviewError`, whose message key says what to do.
"""

import contextlib
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import astuple, dataclass, field
from pathlib import Path

import numpy as np

from classifier.classes import CLASSES, NONE, OTHER
from classifier.images import ImageError
from classifier.labels import labels_file
from classifier.modelfile import trained_on
from evaluation.metrics import review_change
from i18n import Message
from uploads import imported, pending_imports

from .audit import Audit
from .curation import MIN_PHOTOS, Curation, listing, out_of_fold_sets, rerank
from .hub import HubPush
from .journal import JournalError
from .labelset import labels_of
from .llm import BatchStopped, autolabel
from .providers import labeler_from
from .store import LEFT_OUT, REASONS, LabelStore, left_out
from .suspects import label_sure, model_key, predict_store, rank, sure

EXPORTS = Path(tempfile.gettempdir()) / "animals10-exports"  # never under DATA_DIR, which is not served
SMALL_BATCH = 128  # images without a prediction that Start waits for (a few seconds), rather than open unranked
WAIT = 30  # at most this long (seconds): a busy CPU, or a model loading, must not leave a small queue unranked
STATUSES = ["all", "unreviewed", "accepted", "corrected", "left_out", "audit"]  # audit: its photos, labelled blind
SORTS = ["suspicion", "model confidence", "key"]


class ReviewError(Message):
    """A request the review cannot do (no image open, nothing to undo...); the message says what to do."""


@dataclass(frozen=True)
class Filters:
    """Which images the review queue holds, and in what order (the Review tab's dropdowns, in this field order)."""

    status: str = "all"  # one of STATUSES
    label: str = "all"  # a class, none, "other" (a name that is no class) or all
    predicted: str = "all"  # what the model answers: a class, none or all
    llm_only: bool = False  # only where the LLM said none or gave no usable answer
    sort: str = "suspicion"  # one of SORTS
    copies: str = "all"  # only near-copies (labeling.curation.COPIES): in the store, of the model's training photos
    out_of_fold: bool = False  # rank every data set out of fold, as a training set (labeling.curation)
    photos: str = ""  # only these photos: their uids, one a line (a band selected on the Evaluate tab's map)

    @classmethod
    def of(cls, values) -> "Filters":
        return values if isinstance(values, cls) else cls(*values)


@dataclass(frozen=True)
class Step:
    """Where a key press left a reviewer's session: the image it opened (``None``: nothing left in the queue).

    ``queue`` is the ranked queue it came from, by ``filters`` (``None`` where an image was reopened: previous,
    undo); ``blind``: an audit photo, to be shown with nothing that says what it is; ``undone``: how many images an
    undo gave back (a bulk accept is one decision of many).
    """

    session: dict
    image: int | None
    queue: list[dict] | None = None
    filters: Filters = field(default_factory=Filters)
    blind: bool = False
    undone: int = 0


class Review:
    """The review's logic, one instance per app (the store is shared by all sessions and processes).

    ``scrub`` takes server paths out of messages shown to users (the app passes its guard's).
    """

    def __init__(self, settings, slot, scrub=str):
        self.settings, self.slot, self.scrub = settings, slot, scrub
        self.journal = settings.journal()
        self.store = self._open_store()
        self.hub = self._hub()
        self.autolabel_cancel, self.autolabel_lock = threading.Event(), threading.Lock()
        # (store version, result) of the last reading of each: read again only when the version moved
        self._state, self._probs, self._ranked = (None, None), (None, None), (None, None)
        self._predict_lock, self._predicted_for, self.predicting = threading.Lock(), None, None
        # features, copies and the finer ranking (labeling.curation), after the predictions
        self.curation, self._reranked = Curation(self.store, busy=self._predict_lock.locked), (None, None)
        self.finish_imports()
        self.rebuild()

    def _open_store(self) -> LabelStore:
        """The label store; with a journal in PERSIST_DIR and no store on the local disk (a host restarted), the
        kept data sets are copied back and the store is rebuilt from the journal first, before anything is served."""
        path = self.settings.layout.labels_db
        fresh = not path.exists()
        if self.journal and fresh:
            self.settings.layout.datasets.mkdir(parents=True, exist_ok=True)
            restored = self.journal.restore_datasets(self.settings.layout.datasets)
            events = LabelStore(path).restore(self.journal)
            print(f"restored from PERSIST_DIR: {events} label events, data sets {restored or 'none'}",
                  file=sys.stderr, flush=True)
        return LabelStore(path, self.journal)

    def rebuild(self) -> None:
        """At start: compute, in the background, the served model's predictions the store lacks. After a restore
        they all are (the journal keeps labels, not this cache), and the ranking, the suspects and Review impact
        are derived from them: by the time someone opens the queue, it ranks as it did before the restart."""
        if self.slot is None:  # the store alone (a start's imports, in tests): no model, nothing to predict
            return
        key = model_key(self.slot.get())
        _, images, predicted = self.store.version(key)
        if predicted < images:
            self.predict_in_background()
        if images:  # and the features, copies and scores of the finer ranking (after the predictions)
            self.ranked()

    def _hub(self):
        """The scheduled push to HF_DATASET_REPO, if set (a failure to reach the Hub is one log line, not a failed
        start: the labels stay in the store, and in PERSIST_DIR)."""
        if not self.settings.hf_dataset_repo:
            return None
        try:
            return HubPush(self.settings, self.store)
        except Exception as e:  # noqa: BLE001 - the network, the token, the repository: any of them
            print(f"hub: {self.settings.hf_dataset_repo} cannot be pushed to ({type(e).__name__}); pushing is off",
                  file=sys.stderr, flush=True)
            return None

    def push_to_hub(self) -> dict:
        """Push the reviewed labels now; ``{data set: labelled photos}``."""
        if self.hub is None:
            raise ReviewError("rv_err_no_hub")
        return self.hub.push_now()

    def keep(self, folder) -> None:
        """Copy an uploaded data set to PERSIST_DIR once, so it comes back with its labels after a restart."""
        if self.journal:
            self.journal.keep_dataset(folder)

    def finish_imports(self) -> None:
        """Import the uploaded data sets whose import a killed process left unfinished (they are not listed until
        then); one log line each."""
        for folder, author in pending_imports(self.settings.layout.datasets):
            try:
                self.store.import_folder(folder, labels_file(folder), author=author)
            except (ValueError, OSError) as e:
                print(f"upload {folder.name}: its import could not finish ({type(e).__name__}); left unlisted",
                      file=sys.stderr, flush=True)
                continue
            imported(folder)
            print(f"upload {folder.name}: import finished at start", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def _saving(self):
        """A write the journal could not keep was not made: the reviewer is told, in words."""
        try:
            yield
        except JournalError:
            raise ReviewError("rv_err_not_saved") from None

    # -- a reviewer's session -----------------------------------------------------------------------------------

    @staticmethod
    def check(session: dict | None) -> None:
        """Refuse a request without a started session (no reviewer yet)."""
        if not session or not session.get("reviewer"):
            raise ReviewError("rv_err_start")

    def start(self, name: str, filters, old: dict | None = None) -> Step:
        """Open a session for ``name`` (already checked) and its first image. Starting again (new filters) keeps the
        browser's lease holder, so its open image is released."""
        if old and old.get("reviewer") == name:
            holder = old["holder"]
        else:  # a new page: the same reviewer's earlier pages (a reload) hold nothing of theirs any more
            self.store.release_pages_of(name)
            holder = f"{name}:{uuid.uuid4().hex[:8]}"
        session = {"reviewer": name, "holder": holder, "history": [], "current": None}
        self.predict_in_background(wait=WAIT)  # a small set opens ranked; a large one opens at once, ranks as it goes
        return self.show_next(session, filters)

    def show_next(self, session: dict, filters) -> Step:
        """Open the next image of the queue by ``filters`` that this session has not seen, leased to it."""
        self.check(session)
        filters = Filters.of(filters)
        image, queue = self.next_image(session, filters)
        if image is not None:
            session["history"].append(image)
        session["current"] = image
        session["blind"] = filters.status == "audit"  # an audit photo shows no label, no one's answer
        return Step(session, image, queue, filters, session["blind"])

    def decide(self, session: dict, choice: str, filters) -> Step:
        """Record ``choice`` (a class, ``"none"``, or ``"accept"`` the current label) for the open image, then open
        the next one."""
        self.check(session)
        current = session.get("current")
        if current is None:
            raise ReviewError("rv_err_no_image")
        if choice == "accept":
            if session.get("blind"):
                raise ReviewError("rv_err_blind_accept")
            choice = self.store.state([current])[0]["label"]
            if choice is None:
                raise ReviewError("rv_err_no_label")
        with self._saving():
            self.store.decide(current, choice, session["reviewer"])
        return self.show_next(session, filters)

    def leave_out(self, session: dict, reason: str, filters) -> Step:
        """Leave the open image out for ``reason`` (one of :data:`labeling.store.REASONS`): a decision like a class
        key's (author, undo, journal), then open the next one."""
        if reason not in REASONS:
            raise ReviewError("rv_err_out_reason")
        return self.decide(session, LEFT_OUT + reason, filters)

    def previous(self, session: dict) -> Step:
        """Reopen the image shown before the open one (leased again: refused if someone else holds it)."""
        self.check(session)
        history = session["history"]
        if len(history) < 2:
            raise ReviewError("rv_err_first")
        history.pop()
        if not self.store.claim(history[-1], session["holder"]):
            raise ReviewError("rv_err_taken")
        session["current"] = history[-1]
        return Step(session, history[-1], blind=session.get("blind", False))  # an audit stays blind going back

    def undo(self, session: dict) -> Step:
        """Undo the reviewer's latest decision (a whole bulk accept if it was one) and reopen its image."""
        self.check(session)
        with self._saving():
            images = self.store.undo(session["reviewer"])
        if not images:
            raise ReviewError("rv_err_undo")
        self.store.claim(images[0], session["holder"])
        shown = session.get("current")
        if shown is not None and shown not in images and shown in session["history"]:
            # the photo the undo leaves undecided was only shown: the next key must not skip it as seen
            session["history"].reverse()
            session["history"].remove(shown)
            session["history"].reverse()
        session["current"] = images[0]
        session["history"].append(images[0])
        return Step(session, images[0], blind=session.get("blind", False), undone=len(images))

    def bulk_accept(self, session: dict, threshold: float) -> int:
        """Accept every :meth:`bulk_candidates` label at ``threshold`` as one decision (one undo); how many."""
        self.check(session)
        rows = self.bulk_candidates(threshold)
        if not rows:
            raise ReviewError("rv_err_bulk")
        with self._saving():
            self.store.accept_many([r["id"] for r in rows], session["reviewer"])
        return len(rows)

    def import_folder(self, session: dict | None, folder: Path, author: str | None = None) -> dict:
        """Import a data set folder (its results.json if there is one, else class folders); returns what
        :meth:`labeling.store.LabelStore.import_folder` counted. An import needs no reviewer session: ``author`` (else
        the session's reviewer) is recorded with its labels."""
        if author is None:
            self.check(session)
        try:
            result = self.store.import_folder(folder, labels_file(folder), author=author or session["reviewer"])
        except Message as e:
            raise e.scrubbed(self.scrub) from None
        except (ValueError, FileNotFoundError) as e:
            raise ReviewError(self.scrub(e)) from None
        self.predict_in_background()
        return result

    # -- predictions, in the background ------------------------------------------------------------------------

    def predict_in_background(self, wait: float = 0.0) -> None:
        """Compute the served model's missing predictions in a thread (one at a time), at the classifier's batch
        speed, saved as they come (the queue ranks them as they arrive). When only a few are missing (a small
        import: about a second of work), wait at most ``wait`` seconds for them, so the queue opens ranked."""
        clf = self.slot.get()
        key = model_key(clf)
        _, images, predicted = self.store.version(key)
        wait = wait if images - predicted <= SMALL_BATCH else 0
        if self._predicted_for != (key, images) and self._predict_lock.acquire(blocking=False):
            self._predicted_for = (key, images)  # an unreadable image is not tried again until something changes

            def work():
                try:
                    predict_store(self.store, clf, progress=lambda i, n: setattr(self, "predicting", (i, n)))
                finally:
                    self.predicting = None
                    self._predict_lock.release()
            threading.Thread(target=work, daemon=True, name="predictions").start()
        deadline = time.time() + wait
        while self._predict_lock.locked() and time.time() < deadline:
            time.sleep(0.05)

    def predictions(self) -> tuple:
        """The served classifier and its cached predictions ``{image id: probabilities}``, computed on demand: the
        missing ones (after a restore, an import, a new model) first, waited for as Start waits for them."""
        self.predict_in_background(wait=WAIT)
        clf = self.slot.get()
        return clf, self.store.cached_predictions(model_key(clf))

    # -- queue -------------------------------------------------------------------------------------------------

    def state(self) -> list[dict]:
        """The store's state, read again only when labels or images changed (by anyone) since the last read: after
        new events only their images are read again (a decision costs one image, not the whole store)."""
        version, rows = self._state
        now = self.store.version()[:2]
        if version == now:
            return rows
        if version and version[1] == now[1] and version[0] is not None:
            fresh = {r["id"]: r for r in self.store.state(self.store.changed_since(version[0]))}
            rows = [fresh.get(r["id"], r) for r in rows]
        else:  # first read, or images were added
            rows = self.store.state()
        self._state = (now, rows)  # read after the version: at worst newer than it, then patched once more
        return rows

    def ranked(self, out_of_fold: bool = False) -> list[dict]:
        """The whole store ranked, most suspicious first; ranked again only when labels, images, the served model
        or its cached predictions changed, so browsing costs no ranking and a decision one. Images still without a
        prediction (being computed in the background) rank after those with one.

        Once a data set's features are computed (:class:`labeling.curation.Curation`, in the background), its
        photos are ranked by :func:`labeling.quality.review_scores` instead, out of fold for a data set the served
        model was trained on (or every one, with ``out_of_fold``); each row says how (``ranking``, ``score``) and
        which photos it copies (``copies``, ``leak``)."""
        clf = self.slot.get()
        key = model_key(clf)
        last_event, images, predicted = self.store.version(key)
        if predicted < images and self._predicted_for != (key, images):  # not at every key press: tried once
            self.predict_in_background()
        if self._probs[0] != (key, images, predicted):
            probs = {i: np.asarray(p, np.float32) for i, p in self.store.cached_predictions(key).items()}
            self._probs = ((key, images, predicted), probs)
        (stamp, probs), (ranked_at, rows) = self._probs, self._ranked
        if ranked_at != (stamp, last_event):
            rows = rank(self.state(), probs, clf.classes, clf.none_threshold)
            self._ranked = ((stamp, last_event), rows)
        state = self.state()
        oof = self.out_of_fold_sets(state, out_of_fold)
        self.curation.kick(clf, key, state, oof)
        if not self.curation.ready(key, images):
            return rows
        at = ((stamp, last_event), self.curation.version, oof)
        if self._reranked[0] != at:
            self._reranked = (at, rerank(rows, self.curation.scores_for(state, oof), self.curation.copies))
        return self._reranked[1]

    def out_of_fold_sets(self, state: list[dict], every: bool = False) -> frozenset:
        """The data sets ranked out of fold: those the served model was trained on (it learnt their labels), or
        ``every`` one."""
        return out_of_fold_sets(state, self.slot.get().meta, every)

    def queue(self, filters: "Filters | tuple" = (), reviewer: str | None = None) -> list[dict]:
        """The images the ``filters`` let through, in their order (:class:`Filters`; a tuple of their values in
        field order, as the tab's dropdowns give them, works too)."""
        status, label, predicted, llm_only, sort, copies, out_of_fold, photos = astuple(Filters.of(filters))
        rows = list(self.ranked(out_of_fold))  # a copy: sorting it must not reorder the cached ranking
        if status == "audit":  # the audit photos this reviewer has not labelled yet, in random order (blind)
            todo = self.audit_todo(reviewer)
            rows = sorted((r for r in rows if r["id"] in todo), key=lambda r: todo[r["id"]])
        elif status != "all":
            rows = [r for r in rows if r["status"] == status]
        if label != "all":
            rows = [r for r in rows if (r["label"] or "").startswith(OTHER)] if label == "other" else \
                [r for r in rows if r["label"] == label]
        if predicted != "all":
            rows = [r for r in rows if r["predicted"] == predicted]
        if llm_only:
            rows = [r for r in rows if r["llm_label"] == NONE or r["llm_status"] in
                    ("unparseable", "content_filter", "sensitive")]
        if copies != "all":  # unknown until the features are computed: none yet (the view says why)
            found = self.curation.copies if rows and "copies" in rows[0] else None
            rows = [r for r in rows if found is not None and found.has(r["id"], copies)]
        if wanted := {p.strip() for p in (photos or "").splitlines() if p.strip()}:
            rows = [r for r in rows if r["uid"] in wanted]
        if sort == "model confidence":
            rows.sort(key=lambda r: r["p_predicted"] if r["p_predicted"] is not None else 0)
        elif sort == "key":
            rows.sort(key=lambda r: r["key"])
        return rows

    def suspects(self, filters=(), top: int = 100) -> dict:
        """The first ``top`` photos of the queue by ``filters`` as a list (the API's ``review_suspects``): how many
        the queue holds, whether the copies are known (``copies``: ``pending`` until the features are computed) and
        the leak check (``unavailable`` for a model without an index of its training photos), and each photo
        (:func:`labeling.curation.listing`)."""
        rows = self.queue(Filters.of(filters))
        known = self.copies_state()
        return {"photos": len(rows), "copies": known["copies"], "leak_check": known["leak_check"],
                "suspects": listing(rows[:top], self.uids())}

    def next_image(self, session: dict, filters) -> tuple[int | None, list[dict]]:
        """The next image of the queue by ``filters`` the session has not seen, leased to it (``None``: none left),
        and that queue."""
        since = self.store.version()[0]  # the last event before the queue is read
        rows = self.queue(filters, session["reviewer"])
        seen = set(session["history"])
        if Filters.of(filters).photos and all(r["id"] in seen for r in rows):
            seen = set()  # photos picked on the Evaluate tab's map open even when seen before in this session
        image = self.store.claim_next([r["id"] for r in rows if r["id"] not in seen], session["holder"], since)
        return image, rows

    # -- what is known of an image (the presenter, studio.review_view, says it in words) -----------------------

    def row(self, image_id: int, queue: list[dict] | None = None, out_of_fold: bool = False) -> dict:
        """``image_id``'s row of ``queue`` (the ranked queue it came from), else of the whole store ranked."""
        return next(r for r in (queue if queue is not None else self.ranked(out_of_fold)) if r["id"] == image_id)

    def top_classes(self, image_id: int, k: int = 3) -> list[tuple[str, float]]:
        """The served model's ``k`` likeliest classes for the image, from its cached prediction (none yet: ``[]``)."""
        clf = self.slot.get()
        probs = self.store.cached_prediction(model_key(clf), image_id)  # one row, not the whole cache
        return clf.top_k(np.asarray(probs), k) if probs else []

    def learnt(self, row: dict) -> bool:
        """Whether the served model was trained on ``row``'s data set: it learnt those labels, and cannot doubt
        them."""
        return Path(row["root"]) in trained_on(self.slot.get().meta)

    def ranked_how(self, row: dict, filters=None) -> dict:
        """How the queue ranked ``row``: ``by`` ``"review"`` (label quality from several views), ``"out_of_fold"``
        (``asked``: by the filters, not because the served model learnt the set) or, until its data set's features
        and scores are computed or for a set too small for a probe of its own, ``"model"`` (the served model's
        probability of the label), with ``why``: ``"wait"`` (features computed: ``done`` of ``n``), ``"failed"``,
        ``"too_few"`` (under ``n`` labelled photos), ``"soon"`` or ``None``."""
        filters = Filters.of(filters) if filters is not None else Filters()
        if row.get("ranking") == "review":
            return {"by": "review", "score": row["score"]}
        if row.get("ranking") == "out_of_fold":
            return {"by": "out_of_fold", "score": row["score"], "asked": filters.out_of_fold and not self.learnt(row)}
        return {"by": "model", **self._not_scored(row, filters)}

    def _not_scored(self, row: dict, filters: Filters) -> dict:
        """Why ``row`` is still ranked by the served model's probability (:meth:`ranked_how`)."""
        key, computing = model_key(self.slot.get()), self.curation.progress  # read once: a thread resets it
        if computing:
            return {"why": "wait", "done": computing[0], "n": computing[1]}
        if self.curation.error and self.curation.error[0] == key:
            return {"why": "failed"}
        if "ranking" in row and row["id"] in self.curation.feats.at:
            scored = self.curation.scored.get((row["dataset"], filters.out_of_fold or self.learnt(row)))
            if scored and scored.why == "too_few":
                return {"why": "too_few", "n": MIN_PHOTOS}
            return {"why": "failed" if scored and scored.why else "soon"}
        return {"why": None if "ranking" in row else "soon"}

    def uids(self) -> dict:
        """``{image id: uid}`` of the whole store (a uid names a photo: ``<data set>/<path>``)."""
        return {r["id"]: r["uid"] for r in self.state()}

    def copies_state(self) -> dict:
        """How far the copies are known: ``copies`` ``"ready"`` or ``"pending"`` (the features still computed:
        ``done`` of ``n``), and the ``leak_check`` against the training photos of the served model (``model``, its
        name): ``"pending"``, ``"ready"`` or ``"unavailable"`` (it carries no index of them: never "no leaks")."""
        clf, images = self.slot.get(), self.store.version()[1]
        if not self.curation.ready(model_key(clf), images):
            done, n = self.curation.progress or (0, images)
            return {"copies": "pending", "leak_check": "pending", "done": done, "n": n, "model": clf.name}
        leaks = "unavailable" if self.curation.copies.unavailable else "ready"
        return {"copies": "ready", "leak_check": leaks, "model": clf.name}

    # -- how many wrong labels are left (labeling.audit) --------------------------------------------------------

    def audit_todo(self, reviewer: str | None) -> dict:
        """``{image id: order}`` of the audit photos ``reviewer`` has not labelled yet: every data set's audit
        photos nobody labelled, and those two reviewers disagree on (for a third decision)."""
        todo = {}
        for d in self.store.datasets():
            for it in Audit(self.store, d["name"]).items():
                who = dict(it["decisions"])
                labels = list(who.values())
                open_ = not labels or (len(labels) == 2 and labels[0] != labels[1]) or (len(labels) == 1)
                if open_ and reviewer not in who:
                    todo[it["image_id"]] = hash((it["image_id"], it["drawn_at"]))  # a fixed, shuffled order
        return todo

    def audit_draw(self, folder, size: int) -> int:
        """Draw a new audit of ``size`` photos among the unreviewed ones of the data set at ``folder``."""
        name = self._dataset_name(folder)
        self.predict_in_background(wait=WAIT)  # its strata are the model's: drawn on every prediction
        return Audit(self.store, name).draw(self.ranked(), int(size))

    def audit_state(self, folder) -> tuple[dict, int]:
        """The audit's estimate for the data set at ``folder`` (:meth:`labeling.audit.Audit.state`) and its size."""
        name = self._dataset_name(folder)
        rows = [r for r in self.state() if r["dataset"] == name]
        return Audit(self.store, name).state({r["id"] for r in rows if r["human_label"] is None}), len(rows)

    def _dataset_name(self, folder) -> str:
        try:
            return self.store.dataset(folder)["name"]
        except ValueError:
            raise ReviewError("rv_err_not_imported") from None

    def heatmap(self, session: dict | None):
        """Where the serving model looked in the open image, for the class it predicts (Grad-CAM), or None when no
        image is open or the file cannot be read (the view says why)."""
        current = (session or {}).get("current")
        if current is None or session.get("blind"):  # an audit photo: not even where the model looked
            return None
        try:
            return self.slot.explainer().explain(self.store.state([current])[0]["file"], side=640)[0]
        except ImageError:
            return None

    def store_is_empty(self) -> bool:
        """No image imported yet (a first start): the tab offers the demo set."""
        return self.store.version()[1] == 0

    def counts(self) -> dict:
        """The review's progress: the store's counts (:meth:`labeling.store.LabelStore.stats`), with the work still
        going on in the background as ``(done, n)`` or ``None``: ``predicting`` (the served model's predictions) and
        ``featuring`` (the features of the finer ranking and the copies)."""
        return {**self.store.stats(self.state()), "predicting": self.predicting, "featuring": self.curation.progress}

    # -- bulk accept -------------------------------------------------------------------------------------------

    def bulk_candidates(self, min_confidence: float) -> list[dict]:
        """Unreviewed images whose LLM/import label the model agrees with at ``min_confidence`` or more (the
        predictions still missing, after a restore or an import, waited for: an image without one is never taken)."""
        self.predict_in_background(wait=WAIT)
        return [r for r in self.ranked() if r["status"] == "unreviewed" and r["label"] in CLASSES
                and r["predicted"] == r["label"] and (r["p_predicted"] or 0) >= min_confidence]

    def impact(self) -> dict:
        """The serving model scored against the labels before and after review: every data set's labels as
        :func:`labeling.labelset.labels_of` gives them, scored by :func:`evaluation.metrics.review_change` (its
        answer), the computation the Evaluate tab uses. Uses the cached predictions (the missing ones computed
        first: after a restart it answers as it did before)."""
        clf, probs = self.predictions()
        predicted, before, after = {}, {}, {}
        ids = {(r["dataset"], r["key"]): r["id"] for r in self.state()}
        for d in self.store.datasets():
            labels = labels_of(self.store, d["name"], "reviewed")
            scored = {*labels.labels, *labels.before} - set(labels.left_out)  # left out: in neither, as in Evaluate
            for key, image in ((k, ids.get((d["name"], k))) for k in scored):
                if image in probs:
                    predicted[(d["name"], key)] = clf.classes[int(np.argmax(probs[image]))]
            before.update({(d["name"], k): v for k, v in labels.before.items()})
            after.update({(d["name"], k): v for k, v in labels.labels.items()})
        return review_change(before, after, predicted, n_boot=200)

    def scorecard_inputs(self) -> tuple[list[dict], dict, dict]:
        """What :func:`labeling.scorecard.scorecard` scores the LLM labeller on: its answers, the reviewed labels
        ``{image id: label}``, and the served classifier's answers (cached) for "both wrong"."""
        clf, probs = self.predictions()
        reviewed = {r["id"]: r["human_label"] for r in self.store.state()  # a photo left out has no label to match
                    if r["human_label"] is not None and not left_out(r["human_label"])}
        predicted = {i: clf.answer(np.asarray(p, np.float32)) for i, p in probs.items()}
        return self.store.llm_answers(), reviewed, predicted

    # -- auto-label --------------------------------------------------------------------------------------------

    def autolabel_skip(self, below: float | None, weak=()) -> set:
        """Images an "only where the classifier is unsure" auto-label leaves out (none when ``below`` is None)."""
        if below is None:
            return set()
        clf, probs = self.predictions()  # an image without its prediction yet would be sent to the LLM: it costs
        return sure(probs, clf.classes, below, weak)

    def autolabel_plan(self, below: float | None, weak=(), limit: int = 0) -> dict:
        """What an auto-label would ask before it starts: ``asked`` of ``without`` images still without an LLM
        answer (``saved`` left to the classifier) and the estimated ``cost`` (``LLM_COST_PER_IMAGE`` each)."""
        skip = self.autolabel_skip(below, weak)
        todo = [r["id"] for r in self.state() if r["llm_status"] is None]
        asked = len([i for i in todo if i not in skip])
        asked = min(asked, limit) if limit else asked
        return {"without": len(todo), "asked": asked, "saved": len(todo) - asked,
                "cost": asked * self.settings.llm_cost_per_image}

    def run_autolabel(self, limit: int, progress, below: float | None = None, weak=()) -> dict:
        """Ask the LLM for the images still without its answer (at most ``limit``; only where the classifier is
        unsure below ``below``, :meth:`autolabel_skip`), one run at a time; :func:`labeling.llm.autolabel`'s summary
        with ``model_labelled``: how many of the others took the classifier's sure answer as their label."""
        if not self.autolabel_lock.acquire(blocking=False):
            raise ReviewError("rv_err_autolabel_running")
        try:
            self.autolabel_cancel.clear()
            labeler = labeler_from(self.settings)
            skip = self.autolabel_skip(below, weak)
            summary = autolabel(self.store, labeler, limit or None, 2, progress, self.autolabel_cancel, skip)
            summary["model_labelled"] = label_sure(self.store, self.slot.get(), skip)
            return summary
        except BatchStopped as e:
            raise ReviewError("rv_err_autolabel_stopped", why=str(e)) from None
        finally:
            self.autolabel_lock.release()

    # -- export ------------------------------------------------------------------------------------------------

    def export_formats(self, folder) -> list[str]:
        """One data set's labels (reviewed where decided) for training tools: an ImageFolder zip and a Hugging Face
        ``datasets`` folder (zipped), in a fresh temporary folder (:mod:`labeling.formats`)."""
        from .formats import hf_folder, imagefolder_zip

        name = self._dataset_name(folder)
        out = self._export_dir()
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        imagefolder_zip(self.store, name, out / f"{safe}-imagefolder.zip")
        hf_folder(self.store, name, out / f"{safe}-datasets")
        shutil.make_archive(str(out / f"{safe}-datasets"), "zip", out, f"{safe}-datasets")
        shutil.rmtree(out / f"{safe}-datasets")
        return [str(out / f"{safe}-imagefolder.zip"), str(out / f"{safe}-datasets.zip")]

    def _export_dir(self) -> Path:
        """A fresh folder for one download (never under DATA_DIR, which is not served); older ones removed."""
        EXPORTS.mkdir(exist_ok=True)
        for old in EXPORTS.glob("export-*"):
            if time.time() - old.stat().st_mtime > 600:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="export-", dir=EXPORTS))

    def export(self) -> list[str]:
        """Files for one download: each data set's results.json (original format), the history CSV and a copy of
        the database, in a fresh temporary folder (Gradio serves its own copies; older exports are removed)."""
        out = self._export_dir()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        files = []
        for d in self.store.datasets():
            files.append(out / f"results-{re.sub(r'[^A-Za-z0-9._-]+', '_', d['name'])}-{stamp}.json")
            self.store.export_results(files[-1], d["name"])
        files += [out / f"history-{stamp}.csv", out / f"labels-{stamp}.db"]
        self.store.export_history(files[-2])
        self.store.backup(files[-1])
        return [str(f) for f in files]

