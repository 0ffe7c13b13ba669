"""``python -m training``: the two-phase training pipeline.

Phase 1 trains the dense head on backbone features computed once (clean photos plus augmented views); phase 2
unfreezes the last K backbone blocks (BatchNorm frozen), recompiles and fine-tunes at a low learning rate on
augmented photos. A GPU is used when present (mixed float16, XLA). Everything goes into the run folder.

With ``--head linear`` there is no phase 2: a linear probe of the frozen backbone, fitted on cached features, its C
chosen and its calibration fitted out of fold. The default model in assets/ is one (six minutes on 2 CPU cores;
computing the features of 5,351 photos and their mirror images is most of it):

    python -m training --data ../shared/data/animals --none ../shared/data/none \\
        --exclude assets/model/exclude.txt --out runs/a10-probe384-mirror --name a10-probe384-mirror \\
        --backbone efficientnet_lite2 --size 384 --head linear --val-split 0 --views 0 \\
        --compact assets/model/default.npz

``--compact`` also writes the model's float16 ``.tflite`` beside it (served without TensorFlow, its pooled
features too).
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
    from training.record import run

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
        shutil.copy(run_dir / layout.CONFIG, calibration_path(args.compact).with_name(layout.CONFIG))  # its recipe
        if meta.get("report"):  # the report its card's figures come from
            shutil.copy(run_dir / meta["report"], calibration_path(args.compact).with_name(meta["report"]))
        from classifier.export import bring_tflite

        served = bring_tflite(args.compact)
        print(f"compact model: {args.compact} ({len(stored)} arrays), its {calibration_path(args.compact)} and the "
              f"{served.name} it is served from ({served.stat().st_size / 2**20:.1f} MB)")
    if status["state"] == layout.DONE and args.keep:
        from pathlib import Path

        from classifier.files import keep_copy

        keep_copy(run_dir, Path(args.keep) / run_dir.name)
        print(f"kept: {Path(args.keep) / run_dir.name}")
    print(f"run {status['state']}: {run_dir}")
    sys.exit(0 if status["state"] in (layout.DONE, layout.CANCELLED) else 1)


if __name__ == "__main__":
    main()
