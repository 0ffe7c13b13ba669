"""The label store: SQLite, append-only label events, nothing ever overwritten.

Tables: ``images`` (key, folder, relative path, sha256, size), ``events`` (one row per label decision: label,
source llm/human/model/import, author, model name, prompt version, raw LLM reply, status, time; an undo is an event
naming the event it undoes), ``leases`` (which reviewer has which image open) and ``predictions`` (classifier
probabilities cached per model).

An image's current label is its latest effective human event, else its latest LLM or import label. An event is
effective unless an undo names it, so undoing an image's first decision returns it to unreviewed. Labels are class
ids, ``"none"`` (none of the 10) or ``"other: <name>"`` (an unknown name, kept verbatim for review).
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

from classifier.classes import CLASSES, NONE
from evaluation.labels import OTHER, folder_labels, match, read_labels
from evaluation.predict import list_images, natural_key, write_atomic

SOURCES = ("llm", "human", "model", "import")
LEASE_SECONDS = 120

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, root TEXT NOT NULL, path TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL REFERENCES images(id),
    label TEXT, source TEXT NOT NULL CHECK (source IN ('llm', 'human', 'model', 'import')),
    author TEXT, model TEXT, prompt_version TEXT, raw_reply TEXT, status TEXT NOT NULL DEFAULT 'ok',
    undoes INTEGER REFERENCES events(id), batch TEXT, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_image ON events(image_id, id);
CREATE INDEX IF NOT EXISTS events_undoes ON events(undoes);
CREATE TABLE IF NOT EXISTS leases (image_id INTEGER PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    image_id INTEGER NOT NULL, model_key TEXT NOT NULL, probs TEXT NOT NULL, PRIMARY KEY (image_id, model_key));
"""

# Per image: the latest effective human event, the latest LLM/import label, the latest LLM reply of any kind.
# {events} and {images} narrow it to some images (an undo is an event of the same image as the one it undoes).
STATE_SQL = """
WITH eff AS (
    SELECT * FROM events e WHERE e.undoes IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id)
    {events}),
human AS (SELECT image_id, label, author, id,
          ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY id DESC) AS rn FROM eff WHERE source = 'human'),
machine AS (SELECT image_id, label, source,
            ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY id DESC) AS rn
            FROM eff WHERE source IN ('llm', 'import') AND label IS NOT NULL),
llm AS (SELECT image_id, label, raw_reply, status,
        ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY id DESC) AS rn FROM eff WHERE source = 'llm')
SELECT i.id, i.key, i.root, i.path, h.label AS human_label, h.author AS reviewer,
       m.label AS machine_label, m.source AS machine_source,
       l.label AS llm_label, l.raw_reply AS llm_reply, l.status AS llm_status
FROM images i
LEFT JOIN human h ON h.image_id = i.id AND h.rn = 1
LEFT JOIN machine m ON m.image_id = i.id AND m.rn = 1
LEFT JOIN llm l ON l.image_id = i.id AND l.rn = 1
{images}
"""


class LabelStore:
    """A label database file; safe to use from many threads and processes at once."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(SCHEMA)

    # -- connections -------------------------------------------------------------------------------------------

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout=30000")
        con.execute("PRAGMA foreign_keys=ON")
        return contextlib.closing(con)

    @contextlib.contextmanager
    def transaction(self):
        """One write transaction (``BEGIN IMMEDIATE``): all of it is saved, or none of it."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def query(self, sql, params=()):
        with self._connect() as con:
            return [dict(r) for r in con.execute(sql, params)]

    # -- import / export ---------------------------------------------------------------------------------------

    def import_folder(self, images_dir, labels_path=None, author="import"):
        """Add the images under ``images_dir`` and their labels (a results.json, else class folders).

        The label file is read and checked before anything is written, and everything is written in one
        transaction. Re-importing the same folder adds nothing. Returns counts and the keys that did not match.
        """
        root = Path(images_dir).resolve()
        items = list_images(root)
        keys = [k for k, _ in items]
        if labels_path:
            labels, missing_images, unlabelled = match(keys, read_labels(labels_path))
        else:
            labels, missing_images = folder_labels(keys), []
            unlabelled = [k for k in keys if k not in labels]
        added = relabelled = 0
        now = time.time()
        with self.transaction() as con:
            for key, path in items:
                row = con.execute("SELECT id FROM images WHERE key = ?", (key,)).fetchone()
                if row is None:
                    data = Path(path).read_bytes()
                    cur = con.execute(
                        "INSERT INTO images (key, root, path, sha256, size, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (key, str(root), Path(path).relative_to(root).as_posix(), hashlib.sha256(data).hexdigest(),
                         len(data), now))
                    image_id, added = cur.lastrowid, added + 1
                else:
                    image_id = row["id"]
                if key in labels:
                    last = con.execute("SELECT label FROM events WHERE image_id = ? AND source = 'import' "
                                       "ORDER BY id DESC LIMIT 1", (image_id,)).fetchone()
                    if last is None or last["label"] != labels[key]:
                        con.execute("INSERT INTO events (image_id, label, source, author, created_at) "
                                    "VALUES (?, ?, 'import', ?, ?)", (image_id, labels[key], author, now))
                        relabelled += 1
        return {"images": len(items), "added": added, "labels_added": relabelled,
                "labels_without_image": missing_images, "images_without_label": unlabelled}

    def export_results(self, path):
        """Write current labels as a results.json in the original format ("null" for none); returns the dict."""
        out = {}
        for row in sorted(self.state(), key=lambda r: natural_key(r["key"])):
            label = row["label"]
            if label is not None:
                out[row["key"]] = "null" if label == NONE else label.removeprefix(OTHER)
        write_atomic(path, json.dumps(out, ensure_ascii=False, indent=1))
        return out

    def export_history(self, path):
        """Write every event, oldest first, as CSV (the full, append-only history)."""
        rows = self.query("SELECT e.id, i.key, e.label, e.source, e.author, e.model, e.prompt_version, e.status, "
                          "e.raw_reply, e.undoes, e.batch, e.created_at FROM events e JOIN images i "
                          "ON i.id = e.image_id ORDER BY e.id")
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "key", "label", "source", "author", "model",
                                                   "prompt_version", "status", "raw_reply", "undoes", "batch",
                                                   "created_at"])
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def backup(self, path):
        """A consistent copy of the database (SQLite's online backup), safe while others write."""
        with self._connect() as con, contextlib.closing(sqlite3.connect(path)) as out:
            con.backup(out)
        return path

    # -- state -------------------------------------------------------------------------------------------------

    def state(self, image_ids=None):
        """Every image (or those in ``image_ids``) with its current label, review status and LLM reply."""
        if image_ids is None:
            rows = self.query(STATE_SQL.format(events="", images=""))
        else:  # the ids as one JSON parameter: no limit on how many; only their events are read
            some = "IN (SELECT value FROM json_each(:ids))"
            rows = self.query(STATE_SQL.format(events=f"AND e.image_id {some}", images=f"WHERE i.id {some}"),
                              {"ids": json.dumps([int(i) for i in image_ids])})
        for r in rows:
            r["label"] = r["human_label"] if r["human_label"] is not None else r["machine_label"]
            r["source"] = "human" if r["human_label"] is not None else r["machine_source"]
            r["status"] = ("unreviewed" if r["human_label"] is None else
                           "accepted" if r["human_label"] == r["machine_label"] else "corrected")
            r["file"] = str(Path(r["root"]) / r["path"])
        return rows

    def version(self, model_key=None):
        """What :meth:`state` (and a ranking by ``model_key``'s cached predictions) depends on: the last event, the
        number of images (and of predictions cached for the model). Equal versions, equal results."""
        row = self.query("SELECT (SELECT MAX(id) FROM events) AS e, (SELECT COUNT(*) FROM images) AS i, "
                         "(SELECT COUNT(*) FROM predictions WHERE model_key = ?) AS p", (model_key,))[0]
        return row["e"], row["i"], row["p"]

    def changed_since(self, event_id):
        """Ids of the images with an event after ``event_id`` (whose :meth:`state` may have changed since)."""
        return [r["image_id"] for r in self.query("SELECT DISTINCT image_id FROM events WHERE id > ?", (event_id,))]

    def labels(self, source="current"):
        """``{key: label}``: the current labels, or with ``source="llm"`` those before review (LLM or imported)."""
        column = "label" if source == "current" else "machine_label"
        return {r["key"]: r[column] for r in self.state() if r[column] is not None}

    def stats(self, rows=None):
        """Counts for the progress line: total, reviewed, accepted, corrected, per current label.

        ``rows``: :meth:`state` already read, if the caller has it.
        """
        rows = self.state() if rows is None else rows
        by_status = {s: sum(r["status"] == s for r in rows) for s in ("unreviewed", "accepted", "corrected")}
        per_label = {}
        for r in rows:
            per_label[r["label"] or "unlabelled"] = per_label.get(r["label"] or "unlabelled", 0) + 1
        changed_from_llm = sum(1 for r in rows if r["human_label"] is not None and r["llm_label"] is not None
                               and r["human_label"] != r["llm_label"])
        return {"total": len(rows), "reviewed": by_status["accepted"] + by_status["corrected"], **by_status,
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
            return con.execute(sql, params).lastrowid
        with self.transaction() as c:
            return c.execute(sql, params).lastrowid

    def decide(self, image_id, label, author):
        """A reviewer's decision (a class id, ``"none"``, or the current label to accept it); releases the lease."""
        if not (label in CLASSES or label == NONE or str(label).startswith(OTHER)):
            raise ValueError(f"not a label: {label!r}")
        with self.transaction() as con:
            event = self.add_event(image_id, label, "human", author=author, con=con)
            con.execute("DELETE FROM leases WHERE image_id = ?", (image_id,))
        return event

    def accept_many(self, image_ids, author):
        """Accept the current labels of many images as one batch, which a single undo reverts; returns the batch."""
        batch = uuid.uuid4().hex
        current = {r["id"]: r["label"] for r in self.state(image_ids)}
        with self.transaction() as con:
            for image_id in image_ids:
                if current.get(image_id) is not None:
                    self.add_event(image_id, current[image_id], "human", author=author, batch=batch, con=con)
        return batch

    def undo(self, author):
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
        return [t["image_id"] for t in targets]

    # -- leases: two reviewers never get the same image -------------------------------------------------------

    def claim_next(self, candidates, holder, since, ttl=LEASE_SECONDS):
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

    def claim(self, image_id, holder, ttl=LEASE_SECONDS):
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

    # -- model predictions, cached per model -------------------------------------------------------------------

    def cached_prediction(self, model_key, image_id):
        """One image's cached probabilities for a model, or None."""
        rows = self.query("SELECT probs FROM predictions WHERE model_key = ? AND image_id = ?", (model_key, image_id))
        return json.loads(rows[0]["probs"]) if rows else None

    def cached_predictions(self, model_key):
        return {r["image_id"]: json.loads(r["probs"]) for r in
                self.query("SELECT image_id, probs FROM predictions WHERE model_key = ?", (model_key,))}

    def cache_predictions(self, model_key, probs_by_id):
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
