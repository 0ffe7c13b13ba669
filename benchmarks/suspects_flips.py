"""How well "suspects first" finds wrong labels: flip labels of held-out photos, import, rank, count.

    python benchmarks/suspects_flips.py [--data ../shared/data/animals] [--split assets/model/split.csv]

Uses the default model's held-out test photos (it never trained on them). For each seed, about 10% of the labels
are made wrong the way an LLM gets them wrong: cat<->dog, sheep<->cow, some to "null" (none of the 10), a few to a
random other class. The flipped results.json is imported into a fresh label store, the images are ranked, and the
script prints which share of the flipped images land in the first 1.5 x (number of flips) of the queue.
Goal: >= 90%.
"""

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.classes import CLASSES  # noqa: E402
from classifier.predictor import Classifier  # noqa: E402
from labeling.store import LabelStore  # noqa: E402
from labeling.suspects import predict_store, rank  # noqa: E402
from training.data import discover, read_split  # noqa: E402

SWAP = {"cat": "dog", "dog": "cat", "sheep": "cow", "cow": "sheep"}


def flip(items, share, rng):
    """Return {key: wrong label} for about ``share`` of the items, LLM-style."""
    n = round(share * len(items))
    swappable = [it for it in items if it["label"] in SWAP]
    rng.shuffle(swappable)
    chosen = swappable[: int(n * 0.6)]
    rest = [it for it in items if it not in chosen]
    rng.shuffle(rest)
    chosen_ids = {id(it) for it in chosen}
    flips = {it["key"]: SWAP[it["label"]] for it in chosen}
    for i, it in enumerate(rest[: n - len(chosen)]):
        flips[it["key"]] = "null" if i % 2 == 0 else rng.choice([c for c in CLASSES if c != it["label"]])
        chosen_ids.add(id(it))
    return flips


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--split", default=str(ROOT / "assets" / "model" / "split.csv"))
    ap.add_argument("--share", type=float, default=0.10)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    split = read_split(args.split)
    items = [it for it in discover([args.data]) if split.get(it["key"]) == "test"]
    clf = Classifier.load()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "testdata"
        images.mkdir()
        for i, it in enumerate(items):
            it["key"] = str(i)  # the original flat testdata/<n>.jpg layout
            os.symlink(os.path.abspath(it["path"]), images / f"{i}{Path(it['path']).suffix}")
        for seed in range(args.seeds):
            rng = random.Random(seed)
            flips = flip(items, args.share, rng)
            labels = {it["key"]: flips.get(it["key"], it["label"]) for it in items}
            (Path(tmp) / "results.json").write_text(json.dumps(labels))
            store = LabelStore(Path(tmp) / f"labels-{seed}.db")
            store.import_folder(images, Path(tmp) / "results.json")
            ranked = rank(store.state(), predict_store(store, clf), clf.classes)
            top = {r["key"] for r in ranked[: int(1.5 * len(flips))]}
            found = sum(k in top for k in flips)
            rows_out.append((seed, len(items), len(flips), found, found / len(flips)))
    print(f"\nmodel: {clf.name}; photos: {len(items)} held-out test photos of {args.data}\n")
    print("| seed | photos | flipped | flipped within the first 1.5 x flips | share |")
    print("|---|---|---|---|---|")
    for seed, n, f, found, share in rows_out:
        print(f"| {seed} | {n} | {f} | {found} | {share:.1%} |")
    mean = sum(r[4] for r in rows_out) / len(rows_out)
    print(f"\nmean share {mean:.1%} (goal >= 90%)")


if __name__ == "__main__":
    main()
