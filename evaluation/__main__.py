"""``python -m evaluation {predict,run,compare,calibrate}``: batch prediction and honest reports.

  predict    classify a folder like the original predict.py (predictions.json, optional CSV)
  run        evaluate a model on a labelled folder: report.json, classification_report.txt, predictions.json,
             probabilities.csv, per_image.csv, confusion_matrix.png, errors.png
  compare    score a label file against a prediction file, or two label files against each other (--labels2)
  calibrate  fit temperature scaling and a "none of the 10" threshold on a labelled folder
"""

import argparse
import json
import sys

from tqdm import tqdm

from classifier.classes import WATCHED
from evaluation.metrics import KEEP
from labeling.labelset import ALIASES, SOURCES


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    model_help = "model file (.keras or .npz); default: the app's default model"

    pr = sub.add_parser("predict", help="predict every image in a folder",
                        description="Predict every image under --images; keys are paths relative to it without "
                                    "the extension (cat/001, or 17 for testdata/17.jpg).")
    pr.add_argument("--model", help=model_help)
    pr.add_argument("--images", required=True, help="folder of images (flat or class folders)")
    pr.add_argument("--threshold", type=float, help="top-1 probability under which the answer is null (none of "
                                                    "the 10); default: the model's calibrated threshold, if any")
    pr.add_argument("--out", required=True, help="predictions.json to write: {key: top-1 class id}")
    pr.add_argument("--probs", help="also write a CSV: key, then one probability column per class")
    pr.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")

    ru = sub.add_parser("run", help="evaluate a model on a labelled folder")
    ru.add_argument("--model", help=model_help)
    ru.add_argument("--images", required=True, help="class folders (none/ for 'none of the 10'), or flat + --labels; "
                                                    "or an archive of them (.zip, .tar.gz), unpacked into "
                                                    "DATA_DIR/datasets first, as an upload")
    ru.add_argument("--labels", help="results.json: {image stem: label or null}; default: the class folders")
    ru.add_argument("--out", required=True, help="output folder")
    ru.add_argument("--threshold", type=float, help="top-1 probability under which a prediction becomes null; "
                                                    "default: the model's calibrated threshold, if any")
    ru.add_argument("--tta", action="store_true", help="average each photo with its mirror image")
    ru.add_argument("--original-vocabulary", action="store_true",
                    help="score only labels spelled as the original class list (ragno, not spider)")
    ru.add_argument("--db", help="take the labels from this label store (python -m labeling) instead")
    ru.add_argument("--label-source", choices=(*SOURCES, *ALIASES),
                    default=None, help="with --db: reviewed where decided (the default once any photo was decided; "
                                       "also 'current'), before review as imported or the LLM said (also 'llm'), "
                                       "or reviewed photos only; the classifier's own labels never count")

    co = sub.add_parser("compare", help="labels against predictions (no images), or two label sets")
    co.add_argument("--labels", required=True, help="results.json with the labels")
    group = co.add_mutually_exclusive_group(required=True)
    group.add_argument("--predictions", help="predictions.json to score against --labels")
    group.add_argument("--labels2", help="a second label file: report how it differs from --labels, per class")
    co.add_argument("--out", required=True, help="output folder")
    co.add_argument("--original-vocabulary", action="store_true",
                    help="as the original predict script: only labels spelled like its class list (ragno for "
                         "spider) are scored; 'spider' then counts as another name")

    ca = sub.add_parser("calibrate", help="fit temperature scaling and a 'none of the 10' threshold",
                        description="Fit on labelled photos kept apart from those you evaluate on.")
    ca.add_argument("--model", help=model_help)
    ca.add_argument("--images", required=True, help="class folders, or flat + --labels")
    ca.add_argument("--labels", help="results.json; default: the class folders")
    ca.add_argument("--out", help="where to write; default: calibration.json beside the model file")
    ca.add_argument("--keep", type=float, default=KEEP,
                    help="share of in-set photos the suggested threshold keeps (default: %(default)s)")
    return p.parse_args(argv)


def _bar(total, desc):
    bar = tqdm(total=total, desc=desc, unit="img")
    return bar, lambda done, n: bar.update(done - bar.n)


def predict(args):
    from classifier.files import list_images
    from classifier.predictor import Classifier
    from evaluation.predict import predict_folder, write_predictions, write_probabilities

    clf = Classifier.load(args.model)
    bar, progress = _bar(len(list_images(args.images)), "predict")
    with bar:
        probs, errors = predict_folder(clf, args.images, args.batch_size, progress=progress)
    for key, message in errors.items():
        print(f"unreadable: {key}: {message}", file=sys.stderr)
    write_predictions({k: clf.answer(p, args.threshold) for k, p in probs.items()}, args.out)  # "null" under it
    if args.probs:
        write_probabilities(probs, clf.classes, args.probs)
    print(f"{len(probs)} predictions written to {args.out}; {len(errors)} unreadable files skipped")


def run(args):
    from classifier.files import list_images
    from classifier.labels import labels_file
    from evaluation.run import evaluate_folder
    from settings import Settings
    from uploads import folder_of

    args.images = folder_of(args.images, Settings.from_env())
    labels, chosen = None, None
    if args.db:
        from labeling.labelset import labels_of
        from labeling.store import LabelStore

        source = ALIASES.get(args.label_source, args.label_source)
        chosen = labels_of(LabelStore(args.db), args.images, source)
        labels = chosen.labels
        print(f"labels: {chosen.source} ({chosen.reviewed} of {chosen.photos} photos reviewed, {chosen.changed} "
              f"changed; {chosen.unlabelled} unlabelled and {chosen.model_only} labelled only by the classifier left "
              f"out; reviewers left out {len(chosen.left_out)}: {json.dumps(chosen.reasons())})", file=sys.stderr)
    bar, progress = _bar(len(list_images(args.images)), "evaluate")
    with bar:
        labels_path = args.labels or (None if labels else labels_file(args.images))
        report = evaluate_folder(args.images, args.out, args.model, labels_path, args.threshold, args.tta,
                          aliases=not args.original_vocabulary, progress=progress, labels=labels,
                          label_source=chosen.summary() if chosen else None)  # with what reviewers left out
    for key, message in report["unreadable_files"].items():
        print(f"unreadable: {key}: {message}", file=sys.stderr)
    _summary(report, args.out)


def compare(args):
    from evaluation.run import compare as compare_files
    from evaluation.run import compare_labels

    if args.labels2:
        report = compare_labels(args.labels, args.labels2, args.out)
        print(f"{report['common_keys']} common keys, {report['changed']} labels differ; "
              f"per class in {args.out}/report.json")
        for c, row in report["per_class"].items():
            if row["changed_to"]:
                print(f"  {c}: {row['a']} -> kept {row['kept']}, changed to {row['changed_to']}")
        return
    _summary(compare_files(args.labels, args.predictions, args.out, aliases=not args.original_vocabulary),
             args.out)


def calibrate(args):
    import numpy as np

    from classifier.files import list_images
    from classifier.labels import labels_for
    from classifier.modelfile import calibration_path
    from classifier.predictor import Classifier
    from evaluation.calibration import calibrate as fit

    clf = Classifier.load(args.model)
    clf.temperature = 1.0  # fit from the raw probabilities
    items = list_images(args.images)
    labels = labels_for([k for k, _ in items], args.labels)[0]
    chosen = {p: labels[k] for k, p in items if labels.get(k) in clf.classes}
    if not chosen:
        sys.exit(f"error: no photo of the 10 classes with a label under {args.images}")
    bar, progress = _bar(len(chosen), "calibrate")
    with bar:
        probs = clf.predict_paths(chosen, progress)[0]
    result = fit(np.array(list(probs.values())), np.array([clf.classes.index(chosen[p]) for p in probs]), args.keep)
    result["model"] = clf.name
    result["fitted_on"] = str(args.images)
    out = args.out or calibration_path(args.model)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"temperature {result['temperature']:.3f} (NLL {result['nll_before']:.4f} -> {result['nll_after']:.4f}, "
          f"ECE {result['ece_before']:.4f} -> {result['ece_after']:.4f}); suggested threshold "
          f"{result['threshold']:.3f} keeps {args.keep:.0%} of {result['n_images']} photos; written to {out}")


def _summary(report, out):
    acc = report["accuracy"]
    lo, hi = report["accuracy_ci95"] or (None, None)
    excluded = ", ".join(f"{n} {k}" for k, n in report["excluded"].items())
    print(f"accuracy {acc:.4f} (95% CI {lo:.4f}-{hi:.4f}) on {report['n_scored']} of {report['n_images']} "
          f"images; excluded: {excluded}" if acc is not None else "no scored images")
    for c in WATCHED:
        pc = report["per_class"][c]
        print(f"  {c}: precision {pc['precision']:.3f}, recall {pc['recall']:.3f} (support {pc['support']})")
    for source, s in report.get("per_source", {}).items():
        ci = "" if s["accuracy_ci95"] is None else f" (95% CI {s['accuracy_ci95'][0]:.3f}-{s['accuracy_ci95'][1]:.3f})"
        shown = "-" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
        print(f"  source {source}: accuracy {shown}{ci} on {s['n_scored']} images")
    open_set = report["open_set"]
    if "threshold" in open_set:
        coverage = "-" if open_set["coverage"] is None else f"{open_set['coverage']:.3f}"
        selective = "-" if open_set["selective_accuracy"] is None else f"{open_set['selective_accuracy']:.3f}"
        print(f"  threshold {open_set['threshold']:.3f}: coverage {coverage}, selective accuracy {selective}, "
              f"null images rejected {open_set['null_rejected']} of {open_set['null_images']}")
    print(f"reports in {out}")


def main(argv=None):
    from classifier.labels import LabelFileError

    args = parse_args(argv)
    try:
        {"predict": predict, "run": run, "compare": compare, "calibrate": calibrate}[args.command](args)
    except (FileNotFoundError, LabelFileError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
