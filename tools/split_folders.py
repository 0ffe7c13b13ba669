"""Link the photos of one split (e.g. the default model's held-out test set) into class folders.

    python tools/split_folders.py --data ../shared/data/animals --split assets/model/split.csv --which test \\
        --out data/datasets/animals-test

The result is what ``python -m evaluation run/calibrate --images`` and the Evaluate tab take.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.data import discover, read_keys, read_split  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--which", default="test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--exclude", help="photos to leave out (as python -m training --exclude)")
    args = ap.parse_args()
    split = read_split(args.split)
    skip = read_keys(args.exclude) if args.exclude else set()
    n = 0
    for item in discover([args.data]):
        if split.get(item["key"]) == args.which and item["key"] not in skip:
            target = Path(args.out) / item["label"] / item["key"].replace("/", "__")
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.symlink(os.path.abspath(item["path"]), target)
            n += 1
    print(f"{n} {args.which} photos linked under {args.out}")


if __name__ == "__main__":
    main()
