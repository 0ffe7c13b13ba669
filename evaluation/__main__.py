"""``python -m evaluation {predict,run,compare,calibrate,curate}``: batch prediction, honest reports, copies and leaks.

  predict    classify a folder like the original predict.py (predictions.json, optional CSV)
  run        evaluate a model on a labelled folder: report.json, classification_report.txt, predictions.json,
             probabilities.csv, per_image.csv, confusion_matrix.png, errors.png
  compare    score a label file against a prediction file, or two label files against each other (--labels2)
  calibrate  fit temperature scaling and a "none of the 10" threshold on a labelled folder
  curate     near-copies within a data set and across the others computed, leaks against the model's training
             photos, and the figures without them (--json: the report as the tools app's curation_report gives it)
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

    cu = sub.add_parser("curate", help="copies within a data set, leaks against the model's training photos",
                        description="Near-copies within a data set (and in the other data sets whose features are "
                                    "cached for this model), the photos that are near-copies of the model's "
                                    "training photos (\"unavailable\" for a model that carries no index of them), "
                                    "and the figures without those. Features are cached under DATA_DIR/features.")
    cu.add_argument("dataset", help="a data set folder, or its name as the app lists it (datasets/demo, or demo)")
    cu.add_argument("--model", help=model_help)
    cu.add_argument("--label-source", choices=(*SOURCES, *ALIASES, "file"), default=None,
                    help="the label store's labels where it knows the set (reviewed where decided by default), "
                         "else the set's own results.json or class folders ('file')")
    cu.add_argument("--json", action="store_true", help="print the report as JSON")
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


def curate(args):
    from evaluation.curation import curate as make_report
    from settings import Settings

    settings = Settings.from_env()
    folder, name = dataset_folder(args.dataset, settings)
    labels, left_out, source = set_labels(settings.layout.labels_db, folder,
                                          ALIASES.get(args.label_source, args.label_source))
    others = {n: settings.dataset_path(n) for n in settings.datasets()}
    quiet = args.json or not sys.stderr.isatty()
    bar = tqdm(total=None, desc="features", unit="img", disable=quiet)
    with bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        report = make_report(folder, args.model or settings.model_path, settings.layout, name, labels or None, left_out,
                             source, others, progress)
    if args.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return
    for line in curation_lines(report):
        print(line)


def set_labels(db, folder, source=None):
    """``(labels, left out {key: reason}, source)`` of the set at ``folder``: the label store's at ``db`` (from
    ``source``; default reviewed once any photo was decided) where it knows the set, else the set's own results.json
    or class folders (``"file"``)."""
    from pathlib import Path

    from evaluation.curation import file_labels
    from labeling.labelset import FILE, labels_of
    from labeling.store import LabelStore

    if source != FILE and Path(db).exists():
        store = LabelStore(db)
        if any(d["root"] == str(Path(folder).resolve()) for d in store.datasets()):
            chosen = labels_of(store, folder, source)
            return chosen.labels, chosen.left_out, chosen.source
    labels = file_labels(folder)
    return labels, {}, FILE if labels else None


def dataset_folder(choice, settings):
    """``(folder, name)`` of a data set given as a folder, or by its name among the app's (``datasets/demo``), or by
    its folder's name alone when one data set has it (``demo``)."""
    from pathlib import Path

    names = settings.datasets()
    if choice in names:
        return settings.dataset_path(choice), choice
    matches = [n for n in names if n.rsplit("/", 1)[-1] == choice]
    if len(matches) == 1:
        return settings.dataset_path(matches[0]), matches[0]
    if Path(choice).is_dir():
        folder = Path(choice).resolve()
        return folder, next((n for n in names if settings.dataset_path(n) == folder), folder.name)
    raise FileNotFoundError(f"no data set {choice!r}: give a folder, or one of {', '.join(names) or 'none yet'}")


def curation_lines(report) -> list[str]:
    """The report in a few lines of English."""
    counts, leaks = report["counts"], report["leaks"]
    lines = [f"{report['dataset']}: {counts['photos']} photos ({counts['unreadable']} unreadable), model "
             f"{report['model']}, threshold {report['threshold']}",
             f"{counts['copy_groups']} groups of copies within the set ({counts['photos_in_copy_groups']} photos)"]
    lines += [f"  {' = '.join(group)}" for group in report["groups"][:20]]
    if leaks["status"] == "unavailable":
        lines.append(f"leak check unavailable: {leaks['reason']}")
    else:
        lines.append(f"{counts['leaks']} photos are near-copies of the model's training photos")
        lines += [f"  {key} ~ {hit['training_key']} (distance {hit['distance']:.3f})"
                  for key, hit in list(leaks["by_key"].items())[:20]]
    if report["across"]:
        lines.append(f"{counts['copies_in_other_sets']} photos have copies in other data sets")
        lines += [f"  {a['key']} ~ {a['dataset']}: {a['other_key']}" for a in report["across"][:20]]
    if counts["left_out"]:
        lines.append(f"{counts['left_out']} photos left out by reviewers")
    if figures := report["figures"]:
        def said(f):
            if f["accuracy"] is None:
                return "nothing scored"
            return (f"balanced accuracy {f['balanced_accuracy']:.3f}, accuracy {f['accuracy']:.3f} on "
                    f"{f['n_scored']} photos")
        lines.append(f"figures ({figures['labels']} labels): {said(figures['all'])}")
        if leaks["status"] == "checked":
            lines.append(f"without the leaked photos: {said(figures['without_leaks'])}")
    return lines


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
        {"predict": predict, "run": run, "compare": compare, "calibrate": calibrate,
         "curate": curate}[args.command](args)
    except (FileNotFoundError, LabelFileError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
