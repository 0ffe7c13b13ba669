"""Training speed on this machine, side by side in one run.

    python benchmarks/training_speed.py [--data ../shared/data/animals] [--n 256] [--epochs 10]

1. Phase 1 with cached backbone features (computed once, then the head trains on them) against running the frozen
   backbone on every image every epoch (what a plain ``fit`` on images does), same images, same epochs.
2. Phase-2 fine-tuning throughput (images/s, augmentation and decode included) with the last 3 blocks unfrozen.
"""

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from classifier.classes import CLASSES  # noqa: E402
from classifier.model import backbone_of, build_classifier  # noqa: E402
from training.augment import Augmenter  # noqa: E402
from training.data import discover  # noqa: E402
from training.dataset import image_dataset  # noqa: E402
from training.finetune import compile_for, unfreeze_last_blocks  # noqa: E402
from training.head import extract_features  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=20, help="head epochs (phase 1 early-stops after 15-30 here)")
    args = ap.parse_args()
    items = random.Random(0).sample(discover([args.data]), args.n)
    paths = [it["path"] for it in items]
    y = np.array([CLASSES.index(it["label"]) for it in items])

    model = build_classifier()
    head = model.get_layer("head")
    t = time.perf_counter()
    feats, _, _ = extract_features(model, paths)
    extract = time.perf_counter() - t
    compile_for(head, 1e-3)
    t = time.perf_counter()
    head.fit(feats, y, epochs=args.epochs, batch_size=32, verbose=0)
    cached = extract + (time.perf_counter() - t)

    plain = build_classifier()
    backbone_of(plain).trainable = False
    compile_for(plain, 1e-3)
    ds = image_dataset(paths, y, 224, 32)
    t = time.perf_counter()
    plain.fit(ds, epochs=args.epochs, verbose=0)
    uncached = time.perf_counter() - t

    tuned = build_classifier()
    unfreeze_last_blocks(tuned, 3)
    compile_for(tuned, 1e-5)
    train = image_dataset(paths, y, 224, 32, Augmenter(), shuffle=True)
    tuned.fit(train.take(1), epochs=1, verbose=0)  # trace once
    t = time.perf_counter()
    tuned.fit(train, epochs=1, verbose=0)
    phase2 = len(paths) / (time.perf_counter() - t)

    print(f"\n{args.n} shared photos, {args.epochs} head epochs, CPU cores: {os.cpu_count()}\n")
    print("| phase 1 | seconds | of which backbone features | speed-up |")
    print("|---|---|---|---|")
    print(f"| cached features (ours) | {cached:.1f} | {extract:.1f} (once) | {uncached / cached:.1f}x |")
    print(f"| frozen backbone run every epoch | {uncached:.1f} | every epoch | 1.0x |")
    per_epoch = (cached - extract) / args.epochs
    print(f"\nper epoch after the features exist: {per_epoch:.2f} s cached against {uncached / args.epochs:.2f} s "
          f"({uncached / args.epochs / per_epoch:.0f}x)")
    print(f"\nphase 2 (last 3 blocks, augmentation on): {phase2:.1f} images/s")


if __name__ == "__main__":
    main()
