"""The label store: SQLite, append-only label events, nothing ever overwritten.

Tables: ``datasets`` (one per imported folder: name, folder), ``images`` (data set, path within it with its
extension, key = that path without extension as the original results.json names it, sha256, size), ``events`` (one
row per label decision: label, source llm/human/model/import, author, model name, prompt version, raw LLM reply,
status, time; an undo is an event naming the event it undoes), ``current`` (each image's current labels, derived
from its events in the same transaction), ``leases`` (which reviewer has which image open) and ``predictions``
(classifier probabilities cached per model). An image is identified by its data set and path, so two folders that
both hold ``0.jpg`` never share labels; a store from before data sets is migrated when it is opened.

An image's current label is its latest effective human event, else its latest LLM or import label. An event is
effective unless an undo names it, so undoing an image's first decision returns it to unreviewed. Labels are class
ids, ``"none"`` (none of the 10) or ``"other: <name>"`` (an unknown name, kept verbatim for review); a reviewer may
also leave a photo out, with a reason (``"out: <reason>"``, :data:`REASONS`).
Every write is one transaction in WAL mode: a killed process loses at most the action in flight.
"""

import contextlib
import csv
import hashlib
import json
import sqlite3
import time
import uuid
from pathlib import Path

from classifier.classes import CLASSES, NONE, OTHER
from classifier.files import list_images, natural_key, write_atomic
from classifier.labels import folder_labels, match, read_labels
from escaping import cell

SOURCES = ("llm", "human", "model", "import")
LEASE_SECONDS = 120
# A photo a reviewer leaves out is a human label event like any other, labelled ``out: <reason>``: undo, authors,
# the journal, a restart's replay and the history need nothing new, and no class or none ever starts with it.
LEFT_OUT = "out: "
REASONS = ("several", "cannot_tell", "not_animal", "copy")  # two or more of the classes; cannot tell; not a photo of
# an animal; a copy of another photo


def left_out(label) -> str | None:
    """The reason ``label`` leaves its photo out (one of :data:`REASONS`), or None for a label that does not."""
    return label[len(LEFT_OUT):] if isinstance(label, str) and label.startswith(LEFT_OUT) else None


DATASETS_TABLE = """CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, root TEXT UNIQUE NOT NULL, added_at REAL NOT NULL)"""
IMAGES_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL REFERENCES datasets(id), path TEXT NOT NULL,
    key TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, added_at REAL NOT NULL,
    UNIQUE (dataset_id, path))"""
SCHEMA = f"""{DATASETS_TABLE};
{IMAGES_TABLE.format(name="images")};
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id),
    label TEXT, source TEXT NOT NULL CHECK (source IN ('llm', 'human', 'model', 'import')),
    author TEXT, model TEXT, prompt_version TEXT, raw_reply TEXT, status TEXT NOT NULL DEFAULT 'ok',
    undoes INTEGER REFERENCES events(id), batch TEXT, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_image ON events(image_id, id);
CREATE INDEX IF NOT EXISTS events_undoes ON events(undoes);
CREATE INDEX IF NOT EXISTS events_batch ON events(batch) WHERE batch IS NOT NULL;
CREATE TABLE IF NOT EXISTS leases (image_id INTEGER PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    image_id INTEGER NOT NULL, model_key TEXT NOT NULL, probs TEXT NOT NULL, PRIMARY KEY (image_id, model_key));
CREATE TABLE IF NOT EXISTS current (
    image_id INTEGER PRIMARY KEY REFERENCES images(id), human_label TEXT, reviewer TEXT, machine_label TEXT,
    machine_source TEXT, llm_label TEXT, llm_reply TEXT, llm_status TEXT);
-- a blind audit (labeling/audit.py): every photo unreviewed at the draw with its stratum, so what is left of each
-- stratum is known exactly later; ``sampled`` marks the audit's own photos
CREATE TABLE IF NOT EXISTS audit_items (
    image_id INTEGER PRIMARY KEY REFERENCES images(id), audit TEXT NOT NULL, stratum INTEGER NOT NULL,
    stratum_size INTEGER NOT NULL, sampled INTEGER NOT NULL, label_before TEXT, drawn_at REAL NOT NULL);
"""

# Per image, from its effective events (an undo and the event it undoes are both left out): the latest human
# event, the latest LLM/import label, the latest LLM reply of any kind. Each found by its id, then read by primary
# key, so the work grows with the events, not with images x events. {where} narrows it to some images.
CURRENT_SQL = """
WITH last AS (
    SELECT image_id,
           MAX(CASE WHEN source = 'human' THEN id END) AS h,
           MAX(CASE WHEN source IN ('llm', 'import', 'model') AND label IS NOT NULL THEN id END) AS m,
           MAX(CASE WHEN source = 'llm' THEN id END) AS l
    FROM events e WHERE e.undoes IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) {where}
    GROUP BY image_id)
SELECT last.image_id, h.label, h.author, m.label, m.source, l.label, l.raw_reply, l.status
FROM last LEFT JOIN events h ON h.id = last.h LEFT JOIN events m ON m.id = last.m LEFT JOIN events l ON l.id = last.l
"""

# The ``current`` table is kept in the same transaction as every event, so reading the state is one plain join.
STATE_SQL = """
SELECT i.id, i.key, i.path, d.name AS dataset, d.root, c.human_label, c.reviewer, c.machine_label,
       c.machine_source, c.llm_label, c.llm_reply, c.llm_status
FROM images i JOIN datasets d ON d.id = i.dataset_id LEFT JOIN current c ON c.image_id = i.id {where}
"""
SOME = "IN (SELECT value FROM json_each(:ids))"


class LabelStore:
    """A label database file; safe to use from many threads and processes at once."""

    def __init__(self, path, journal=None):
        self.path = Path(path)
        self.journal = journal  # a labeling.journal.Journal: every write also lasts there, or is not made
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            columns = {r["name"] for r in con.execute("PRAGMA table_info(images)")}
            if "root" in columns:  # a store from before data sets: migrate it, ids and history kept
                _migrate_global_keys(con)
            con.executescript(SCHEMA)
            if con.execute("SELECT NOT EXISTS (SELECT 1 FROM current) AND EXISTS (SELECT 1 FROM events)").fetchone()[0]:
                with self.transaction() as tx:
                    _refresh(tx, None)

    # -- connections -------------------------------------------------------------------------------------------

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("PRAGMA foreign_keys=ON")
        return contextlib.closing(con)

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (``BEGIN IMMEDIATE``): all of it is saved, or none of it. With a journal, the rows
        it added are written there before it commits; if they cannot be, it is rolled back."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                before = _last_ids(con) if self.journal else None
                yield con
                if self.journal:
                    rows = _rows_since(con, before)
                    if any(rows.values()):
                        self.journal.write(rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def restore(self, journal) -> int:
        """Rebuild an empty store from ``journal`` (its rows inserted with their own ids, in order; the current
        labels derived again); returns how many events came back."""
        events = 0
        with self.transaction() as con:
            for rows in journal.read():
                for table in ("datasets", "images", "events"):
                    for row in rows.get(table, []):
                        columns = ", ".join(row)
                        con.execute(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES "
                                    f"({', '.join('?' * len(row))})", tuple(row.values()))
                events += len(rows.get("events", []))
            _refresh(con, None)
        return events

    def query(self, sql: str, params=()) -> list[dict]:
        with self._connect() as con:
            return [dict(r) for r in con.execute(sql, params)]

    # -- data sets, import / export ---------------------------------------------------------------------------

    def datasets(self) -> list[dict]:
        """``[{id, name, root, images}]``: every imported folder, oldest first."""
        return self.query("SELECT d.id, d.name, d.root, COUNT(i.id) AS images FROM datasets d "
                          "LEFT JOIN images i ON i.dataset_id = d.id GROUP BY d.id ORDER BY d.id")

    def dataset(self, which: str | Path) -> dict:
        """One data set by name or folder (as imported); raises ``ValueError`` naming the ones there are."""
        root = str(Path(which).resolve()) if Path(str(which)).is_dir() else None
        for d in self.datasets():
            if which == d["name"] or root == d["root"]:
                return d
        names = ", ".join(d["name"] for d in self.datasets()) or "none yet"
        raise ValueError(f"no data set {str(which)!r} in this label store (imported: {names}); import it first")

    def import_folder(self, images_dir: str | Path, labels_path: str | Path | None = None,
                      author: str = "import") -> dict:
        """Add the images under ``images_dir`` as one data set, with their labels (a results.json, else class
        folders).

        Images are identified by data set (the folder) and path within it, so two folders with the same file
        names never share labels. The label file is read and checked before anything is written, and everything is
        written in one transaction. Re-importing the same folder adds nothing. Returns counts, the data set's name
        and the keys that did not match.
        """
        root = Path(images_dir).resolve()
        items = list_images(root)
        keys = [k for k, _ in items]
        if labels_path:
            labels, missing_images, unlabelled = match(keys, read_labels(labels_path))
        else:
            labels, missing_images = folder_labels(keys), []
            unlabelled = [k for k in keys if k not in labels]
        added, touched = 0, []
        now = time.time()
        with self.transaction() as con:
            dataset_id, name = _dataset(con, root, now)
            known = {r["path"]: r["id"] for r in con.execute("SELECT id, path FROM images WHERE dataset_id = ?",
                                                             (dataset_id,))}
            # the latest import label of each image (SQLite takes the bare column from the MAX row)
            imported = {r["image_id"]: r["label"] for r in con.execute(
                "SELECT e.image_id, e.label, MAX(e.id) FROM events e JOIN images i ON i.id = e.image_id "
                "WHERE i.dataset_id = ? AND e.source = 'import' GROUP BY e.image_id", (dataset_id,))}
            for key, path in items:
                rel = Path(path).relative_to(root).as_posix()
                image_id = known.get(rel)
                if image_id is None:
                    data = Path(path).read_bytes()
                    image_id = con.execute(
                        "INSERT INTO images (dataset_id, path, key, sha256, size, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (dataset_id, rel, key, hashlib.sha256(data).hexdigest(), len(data), now)).lastrowid
                    added += 1
                if key in labels and imported.get(image_id, object()) != labels[key]:
                    con.execute("INSERT INTO events (image_id, label, source, author, created_at) "
                                "VALUES (?, ?, 'import', ?, ?)", (image_id, labels[key], author, now))
                    touched.append(image_id)
            _refresh(con, touched)
        return {"dataset": name, "images": len(items), "added": added, "labels_added": len(touched),
                "labels_without_image": missing_images, "images_without_label": unlabelled}

    def export_results(self, path: str | Path, dataset: str | None = None) -> dict[str, str]:
        """Write one data set's current labels as a results.json in the original format ("null" for none), keyed
        as the original (the path without extension); returns the dict. ``dataset`` may be left out when the
        store holds one. A photo a reviewer left out has no label there (the format has no word for it; the
        history says why)."""
        name = self._one_dataset(dataset)
        out = {}
        for row in sorted(self.state(dataset=name), key=lambda r: natural_key(r["key"])):
            label = row["label"]
            if label is not None and row["status"] != "left_out":
                out[row["key"]] = "null" if label == NONE else label.removeprefix(OTHER)
        write_atomic(path, json.dumps(out, ensure_ascii=False, indent=1))
        return out

    def _one_dataset(self, dataset):
        if dataset is not None:
            return self.dataset(dataset)["name"]
        names = [d["name"] for d in self.datasets()]
        if len(names) > 1:
            raise ValueError(f"this label store holds {len(names)} data sets ({', '.join(names)}): name one")
        return names[0] if names else None

    def export_history(self, path: str | Path) -> int:
        """Write every event, oldest first, as CSV (the full, append-only history), for people and spreadsheets:
        a cell that would start a formula (a reviewer named ``=cmd|...``) starts with ``'`` (:func:`escaping.cell`)."""
        columns = ["id", "dataset", "path", "key", "label", "source", "author", "model", "prompt_version", "status",
                   "raw_reply", "undoes", "batch", "created_at"]
        with self._connect() as con, open(path, "w", newline="", encoding="utf-8") as f:
            con.row_factory = None  # plain tuples, streamed: the history can be large
            rows = con.execute("SELECT e.id, d.name, i.path, i.key, e.label, e.source, e.author, e.model, "
                               "e.prompt_version, e.status, e.raw_reply, e.undoes, e.batch, e.created_at FROM events "
                               "e JOIN images i ON i.id = e.image_id JOIN datasets d ON d.id = i.dataset_id "
                               "ORDER BY e.id")
            writer = csv.writer(f)
            writer.writerow(columns)
            count = 0
            for chunk in iter(lambda: rows.fetchmany(5000), []):  # names and replies: never a formula
                writer.writerows([[cell(v) for v in row] for row in chunk])
                count += len(chunk)
        return count

    def decision_times(self) -> dict[int, float]:
        """``{image id: time of its latest reviewer event}``, for exports that say when a label was decided."""
        return {r["image_id"]: r["at"] for r in self.query(
            "SELECT image_id, MAX(created_at) AS at FROM events WHERE source = 'human' GROUP BY image_id")}

    def backup(self, path: str | Path) -> str | Path:
        """A consistent copy of the database (SQLite's online backup), safe while others write."""
        with self._connect() as con, contextlib.closing(sqlite3.connect(path)) as out:
            con.backup(out)
        return path

    # -- state -------------------------------------------------------------------------------------------------

    def state(self, image_ids: list[int] | None = None, dataset: str | None = None) -> list[dict]:
        """Every image (or those in ``image_ids``, or of one data set) with its current label, review status, LLM
        reply and ``uid`` (data set/path, unique in the store)."""
        if image_ids is not None:  # the ids as one JSON parameter: no limit on how many
            rows = self.query(STATE_SQL.format(where=f"WHERE i.id {SOME}"),
                              {"ids": json.dumps([int(i) for i in image_ids])})
        elif dataset is not None:
            rows = self.query(STATE_SQL.format(where="WHERE d.name = :name"), {"name": dataset})
        else:
            rows = self.query(STATE_SQL.format(where=""))
        for r in rows:
            human = r["human_label"] is not None
            r["label"] = r["human_label"] if human else r["machine_label"]
            r["source"] = "human" if human else r["machine_source"]
            r["status"] = ("unreviewed" if not human else "left_out" if left_out(r["human_label"]) else
                           "accepted" if r["human_label"] == r["machine_label"] else "corrected")
            r["file"] = str(Path(r["root"]) / r["path"])
            r["uid"] = f"{r['dataset']}/{r['path']}"
        return rows

    def version(self, model_key: str | None = None) -> tuple:
        """What :meth:`state` (and a ranking by ``model_key``'s cached predictions) depends on: the last event, the
        number of images (and of predictions cached for the model). Equal versions, equal results."""
        row = self.query("SELECT (SELECT MAX(id) FROM events) AS e, (SELECT COUNT(*) FROM images) AS i, "
                         "(SELECT COUNT(*) FROM predictions WHERE model_key = ?) AS p", (model_key,))[0]
        return row["e"], row["i"], row["p"]

    def changed_since(self, event_id: int) -> list[int]:
        """Ids of the images with an event after ``event_id`` (whose :meth:`state` may have changed since)."""
        return [r["image_id"] for r in self.query("SELECT DISTINCT image_id FROM events WHERE id > ?", (event_id,))]

    def labels(self, source: str = "current", dataset: str | Path | None = None) -> dict[str, str]:
        """``{key: label}`` of one data set (name or folder; may be left out when the store holds one): the current
        labels, or with ``source="llm"`` those before review (LLM or imported)."""
        column = "label" if source == "current" else "machine_label"
        rows = self.state(dataset=self._one_dataset(dataset))
        return {r["key"]: r[column] for r in rows if r[column] is not None}

    def stats(self, rows: list[dict] | None = None) -> dict:
        """Counts for the progress line: total, reviewed, accepted, corrected, left out (and why), per current
        label.

        ``rows``: :meth:`state` already read, if the caller has it.
        """
        rows = self.state() if rows is None else rows
        by_status = {s: sum(r["status"] == s for r in rows) for s in ("unreviewed", "accepted", "corrected",
                                                                      "left_out")}
        per_label = {}
        for r in rows:
            per_label[r["label"] or "unlabelled"] = per_label.get(r["label"] or "unlabelled", 0) + 1
        changed_from_llm = sum(1 for r in rows if r["human_label"] is not None and r["llm_label"] is not None
                               and r["human_label"] != r["llm_label"] and r["status"] != "left_out")
        reasons = [left_out(r["label"]) for r in rows if r["status"] == "left_out"]
        return {"total": len(rows), "reviewed": len(rows) - by_status["unreviewed"], **by_status,
                "left_out_reasons": {why: reasons.count(why) for why in REASONS if why in reasons},
                "per_label": per_label, "changed_from_llm": changed_from_llm,
                "llm_labelled": sum(r["llm_status"] is not None for r in rows)}

    # -- writes ------------------------------------------------------------------------------------------------

    def add_event(self, image_id, label, source, author=None, model=None, prompt_version=None, raw_reply=None,
                  status="ok", batch=None, con=None):
        """Append one label event (in its own transaction unless ``con`` is given); returns its id."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        sql = ("INSERT INTO events (image_id, label, source, author, model, prompt_version, raw_reply, status, "
               "batch, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        params = (image_id, label, source, author, model, prompt_version, raw_reply, status, batch, time.time())
        if con is not None:
            event = con.execute(sql, params).lastrowid
            _refresh(con, [image_id])
            return event
        with self.transaction() as c:
            return self.add_event(image_id, label, source, author, model, prompt_version, raw_reply, status, batch,
                                  con=c)

    def decide(self, image_id: int, label: str, author: str) -> int:
        """A reviewer's decision (a class id, ``"none"``, the current label to accept it, or ``"out: <reason>"``:
        :meth:`leave_out`); releases the lease."""
        if not (label in CLASSES or label == NONE or str(label).startswith(OTHER) or left_out(label) in REASONS):
            raise ValueError(f"not a label: {label!r}")
        with self.transaction() as con:
            event = self.add_event(image_id, label, "human", author=author, con=con)
            con.execute("DELETE FROM leases WHERE image_id = ?", (image_id,))
        return event

    def leave_out(self, image_id: int, reason: str, author: str) -> int:
        """A reviewer leaves the photo out (of scoring, training and the ImageFolder export) for ``reason``, one of
        :data:`REASONS`: a decision like any other, undone by :meth:`undo`."""
        if reason not in REASONS:
            raise ValueError(f"not a reason to leave a photo out: {reason!r} (one of {', '.join(REASONS)})")
        return self.decide(image_id, LEFT_OUT + reason, author)

    def accept_many(self, image_ids: list[int], author: str) -> str:
        """Accept the current labels of many images as one batch, which a single undo reverts; returns the batch."""
        batch = uuid.uuid4().hex
        current = {r["id"]: r["label"] for r in self.state(image_ids)}
        now, ids = time.time(), [i for i in image_ids if current.get(i) is not None]
        with self.transaction() as con:
            con.executemany("INSERT INTO events (image_id, label, source, author, batch, created_at) "
                            "VALUES (?, ?, 'human', ?, ?, ?)", [(i, current[i], author, batch, now) for i in ids])
            _refresh(con, ids)
        return batch

    def undo(self, author: str) -> list[int]:
        """Undo ``author``'s latest effective decision (a whole batch if it was one); returns the image ids."""
        with self.transaction() as con:
            last = con.execute(
                "SELECT id, image_id, batch FROM events e WHERE source = 'human' AND author = ? AND undoes IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id) ORDER BY id DESC LIMIT 1",
                (author,)).fetchone()
            if last is None:
                return []
            targets = con.execute(
                "SELECT id, image_id FROM events e WHERE batch = ? AND NOT EXISTS "
                "(SELECT 1 FROM events u WHERE u.undoes = e.id)", (last["batch"],)).fetchall() \
                if last["batch"] else [last]
            now = time.time()
            for t in targets:
                con.execute("INSERT INTO events (image_id, label, source, author, undoes, created_at) "
                            "VALUES (?, ?, 'human', ?, ?, ?)",
                            (t["image_id"], _label_before(con, t["image_id"], t["id"]), author, t["id"], now))
            _refresh(con, [t["image_id"] for t in targets])
        return [t["image_id"] for t in targets]

    # -- leases: two reviewers never get the same image -------------------------------------------------------

    def claim_next(self, candidates: list[int], holder: str, since: int | None,
                   ttl: float = LEASE_SECONDS) -> int | None:
        """Lease the first of ``candidates`` (image ids, in queue order) that nobody else holds; returns its id.

        ``since`` is the last event id (``version()[0]``, read before the queue was computed): an image with a
        human event after it is skipped, so a queue that went stale while another reviewer worked never hands out
        a decided image twice. Event ids, not times: a decision's time is taken before its transaction commits, so
        a queue read in between would miss it by time but never by id. The holder's own earlier leases are
        released; an expired lease counts as free.
        """
        now = time.time()
        with self.transaction() as con:
            con.execute("DELETE FROM leases WHERE holder = ? OR expires_at < ?", (holder, now))
            held = {r["image_id"] for r in con.execute("SELECT image_id FROM leases")}
            held |= {r["image_id"] for r in con.execute(
                "SELECT DISTINCT image_id FROM events WHERE source = 'human' AND id > ?", (since or 0,))}
            for image_id in candidates:
                if image_id not in held:
                    con.execute("INSERT INTO leases (image_id, holder, expires_at) VALUES (?, ?, ?)",
                                (image_id, holder, now + ttl))
                    return image_id
        return None

    def claim(self, image_id: int, holder: str, ttl: float = LEASE_SECONDS) -> bool:
        """Lease one given image (going back, or after an undo); False if another reviewer holds it."""
        now = time.time()
        with self.transaction() as con:
            other = con.execute("SELECT holder FROM leases WHERE image_id = ? AND holder != ? AND expires_at >= ?",
                                (image_id, holder, now)).fetchone()
            if other:
                return False
            con.execute("DELETE FROM leases WHERE holder = ?", (holder,))
            con.execute("INSERT OR REPLACE INTO leases (image_id, holder, expires_at) VALUES (?, ?, ?)",
                        (image_id, holder, now + ttl))
            return True

    def release_pages_of(self, reviewer: str) -> None:
        """Release the leases of ``reviewer``'s earlier pages (holders ``<reviewer>:<8 hex>``): a reloaded page is
        the same person, whose own top suspects must not wait for an abandoned tab's lease to expire."""
        prefix = f"{reviewer}:"
        with self.transaction() as con:
            con.execute("DELETE FROM leases WHERE substr(holder, 1, ?) = ? AND length(holder) = ?",
                        (len(prefix), prefix, len(prefix) + 8))

    # -- model predictions, cached per model -------------------------------------------------------------------

    def cached_prediction(self, model_key: str, image_id: int) -> list[float] | None:
        """One image's cached probabilities for a model, or None."""
        rows = self.query("SELECT probs FROM predictions WHERE model_key = ? AND image_id = ?", (model_key, image_id))
        return json.loads(rows[0]["probs"]) if rows else None

    def llm_answers(self) -> list[dict]:
        """Each image's latest LLM answer per LLM model and prompt version: ``image_id``, ``label`` (a class, none,
        or None when unusable), ``status``, ``model``, ``prompt_version``."""
        return self.query(
            "SELECT e.image_id, e.label, e.status, e.model, e.prompt_version FROM events e WHERE e.source = 'llm' "
            "AND e.id = (SELECT MAX(x.id) FROM events x WHERE x.image_id = e.image_id AND x.source = 'llm' "
            "AND x.model IS e.model AND x.prompt_version IS e.prompt_version)")

    def cached_predictions(self, model_key: str) -> dict[int, list[float]]:
        return {r["image_id"]: json.loads(r["probs"]) for r in
                self.query("SELECT image_id, probs FROM predictions WHERE model_key = ?", (model_key,))}

    def cache_predictions(self, model_key: str, probs_by_id: dict) -> None:
        with self.transaction() as con:
            con.executemany("INSERT OR REPLACE INTO predictions (image_id, model_key, probs) VALUES (?, ?, ?)",
                            [(i, model_key, json.dumps([round(float(p), 6) for p in probs]))
                             for i, probs in probs_by_id.items()])


def _label_before(con, image_id, event_id):
    """The label an image shows once ``event_id`` is undone (recorded in the undo event, for the history)."""
    effective = "undoes IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id)"
    row = con.execute(f"SELECT label FROM events e WHERE image_id = ? AND source = 'human' AND id < ? AND "
                      f"{effective} ORDER BY id DESC LIMIT 1", (image_id, event_id)).fetchone() or \
        con.execute(f"SELECT label FROM events e WHERE image_id = ? AND source IN ('llm', 'import') AND "
                    f"label IS NOT NULL AND {effective} ORDER BY id DESC LIMIT 1", (image_id,)).fetchone()
    return row["label"] if row else None


def _refresh(con, image_ids):
    """Recompute the ``current`` rows of ``image_ids`` (all images with None) from their events, inside the
    transaction that wrote them: the table is a cache of the history, never a second truth."""
    if image_ids is None:
        con.execute("DELETE FROM current")
        rows = con.execute(CURRENT_SQL.format(where=""))
    else:
        ids = json.dumps(sorted({int(i) for i in image_ids}))
        if ids == "[]":
            return
        con.execute(f"DELETE FROM current WHERE image_id {SOME}", {"ids": ids})
        rows = con.execute(CURRENT_SQL.format(where=f"AND e.image_id {SOME}"), {"ids": ids})
    con.executemany("INSERT INTO current (image_id, human_label, reviewer, machine_label, machine_source, "
                    "llm_label, llm_reply, llm_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows.fetchall())


def _last_ids(con) -> dict:
    """The highest id of each journaled table, at the start of a transaction."""
    return {t: con.execute(f"SELECT COALESCE(MAX(id), 0) FROM {t}").fetchone()[0] for t in ("datasets", "images",
                                                                                          "events")}


def _rows_since(con, before: dict) -> dict:
    """The rows a transaction added to the journaled tables (ids above ``before``), as dicts."""
    return {t: [dict(r) for r in con.execute(f"SELECT * FROM {t} WHERE id > ? ORDER BY id", (before[t],))]
            for t in before}


def _dataset(con, root, now):
    """The data set of folder ``root``, created on first import: ``(id, name)``. Named after the folder; a second
    folder of the same name (in another data root) gets ``name-2``, so both stay apart."""
    row = con.execute("SELECT id, name FROM datasets WHERE root = ?", (str(root),)).fetchone()
    if row:
        return row["id"], row["name"]
    base = root.name or "dataset"
    name, n = base, 1
    while con.execute("SELECT 1 FROM datasets WHERE name = ?", (name,)).fetchone():
        n += 1
        name = f"{base}-{n}"
    return con.execute("INSERT INTO datasets (name, root, added_at) VALUES (?, ?, ?)", (name, str(root), now)
                       ).lastrowid, name


def _migrate_global_keys(con):
    """Move a store whose image keys were global (one ``images.key`` for all folders) to data sets: one per
    folder imported, image ids (and so every event, lease and cached prediction) unchanged; one transaction."""
    con.execute("PRAGMA foreign_keys=OFF")  # the images table is rebuilt under the events that point at it
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute(DATASETS_TABLE)
        con.execute(IMAGES_TABLE.format(name="images_new"))
        now = time.time()
        for (root,) in con.execute("SELECT DISTINCT root FROM images ORDER BY id").fetchall():
            _dataset(con, Path(root), now)
        con.execute("INSERT INTO images_new (id, dataset_id, path, key, sha256, size, added_at) "
                    "SELECT i.id, d.id, i.path, i.key, i.sha256, i.size, i.added_at FROM images i "
                    "JOIN datasets d ON d.root = i.root")
        con.execute("DROP TABLE images")
        con.execute("ALTER TABLE images_new RENAME TO images")
        con.execute("DROP TABLE IF EXISTS current")  # rebuilt from the events on open
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("PRAGMA foreign_keys=ON")
