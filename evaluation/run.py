"""What ``python -m evaluation run / compare`` compute and write into their output folder.

The figures' module (matplotlib) is imported by the functions that draw, not here: the app imports this module at
start, and its first answer draws nothing.
"""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from classifier.classes import CLASSES, NONE, OTHER
from classifier.files import list_images, natural_key, write_atomic
from classifier.labels import labels_for, read_labels, source_of

from .metrics import evaluate, per_source, review_change, text_report
from .predict import write_predictions, write_probabilities

# What an evaluation writes into its folder (the Evaluate tab and the Train tab read them by these names)
REPORT, PER_IMAGE, MATRIX = "report.json", "per_image.csv", "confusion_matrix.png"
MATRIX_BEFORE = "confusion_matrix_before_review.png"
ERRORS, PROBABILITIES = "errors.png", "probabilities.csv"


def evaluate_folder(images_dir: str | Path | None, out_dir: str | Path, model_path: str | Path | None = None,
                    labels_path: str | Path | None = None, threshold: float | None = None, tta: bool = False,
                    aliases: bool = True, classifier=None, progress=None, labels: dict | None = None,
                    items: list | None = None, before: dict | None = None, label_source: dict | None = None) -> dict:
    """Evaluate a model on a labelled image folder and write every output; returns the report dict.

    Labels come from ``labels`` (a ``{key: label}`` dict, e.g. from the label store), ``labels_path``
    (results.json format) or else from class folders. ``items`` (``[(key, path)]``) replaces listing
    ``images_dir`` (a training run's validation photos, say). ``threshold`` defaults to the model's calibrated one.
    ``progress(done, total)`` is called as images are predicted. With ``before`` (the labels before review, when
    ``labels`` are reviewed ones: :func:`labeling.labelset.labels_of`), the report also says what the review
    changed (:func:`metrics.review_change`, under ``"review"``) and a second confusion matrix is drawn against them;
    ``label_source`` (the label set's summary) is kept in the report for the headline.
    """
    from classifier.predictor import Classifier

    from .plots import both, save_error_sheet, save_report_matrix

    clf = classifier or Classifier.load(model_path)
    items = items if items is not None else list_images(images_dir)
    keys = [k for k, _ in items]
    labels, missing_images, unlabelled = labels_for(keys, labels_path, labels, aliases)
    if not labels:
        raise ValueError(f"no labelled images in {images_dir}: use class folders or pass --labels results.json")
    paths = {k: p for k, p in items}
    keys = [k for k in keys if k in labels]
    by_path, errors = clf.predict_paths([paths[k] for k in keys], progress, tta=tta)
    probs = {k: by_path[paths[k]] for k in keys if paths[k] in by_path}
    failed = {k: errors[paths[k]] for k in keys if paths[k] in errors}
    threshold = clf.threshold if threshold is None else threshold
    top1 = {k: clf.classes[int(p.argmax())] for k, p in probs.items()}
    prob_rows = np.array([probs.get(k, np.zeros(len(clf.classes))) for k in keys])
    report = evaluate([labels[k] for k in keys], [top1.get(k) for k in keys], prob_rows, threshold, clf.classes)
    sources = [source_of(k) for k in keys]
    if any(sources):  # the <source>/<class>/ layout: accuracy per source beside the total
        report["per_source"] = per_source([labels[k] for k in keys], [top1.get(k) for k in keys], sources,
                                          clf.classes)
    report.update({
        "model": clf.name, "images": str(images_dir) if images_dir else None,
        "labels_file": str(labels_path) if labels_path else None,
        "tta": tta, "temperature": clf.temperature, "unreadable_files": failed,
        "labels_without_image": len(missing_images), "images_without_label": len(unlabelled),
        "label_source": label_source,
    })
    if before is not None:
        change = review_change({k: v for k, v in before.items() if k in paths}, labels, top1, probs, clf.classes,
                               threshold=threshold)  # the same rule in both pictures
        report["review"] = {k: v for k, v in change.items() if k != "after"}
    set_name = Path(images_dir).name if images_dir else Path(out_dir).name
    head = f"{clf.name} · {set_name}"
    out = _prepare(out_dir)
    _write_common(out, report, [labels[k] for k in keys], [top1.get(k) for k in keys], head)
    if "review" in report:  # the same predictions against the labels before review, counted as they were scored
        save_report_matrix(report["review"]["before"], f"{head} · {both('fig_before_review')}", out / MATRIX_BEFORE)
    write_predictions({k: clf.answer(probs[k], threshold) for k in top1}, out / "predictions.json")
    write_probabilities(probs, clf.classes, out / PROBABILITIES)
    # answer: where the matrix (picture and table) counts it, under the threshold (a clicked cell opens these)
    rows = [{"key": k, "path": paths[k], "label": labels[k], "prediction": top1.get(k, ""),
             "answer": clf.answer(probs[k], threshold) if k in probs else "",
             "score": f"{probs[k].max():.4f}" if k in probs else "",
             "p_label": f"{probs[k][clf.classes.index(labels[k])]:.4f}" if k in probs and labels[k] in clf.classes
             else ""} for k in keys]
    _write_csv(out / PER_IMAGE, rows)
    mistakes = sorted((r for r in rows if r["label"] in clf.classes and r["prediction"]
                       and r["prediction"] != r["label"]), key=lambda r: -float(r["score"]))
    save_error_sheet([(r["path"], r["label"], r["prediction"], float(r["score"])) for r in mistakes],
                     out / ERRORS)
    return report


def compare(labels_path: str | Path, predictions_path: str | Path, out_dir: str | Path, aliases: bool = True) -> dict:
    """Score a label file against a prediction file (no images); writes the same reports as :func:`run`."""
    labels = read_labels(labels_path, aliases)
    predicted = read_labels(predictions_path, aliases=True)
    keys = sorted(labels, key=natural_key)
    preds = [predicted.get(k) if predicted.get(k) in CLASSES else None for k in keys]
    report = evaluate([labels[k] for k in keys], preds)
    report.update({"labels_file": str(labels_path), "predictions_file": str(predictions_path),
                   "aliases": aliases, "labels_without_prediction": sum(p is None for p in preds),
                   "predictions_without_label": len(set(predicted) - set(labels))})
    head = f"{Path(predictions_path).name} · {Path(labels_path).name}"
    _write_common(_prepare(out_dir), report, [labels[k] for k in keys], preds, head)
    return report


def compare_labels(a_path: str | Path, b_path: str | Path, out_dir: str | Path) -> dict:
    """How two label sets differ (e.g. raw LLM labels against reviewed ones), per class."""
    from .plots import both, save_confusion_matrix

    a, b = read_labels(a_path), read_labels(b_path)
    keys = sorted(set(a) & set(b), key=natural_key)
    names = [*CLASSES, NONE, "other"]

    def group(label):
        return "other" if label.startswith(OTHER) else label

    pairs = Counter((group(a[k]), group(b[k])) for k in keys)
    per_class = {c: {"a": sum(n for (x, _), n in pairs.items() if x == c),
                     "b": sum(n for (_, y), n in pairs.items() if y == c),
                     "kept": pairs[(c, c)],
                     "changed_to": {y: n for (x, y), n in pairs.items() if x == c and y != c}} for c in names}
    report = {"a": str(a_path), "b": str(b_path), "common_keys": len(keys), "only_in_a": len(set(a) - set(b)),
              "only_in_b": len(set(b) - set(a)), "changed": sum(n for (x, y), n in pairs.items() if x != y),
              "per_class": per_class,
              "confusion_matrix": {"labels": names, "matrix": [[pairs[(x, y)] for y in names] for x in names]}}
    out = _prepare(out_dir)
    _write_json(out / REPORT, report)
    save_confusion_matrix(report["confusion_matrix"]["matrix"], names,
                          both("fig_a_against_b", a=Path(a_path).name, b=Path(b_path).name),
                          out / MATRIX)
    return report


def _write_common(out, report, labels, predictions, head):
    from .plots import save_report_matrix

    _write_json(out / REPORT, report)
    (out / "classification_report.txt").write_text(text_report(labels, predictions))
    save_report_matrix(report, head, out / MATRIX)  # with none, under a threshold: as the tab's table


def _write_json(path, data):
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False))


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["key"])
        writer.writeheader()
        writer.writerows(rows)


def _prepare(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out
