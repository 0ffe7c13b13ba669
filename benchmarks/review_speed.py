"""What a Review key press costs on a store the size of the original test set (8,150 images), two ways in one run;
what a full state read and an export cost as the store fills; how soon a fresh import opens for review.

    python benchmarks/review_speed.py [--images 8150] [--presses 20] [--sizes 8150:0,8150:8150,50000:20000]
                                      [--import-images 3000]

"now + journal" is "now" with ``PERSIST_DIR`` on a local folder: each decision also written there, as a new
fsynced file, before it is acknowledged (labeling/journal.py). "every press" reads the store's state, loads the
cached predictions and ranks the whole store at each key press, and reads the state again for the progress line (how
the tab worked before); "now" is the tab's own path, which reads and ranks again only when labels, images or the
model changed. Two key presses are timed: a decision (save it, open the next image with its progress line) and
"next" (browse on). The images are rows only (no files), their predictions random, already cached under the default
model: this times the queue, not the model.

"Store at scale" fills stores of N images with R of them reviewed (one LLM label each, one human decision for R)
and times a full state read and an export (results.json and the history CSV), with the state query the store used
before its ``current`` table ("before", only where it takes under a minute) beside it. "Fresh import" imports a
folder of real photos (copies of the Classify examples), starts a review at once (as the tab's Start does) and
reports when the first image showed and when the background predictions finished, against the classifier's own
speed on the same files.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from classifier.classes import CLASSES  # noqa: E402
from classifier.serving import ModelSlot  # noqa: E402
from labeling.review import WAIT, Review  # noqa: E402
from labeling.store import LabelStore, _refresh  # noqa: E402
from labeling.suspects import model_key, predict_store, rank  # noqa: E402
from settings import Settings  # noqa: E402
from studio.review_view import view  # noqa: E402

# The store's state query before the current table (window functions over all events, joined per image).
BEFORE_SQL = """
WITH eff AS (
    SELECT * FROM events e WHERE e.undoes IS NULL AND NOT EXISTS (SELECT 1 FROM events u WHERE u.undoes = e.id)),
human AS (SELECT image_id, label, author, id,
          ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY id DESC) AS rn FROM eff WHERE source = 'human'),
machine AS (SELECT image_id, label, source,
            ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY id DESC) AS rn
            FROM eff WHERE source IN ('llm', 'import') AND label IS NOT NULL),
llm AS (SELECT image_id, label, raw_reply, status,
        ROW_NUMBER() OVER (PARTITION BY image_id ORDER BY id DESC) AS rn FROM eff WHERE source = 'llm')
SELECT i.id, i.key, i.path, h.label AS human_label, h.author AS reviewer,
       m.label AS machine_label, m.source AS machine_source,
       l.label AS llm_label, l.raw_reply AS llm_reply, l.status AS llm_status
FROM images i
LEFT JOIN human h ON h.image_id = i.id AND h.rn = 1
LEFT JOIN machine m ON m.image_id = i.id AND m.rn = 1
LEFT JOIN llm l ON l.image_id = i.id AND l.rn = 1
"""

FILTERS = ("unreviewed", "all", "all", False, "suspicion")


class EveryPress(Review):
    """The tab as it was: the state read and the store ranked at every call."""

    def state(self):
        return self.store.state()

    def ranked(self, out_of_fold=False):  # the tab as it was had no out-of-fold ranking
        clf = self.slot.get()
        return rank(self.store.state(), predict_store(self.store, clf), clf.classes, clf.none_threshold)


def fill(store, n, reviewed=0, seed=0, model=None):
    """``n`` image rows (no files) with an LLM label each, the first ``reviewed`` decided by a person, written as
    the store writes events (its current table kept in the same transaction); random predictions for ``model``."""
    rng, now = random.Random(seed), time.time()
    with store.transaction() as con:
        con.execute("INSERT INTO datasets (name, root, added_at) VALUES ('bench', '/nowhere', ?)", (now,))
        con.executemany("INSERT INTO images (id, dataset_id, path, key, sha256, size, added_at) "
                        "VALUES (?, 1, ?, ?, '0', 1, ?)", [(i + 1, f"{i}.jpg", str(i), now) for i in range(n)])
        con.executemany("INSERT INTO events (image_id, label, source, author, raw_reply, created_at) "
                        "VALUES (?, ?, 'llm', 'glm', 'a reply', ?)", [(i + 1, rng.choice(CLASSES), now)
                                                                      for i in range(n)])
        con.executemany("INSERT INTO events (image_id, label, source, author, created_at) VALUES (?, ?, 'human', "
                        "'ann', ?)", [(i + 1, rng.choice(CLASSES), now) for i in range(reviewed)])
        _refresh(con, None)
    if model:
        probs = np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), n)
        store.cache_predictions(model, {i + 1: p for i, p in enumerate(probs)})


def time_presses(review, presses):
    """Median milliseconds of a decision key press and of a "next" key press."""
    session = {"reviewer": "bench", "holder": "bench:1", "history": [], "current": None}

    def show_next():  # as the tab's show_next: claim the next image, render it with the progress line
        image, queue = review.next_image(session, FILTERS)
        session["history"].append(image)
        session["current"] = image
        view(review, image, queue)

    def decide():
        review.store.decide(session["current"], "cat", "bench")
        show_next()

    show_next()
    out = {}
    for name, press in (("decision", decide), ("next", show_next)):
        times = []
        for _ in range(presses):
            start = time.perf_counter()
            press()
            times.append(time.perf_counter() - start)
        out[name] = 1000 * float(np.median(times))
    return out


def seconds(fn, repeat=3):
    """Best of ``repeat`` wall-clock times of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def store_at_scale(sizes):
    print("\nStore at scale: full state read and export, best of 3 (s)")
    print(f"{'images':>8s}{'reviewed':>10s}{'state now':>11s}{'export now':>12s}{'state before':>14s}")
    for n, reviewed in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = LabelStore(Path(tmp) / "labels.db")
            fill(store, n, reviewed)
            state = seconds(store.state)
            export = seconds(lambda s=store, t=tmp: (s.export_results(Path(t) / "r.json"),
                                                     s.export_history(Path(t) / "h.csv")))
            big = n * max(reviewed, 1) > 8150 * 8150  # minutes with the old query
            before = None if big else seconds(lambda s=store: s.query(BEFORE_SQL), 1)
            shown = f"{before:14.2f}" if before is not None else f"{'(skipped)':>14s}"
            print(f"{n:8d}{reviewed:10d}{state:11.3f}{export:12.3f}{shown}")


def fresh_import(slot, n):
    """Import ``n`` real photos, then start reviewing at once: when the first image shows, when predictions end."""
    import shutil

    examples = sorted((ROOT / "assets" / "examples").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "datasets" / "fresh"
        folder.mkdir(parents=True)
        files = []
        for i in range(n):
            files.append(folder / f"{i}.jpg")
            shutil.copy(examples[i % len(examples)], files[-1])
        settings = Settings(data_dir=Path(tmp) / "data")
        review = Review(settings, slot)
        start = time.perf_counter()
        review.store.import_folder(folder)
        imported = time.perf_counter() - start
        session = {"reviewer": "bench", "holder": "bench:1", "history": [], "current": None}
        start = time.perf_counter()
        review.predict_in_background(wait=WAIT)  # as the tab's Start
        image, queue = review.next_image(session, FILTERS)
        view(review, image, queue)
        opened = time.perf_counter() - start
        while review._predict_lock.locked():
            time.sleep(0.05)
        predicted = time.perf_counter() - start
        start = time.perf_counter()
        for _ in slot.get().predict_files([str(f) for f in files], 32):
            pass
        raw = time.perf_counter() - start
    print(f"\nFresh import of {n} photos: import {imported:.1f} s; the queue opened after {opened:.1f} s; "
          f"predictions in the background took {predicted:.1f} s ({n / predicted:.0f} images/s) against "
          f"{raw:.1f} s ({n / raw:.0f} images/s) for the classifier alone on the same files")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8150)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--sizes", default="8150:0,8150:2000,8150:8150,23000:8000,50000:20000",
                        help="images:reviewed pairs for the store-at-scale table")
    parser.add_argument("--import-images", type=int, default=3000)
    args = parser.parse_args()
    slot = ModelSlot(None)
    results = {}
    variants = (("every press", EveryPress, False), ("now", Review, False), ("now + journal", Review, True))
    for name, cls, journaled in variants:
        with tempfile.TemporaryDirectory() as tmp:
            # "now + journal": every decision also written to PERSIST_DIR (a local folder here) before it is kept
            settings = Settings(data_dir=Path(tmp), persist_dir=Path(tmp) / "bucket" if journaled else None)
            review = cls(settings, slot)
            fill(review.store, args.images, model=model_key(slot.get()))
            results[name] = time_presses(review, args.presses)
    print(f"Review key press on {args.images} images, median of {args.presses} (ms):")
    print(f"{'':14s}{'decision':>10s}{'next':>10s}")
    for name, r in results.items():
        print(f"{name:14s}{r['decision']:10.0f}{r['next']:10.0f}")
    before, now, kept = results["every press"], results["now"], results["now + journal"]
    print(f"{'speed-up':14s}{before['decision'] / now['decision']:9.1f}x{before['next'] / now['next']:9.1f}x")
    print(f"{'journal cost':14s}{kept['decision'] / now['decision']:9.2f}x{kept['next'] / now['next']:9.2f}x"
          "  (goal: at most 1.3x)")
    if args.sizes:
        store_at_scale([tuple(int(x) for x in pair.split(":")) for pair in args.sizes.split(",")])
    if args.import_images:
        fresh_import(slot, args.import_images)


if __name__ == "__main__":
    main()
