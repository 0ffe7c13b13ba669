"""Training speed on this machine, side by side in one run.

    python benchmarks/training_speed.py [--data ../shared/data/animals] [--n 256] [--epochs 10]
    python benchmarks/training_speed.py --whole-run [--per-class 40] [--none-photos 200]

``--whole-run``: the default model's recipe from start to end (``python -m training``, evaluation included), before
and after: the fine-tuned Lite2 at 260 px that was the default (head on cached features, then 6 blocks fine-tuned,
outlier exposure) against the linear probe of the frozen Lite2 at 384 px that is the default now (features computed
once, no phase 2), with and without its mirror view (each photo's mirror image: a second backbone pass), on the same
photos (``--per-class`` a class across the sources, plus none photos), the same split;
whole-run seconds and the validation photos' balanced accuracy with its interval, side by side.

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

RECIPES = {  # the default model's recipe, before and after (python -m training flags)
    "fine-tuned Lite2, 260 px (the default before)": [
        "--backbone", "efficientnet_lite2", "--unfreeze-blocks", "6", "--lr-finetune", "5e-5",
        "--epochs-finetune", "8"],
    "linear probe, Lite2 at 384 px, without the mirror view": [
        "--backbone", "efficientnet_lite2", "--size", "384", "--head", "linear", "--views", "0", "--no-mirror"],
    "linear probe, Lite2 at 384 px, each photo also mirrored (the default now)": [
        "--backbone", "efficientnet_lite2", "--size", "384", "--head", "linear", "--views", "0"],
}


def subset(data, none, per_class, none_photos, out, seed=0):
    """Links to ``per_class`` photos of each class (across the sources) and ``none_photos`` none photos (across the
    categories) under ``out``: the same photos for every recipe."""
    import shutil

    rng = random.Random(seed)
    shutil.rmtree(out, ignore_errors=True)
    everything = discover([data])
    for c in CLASSES:
        items = [it for it in everything if it["label"] == c]
        for it in rng.sample(items, min(per_class, len(items))):
            link = Path(out) / "animals" / c / it["key"].replace("/", "_")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(Path(it["path"]).resolve())
    nones = sorted(p for p in Path(none).rglob("*") if p.is_file())
    for p in rng.sample(nones, min(none_photos, len(nones))):
        link = Path(out) / "none" / "all" / p.parent.name / p.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(p.resolve())
    return Path(out) / "animals", Path(out) / "none"


def whole_runs(args):
    """Each recipe's whole run on the same subset: seconds, and the validation photos' balanced accuracy."""
    import json
    import subprocess
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="training-speed-"))
    animals, none = subset(args.data, args.none, args.per_class, args.none_photos, work / "data")
    rows = []
    for name, flags in RECIPES.items():
        run = work / f"run-{len(rows)}"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "training", "--data", str(animals), "--none", str(none), "--out",
                        str(run), *flags], cwd=ROOT, check=True, capture_output=True)
        seconds = time.perf_counter() - t
        report = json.loads((run / "eval" / "val" / "report.json").read_text())
        rows.append((name, seconds, report))
        print(f"{name}: {seconds:.0f} s", flush=True)
    before = rows[0][1]
    n = rows[0][2]["n_scored"]
    print(f"\nthe whole run (python -m training, evaluation included), {args.per_class} photos a class and "
          f"{args.none_photos} none photos, the same split ({n} validation photos); CPU cores: {os.cpu_count()}\n")
    print("| recipe | whole run, s | against before | validation balanced accuracy (95% CI) |\n|---|---|---|---|")
    for name, seconds, r in rows:
        ci = r["balanced_accuracy_ci95"]
        print(f"| {name} | {seconds:.0f} | {seconds / before:.2f}x | {r['balanced_accuracy']:.3f} "
              f"({ci[0]:.3f}-{ci[1]:.3f}) |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--none", default=str(ROOT.parent / "shared" / "data" / "none"))
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=20, help="head epochs (phase 1 early-stops after 15-30 here)")
    ap.add_argument("--whole-run", action="store_true", help="the default recipe's whole run, before and after")
    ap.add_argument("--per-class", type=int, default=40)
    ap.add_argument("--none-photos", type=int, default=200)
    args = ap.parse_args()
    if args.whole_run:
        return whole_runs(args)
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
