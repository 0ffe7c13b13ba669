"""``python -m training``: train the classifier's head on cached backbone features and save the model.

Example (how the default model in assets/ was made):

    python -m training --data ../shared/data/animals --split assets/model/split.csv --out runs/default \\
        --compact assets/model/default.npz
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm
from sklearn.metrics import accuracy_score, classification_report, recall_score

from classifier.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.classes import CLASSES
from classifier.model import build_classifier, save_compact
from training.data import discover, read_split, stratified_split, write_split
from training.head import class_weights, extract_features, train_head

UNSEEN_SOURCES = ("imagenet_sample",)  # may be in the backbone's ImageNet training data: never held out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True,
                   help="folder of class folders, or of sources holding class folders (repeatable)")
    p.add_argument("--out", required=True, help="run folder to write model.keras, report.json, split.csv into")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=BACKBONES, help="default: %(default)s")
    p.add_argument("--epochs-head", type=int, default=60, help="max epochs of the head (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    p.add_argument("--split", help="CSV (path,split) pinning photos to train/val/test; default: a new "
                                   "stratified split, written to the run folder")
    p.add_argument("--val-split", type=float, default=0.1, help="validation share without --split "
                                                                "(default: %(default)s)")
    p.add_argument("--test-split", type=float, default=0.2, help="test share without --split "
                                                                 "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--compact", help="also save the model in compact .npz form here (e.g. assets/model/default.npz)")
    p.add_argument("--name", default=None, help="model name shown in the app (default: run folder name)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = discover(args.data)
    if args.split:
        split = read_split(args.split)
        missing = [it["key"] for it in items if it["key"] not in split]
        if missing:
            sys.exit(f"{len(missing)} photos are not in {args.split}, e.g. {missing[0]}")
    else:
        fractions = {"train": 1 - args.val_split - args.test_split, "val": args.val_split, "test": args.test_split}
        split = stratified_split(items, fractions, args.seed, exclude_sources=UNSEEN_SOURCES)
    write_split({it["key"]: split[it["key"]] for it in items}, out / "split.csv")

    model = build_classifier(args.backbone)
    t0 = time.time()
    with tqdm(total=len(items), desc="backbone features", unit="img") as bar:
        feats, ok, errors = extract_features(model, [it["path"] for it in items],
                                             progress=lambda i, n: bar.update(1))
    print(f"backbone features for {ok.sum()} photos in {time.time() - t0:.0f} s; {len(errors)} unreadable")
    for path, err in errors:
        print(f"skipped {path}: {err}", file=sys.stderr)
    kept = [it for it, good in zip(items, ok) if good]
    y = np.array([CLASSES.index(it["label"]) for it in kept])
    part = np.array([split[it["key"]] for it in kept])

    head = model.get_layer("head")
    tr, va, te = (part == "train"), (part == "val"), (part == "test")
    weights = class_weights(y[tr])
    history = train_head(head, feats[tr], y[tr], feats[va], y[va], epochs=args.epochs_head,
                         batch_size=args.batch_size, class_weight=weights, seed=args.seed)

    pred = head.predict(feats[te], verbose=0).argmax(1)
    report = {
        "test_images": int(te.sum()), "accuracy": float(accuracy_score(y[te], pred)),
        "per_class_recall": dict(zip(CLASSES, map(float, recall_score(y[te], pred, labels=range(10),
                                                                      average=None, zero_division=0)))),
        "counts": {s: int((part == s).sum()) for s in ("train", "val", "test")},
        "unreadable": [p for p, _ in errors], "epochs": len(history.history["loss"]),
        "class_weight": {CLASSES[k]: v for k, v in weights.items()},
    }
    text = classification_report(y[te], pred, labels=range(10), target_names=CLASSES, digits=3, zero_division=0)
    print(text)
    (out / "classification_report.txt").write_text(text)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    meta = {"name": args.name or out.name, "backbone": args.backbone, "classes": list(CLASSES),
            "accuracy": report["accuracy"], "per_class_recall": report["per_class_recall"],
            "test_images": report["test_images"], "data": args.data, "phase": "head on cached features"}
    model.save(out / "model.keras")
    (out / "model.json").write_text(json.dumps(meta, indent=2))
    if args.compact:
        stored = save_compact(model, args.compact, meta)
        print(f"compact model: {args.compact} ({Path(args.compact).stat().st_size / 1e6:.1f} MB, "
              f"{len(stored)} arrays)")
    print(f"test accuracy {report['accuracy']:.3f} on {report['test_images']} held-out photos; run in {out}")


if __name__ == "__main__":
    main()
