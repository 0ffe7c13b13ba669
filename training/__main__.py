"""``python -m training``: the two-phase training pipeline.

Phase 1 trains the dense head on backbone features computed once (clean photos plus augmented views); phase 2
unfreezes the last K backbone blocks (BatchNorm frozen), recompiles and fine-tunes at a low learning rate on
augmented photos. A GPU is used when present (mixed float16, XLA). Everything goes into the run folder.

Example (the default model in assets/):

    python -m training --data ../shared/data/animals --split assets/model/split.csv \\
        --exclude assets/model/exclude.txt --out runs/default --compact assets/model/default.npz \\
        --compact-dtype float16
"""

import argparse
import json
import sys

from classifier.backbones import BACKBONES, DEFAULT_BACKBONE


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", action="append", required=True,
                   help="folder of class folders (English, Italian or Chinese names), or of sources holding class "
                        "folders, as shared/data/animals/<source>/<class>/; repeatable")
    p.add_argument("--out", required=True, help="run folder (created)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=BACKBONES, help="default: %(default)s")
    p.add_argument("--epochs-head", type=int, default=40, help="phase-1 epochs at most (default: %(default)s)")
    p.add_argument("--epochs-finetune", type=int, default=6, help="phase-2 epochs at most; 0 skips phase 2 "
                                                                  "(default: %(default)s)")
    p.add_argument("--unfreeze-blocks", type=int, default=3, help="backbone blocks fine-tuned in phase 2 "
                                                                  "(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    p.add_argument("--lr-head", type=float, default=1e-3, help="phase-1 learning rate (default: %(default)s)")
    p.add_argument("--lr-finetune", type=float, default=1e-5, help="phase-2 learning rate (default: %(default)s)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--val-split", type=float, default=0.15,
                       help="validation share of a new stratified split (default: %(default)s)")
    group.add_argument("--val", help="a separate folder of validation photos")
    p.add_argument("--split", help="CSV (path,split) pinning each photo to train/val/test across runs")
    p.add_argument("--exclude", help="photos never used (known-wrong labels): one path per line, or a CSV with a "
                                     "path column; paths relative to their data folder")
    p.add_argument("--test", help="a test folder, evaluated at the end into eval/test/")
    p.add_argument("--labels", help="results.json for --test (default: its class folders)")
    p.add_argument("--class-weight", choices=("balanced", "none"), default="balanced", help="default: %(default)s")
    p.add_argument("--class-multiplier", action="append", default=[], metavar="CLASS=X",
                   help="multiply a class's weight, e.g. cat=2 as the original did (repeatable)")
    p.add_argument("--views", type=int, default=2, help="augmented views per photo cached for phase 1 "
                                                        "(default: %(default)s)")
    p.add_argument("--no-augment", action="store_true", help="no augmentation at all")
    p.add_argument("--policies", help="JSON file overriding the augmentation policies class by class, e.g. "
                                      "{\"sheep\": {\"crop_scale\": [0.35, 1.0]}}; left-out keys keep the built-in "
                                      "values (built in: stronger for cat and dog; see training/augment.py)")
    p.add_argument("--teacher", action="append", default=[], metavar="MODEL",
                   help="distil both phases from this model (.keras or .npz, e.g. an earlier run's model.keras); "
                        "repeat for an ensemble, whose mean probabilities are used")
    p.add_argument("--distill-alpha", type=float, default=0.7,
                   help="with --teacher: weight of the teachers' probabilities in the targets, the rest is the "
                        "label (default: %(default)s)")
    p.add_argument("--strategy", choices=("auto", "mirrored", "multiworker"), default="auto",
                   help="tf.distribute: mirrored = all GPUs of this machine; multiworker = the machines in "
                        "TF_CONFIG (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--name", help="model name shown in the app (default: the run folder's name)")
    p.add_argument("--compact", help="also save the model in compact .npz form (as assets/model/default.npz)")
    p.add_argument("--compact-dtype", choices=("float32", "float16"), default="float32",
                   help="float16 halves the compact file (fine-tuned blocks); default: %(default)s")
    return p.parse_args(argv)


def config_from(args):
    """The run's settings from the parsed flags; raises ``ValueError`` for a value no run could use."""
    from classifier.classes import CLASSES, to_class_id
    from training.augment import DEFAULT_POLICIES, load_policies
    from training.limits import LIMITS, check_counts

    if not 0 <= args.distill_alpha <= 1:
        raise ValueError(f"--distill-alpha must be between 0 and 1, not {args.distill_alpha}")
    if not 0 < args.val_split < 1:
        raise ValueError(f"--val-split must be between 0 and 1, not {args.val_split}")
    check_counts(**{flag: getattr(args, flag) for flag in LIMITS})
    if args.batch_size < 1 or args.lr_head <= 0 or args.lr_finetune <= 0:
        raise ValueError("--batch-size and the learning rates must be positive")
    multipliers = {}
    for item in args.class_multiplier:
        name, _, factor = item.partition("=")
        try:
            factor = float(factor)
        except ValueError:
            factor = 0
        if to_class_id(name) not in CLASSES or not factor > 0:
            raise ValueError(f"--class-multiplier {item}: expected CLASS=X with one of the 10 classes and X > 0, "
                             "e.g. cat=2")
        multipliers[to_class_id(name)] = factor
    return {"data": args.data, "out": args.out, "backbone": args.backbone, "epochs_head": args.epochs_head,
            "epochs_finetune": args.epochs_finetune, "unfreeze_blocks": args.unfreeze_blocks,
            "batch_size": args.batch_size, "lr_head": args.lr_head, "lr_finetune": args.lr_finetune,
            "val_split": args.val_split, "val": args.val, "split": args.split, "exclude": args.exclude,
            "test": args.test, "labels": args.labels, "class_weight": args.class_weight,
            "class_multipliers": multipliers, "views": 0 if args.no_augment else args.views,
            "augment": not args.no_augment,
            "policies": load_policies(args.policies) if args.policies else DEFAULT_POLICIES,
            "teachers": args.teacher, "distill_alpha": args.distill_alpha, "strategy": args.strategy,
            "seed": args.seed, "name": args.name}


def main(argv=None):
    args = parse_args(argv)
    from training.pipeline import run

    try:
        run_dir = run(config_from(args))
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    status = json.loads((run_dir / "status.json").read_text())
    if status["state"] == "done" and args.compact:
        from classifier.model import load_model, save_compact

        model, meta = load_model(run_dir / "model.keras")
        stored = save_compact(model, args.compact, meta, dtype=args.compact_dtype)
        print(f"compact model: {args.compact} ({len(stored)} arrays)")
    print(f"run {status['state']}: {run_dir}")
    sys.exit(0 if status["state"] in ("done", "cancelled") else 1)


if __name__ == "__main__":
    main()
