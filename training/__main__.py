"""``python -m training``: the two-phase training pipeline.

Phase 1 trains the dense head on backbone features computed once (clean photos plus augmented views); phase 2
unfreezes the last K backbone blocks (BatchNorm frozen), recompiles and fine-tunes at a low learning rate on
augmented photos. A GPU is used when present (mixed float16, XLA). Everything goes into the run folder.

Example (the default model in assets/):

    python -m training --data ../shared/data/animals --none ../shared/data/none \\
        --split assets/model/split-a10.csv --exclude assets/model/exclude.txt --out runs/a10-oe \\
        --unfreeze-blocks 6 --lr-finetune 5e-5 --epochs-finetune 8 \\
        --compact assets/model/default.npz --compact-dtype float16
"""

import json
import sys

from training import layout
from training.config import config_from, parser


def parse_args(argv=None):
    p = parser()
    p.description = __doc__
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from training.pipeline import run

    try:
        run_dir = run(config_from(args))
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    status = json.loads((run_dir / layout.STATUS).read_text())
    if status["state"] == layout.DONE and args.compact:
        import shutil

        from classifier.model import load_model, save_compact
        from classifier.modelfile import calibration_path

        model, meta = load_model(run_dir / layout.MODEL)
        stored = save_compact(model, args.compact, meta, dtype=args.compact_dtype)
        shutil.copy(calibration_path(run_dir / layout.MODEL), calibration_path(args.compact))  # its threshold too
        print(f"compact model: {args.compact} ({len(stored)} arrays) and its {calibration_path(args.compact)}")
    print(f"run {status['state']}: {run_dir}")
    sys.exit(0 if status["state"] in (layout.DONE, layout.CANCELLED) else 1)


if __name__ == "__main__":
    main()
