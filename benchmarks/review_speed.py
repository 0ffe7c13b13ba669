"""What a Review key press costs on a store the size of the original test set (8,150 images), two ways in one run.

    python benchmarks/review_speed.py [--images 8150] [--presses 20]

"every press" reads the store's state, loads the cached predictions and ranks the whole store at each key press,
and reads the state again for the progress line (how the tab worked before); "now" is the tab's own path, which
reads and ranks again only when labels, images or the model changed. Two key presses are timed: a decision (save
it, open the next image with its progress line) and "next" (browse on). The images are rows only (no files), their
predictions random, already cached under the default model: this times the queue, not the model.
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
from labeling.suspects import model_key, predict_store, rank  # noqa: E402
from labeling.tab import Review  # noqa: E402
from settings import Settings  # noqa: E402

FILTERS = ("unreviewed", "all", "all", False, "suspicion")


class EveryPress(Review):
    """The tab as it was: the state read and the store ranked at every call."""

    def state(self):
        return self.store.state()

    def ranked(self):
        clf = self.slot.get()
        return rank(self.store.state(), predict_store(self.store, clf), clf.classes)


def fill(review, n, seed=0):
    rng, now = random.Random(seed), time.time()
    with review.store.transaction() as con:
        for i in range(n):
            con.execute("INSERT INTO images (key, root, path, sha256, size, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (str(i), "/nowhere", f"{i}.jpg", "0", 1, now))
            con.execute("INSERT INTO events (image_id, label, source, created_at) VALUES (?, ?, 'llm', ?)",
                        (i + 1, rng.choice(CLASSES), now))
    probs = np.random.default_rng(seed).dirichlet(np.ones(len(CLASSES)), n)
    review.store.cache_predictions(model_key(review.slot.get()), {i + 1: p for i, p in enumerate(probs)})


def time_presses(review, presses):
    """Median milliseconds of a decision key press and of a "next" key press."""
    session = {"reviewer": "bench", "holder": "bench:1", "history": [], "current": None}

    def show_next():  # as the tab's show_next: claim the next image, render it with the progress line
        image, queue = review.next_image(session, FILTERS)
        session["history"].append(image)
        session["current"] = image
        review.view(image, queue)

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8150)
    parser.add_argument("--presses", type=int, default=20)
    args = parser.parse_args()
    slot = ModelSlot(None)
    results = {}
    for name, cls in (("every press", EveryPress), ("now", Review)):
        with tempfile.TemporaryDirectory() as tmp:
            review = cls(Settings(data_dir=Path(tmp)), slot)
            fill(review, args.images)
            results[name] = time_presses(review, args.presses)
    print(f"Review key press on {args.images} images, median of {args.presses} (ms):")
    print(f"{'':14s}{'decision':>10s}{'next':>10s}")
    for name, r in results.items():
        print(f"{name:14s}{r['decision']:10.0f}{r['next']:10.0f}")
    before, now = results["every press"], results["now"]
    print(f"{'speed-up':14s}{before['decision'] / now['decision']:9.1f}x{before['next'] / now['next']:9.1f}x")


if __name__ == "__main__":
    main()
