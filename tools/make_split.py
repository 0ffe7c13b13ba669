"""Pin the default model's split so its test photos are Animals-10's own (what users upload).

    python tools/make_split.py [--animals ../shared/data/animals] [--none ../shared/data/none]
                               [--out assets/model/split-a10.csv] [--seed 0]

- ``baidu140388_test_sample`` (Animals-10 itself): per class, half test, a fifth validation, the rest train, so
  validation (which chooses among runs) holds Animals-10 photos too;
- every other animal source: a tenth validation, the rest train (``imagenet_sample`` all train: the ImageNet
  backbone may have seen it);
- ``none/`` photos of none of the ten, split **by category** (a folder; in ``imagenet_sample`` each file is its own
  ImageNet class): a seeded draw of about 30% of the categories is test only, so the test holds kinds of things
  no model saw in training; 10% validation, the rest train. Their keys start with ``none/``.

Keys are paths relative to the data folder, as ``python -m training --split`` reads them. Stratified by class
(by category for none) with :func:`training.data.stratified_split` and :func:`training.data.category_split`.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.data import category_split, discover, discover_none, stratified_split, write_split  # noqa: E402

ANIMALS10 = "baidu140388_test_sample"
SEEN_BY_BACKBONE = ("imagenet_sample",)


def animal_split(items, seed):
    """``{key: split}`` for the animal photos: Animals-10's own half test, the rest train/val."""
    own = [it for it in items if it["source"] == ANIMALS10]
    other = [it for it in items if it["source"] != ANIMALS10]
    split = stratified_split(own, {"test": 0.5, "val": 0.2, "train": 0.3}, seed)
    split.update(stratified_split(other, {"train": 0.9, "val": 0.1}, seed, exclude_sources=SEEN_BY_BACKBONE))
    return split


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--animals", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--none", default=str(ROOT.parent / "shared" / "data" / "none"))
    ap.add_argument("--out", default=str(ROOT / "assets" / "model" / "split-a10.csv"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    split = animal_split(discover([args.animals]), args.seed)
    split.update(category_split(discover_none([args.none]), {"test": 0.3, "val": 0.1, "train": 0.6}, args.seed))
    write_split(split, args.out)
    counts = {}
    for key, name in split.items():
        group = "none" if key.startswith("none/") else "Animals-10" if key.startswith(ANIMALS10) else "other"
        counts.setdefault(group, {}).setdefault(name, 0)
        counts[group][name] += 1
    print(f"{len(split)} photos -> {args.out}: {counts}")


if __name__ == "__main__":
    main()
