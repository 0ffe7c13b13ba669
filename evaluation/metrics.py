"""Scores that account for every image: scikit-learn metrics on the scored ones, counts for the rest.

An image is *scored* when its label is one of the 10 classes and it has a prediction. Null labels ("none of the
10"), other names and unreadable images are excluded from the class metrics but counted, and how the model treats
null-labelled images is reported separately (open set).
"""

from collections import Counter

import numpy as np

from classifier.classes import CLASSES, NONE, OTHER
from classifier.predictor import answer

# scikit-learn is imported by the functions that use it: the app imports this module at start, and sklearn's import
# takes a second that the first answer does not need

KEEP = 0.95  # a calibrated "none of the 10" threshold keeps this share of the photos of the ten (calibration.json)


def evaluate(labels: list[str], predictions: list[str | None], probs: np.ndarray | None = None,
             threshold: float | None = None, classes=CLASSES, n_boot: int = 1000, seed: int = 0) -> dict:
    """Score ``predictions`` against ``labels`` (parallel lists; a prediction may be None for unreadable).

    Args:
        labels: class id, ``"none"`` or ``"other: <name>"`` per image.
        predictions: top-1 class id per image, or None where the image could not be read.
        probs: optional ``(n, len(classes))`` probabilities (rows for unreadable images are ignored), for top-3
            accuracy, calibration error and the ``threshold``.
        threshold: optional; a top-1 probability under it counts as "none of the 10" in the open-set figures.

    Returns the report dict (see docs/guide.md, "Evaluate").
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

    labels, predictions = list(labels), list(predictions)
    # bool, said so: no images at all (nothing predicted yet) must score nothing, not fail on an empty float array
    readable = np.array([p is not None for p in predictions], bool)
    real = np.array([lab in classes for lab in labels], bool)
    scored = real & readable
    y_true = np.array([classes.index(lab) for lab, s in zip(labels, scored) if s], int)
    y_pred = np.array([classes.index(p) for p, s in zip(predictions, scored) if s], int)
    k = list(range(len(classes)))
    if len(y_true):
        precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=k, zero_division=0)
        weighted_f1 = float(precision_recall_fscore_support(y_true, y_pred, labels=k, average="weighted",
                                                            zero_division=0)[2])
        matrix = confusion_matrix(y_true, y_pred, labels=k).tolist()
    else:  # only none-of-ten, other or unreadable images (an open-set check): nothing to score per class
        precision = recall = f1 = np.zeros(len(k))
        support, weighted_f1, matrix = np.zeros(len(k), int), None, np.zeros((len(k), len(k)), int).tolist()
    present = support > 0  # macro averages over the classes the set holds, not over absent ones
    acc_ci, recall_ci, precision_ci = bootstrap(y_true, y_pred, len(classes), n_boot, seed)
    report = {
        "n_images": len(labels),
        "n_scored": int(scored.sum()),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else None,
        "accuracy_ci95": acc_ci,
        # the mean of the recalls: a class of 30 photos counts as much as one of 300 (the headline figure)
        "balanced_accuracy": _mean(recall[present]),
        "balanced_accuracy_ci95": balanced_interval(y_true, y_pred, len(classes), n_boot, seed),
        "macro_precision": _mean(precision[present]), "macro_recall": _mean(recall[present]),
        "macro_f1": _mean(f1[present]), "weighted_f1": weighted_f1,
        "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                          "support": int(support[i]), "recall_ci95": recall_ci[i],
                          "precision_ci95": precision_ci[i]} for i, c in enumerate(classes)},
        "confusion_matrix": {"labels": list(classes), "matrix": matrix},
        "excluded": {
            "null": sum(lab == NONE for lab in labels),
            "other": sum(lab.startswith(OTHER) for lab in labels),
            "unreadable": int((real & ~readable).sum()),
        },
        "other_labels": dict(Counter(lab[len(OTHER):] for lab in labels if lab.startswith(OTHER))),
    }
    if probs is not None:
        p = np.asarray(probs)[scored]
        report["top3_accuracy"] = float(top_k_accuracy_score(y_true, p, k=3, labels=k)) if len(p) else None
        report["expected_calibration_error"] = expected_calibration_error(p, y_true)
    report["open_set"] = open_set(labels, predictions, probs, threshold, scored, y_true, y_pred, classes)
    return report


def _mean(values):
    return float(values.mean()) if len(values) else None


def text_report(labels: list[str], predictions: list[str | None], classes=CLASSES) -> str:
    """scikit-learn's classification report over the scored images."""
    from sklearn.metrics import classification_report

    pairs = [(lab, p) for lab, p in zip(labels, predictions) if lab in classes and p is not None]
    if not pairs:
        return "no scored images\n"
    y_true, y_pred = zip(*pairs)
    return classification_report(y_true, y_pred, labels=list(classes), digits=3, zero_division=0)


def per_source(labels: list[str], predictions: list[str | None], sources: list[str | None], classes=CLASSES,
               n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy and balanced accuracy with their 95% intervals for each source (parallel lists; a source may be
    None, left out): ``{source: {"n_scored", "balanced_accuracy", "balanced_accuracy_ci95", "accuracy",
    "accuracy_ci95"}}``, sources sorted by name."""
    out = {}
    for source in sorted({s for s in sources if s is not None}):
        pairs = [(lab, p) for lab, p, s in zip(labels, predictions, sources)
                 if s == source and lab in classes and p is not None]
        y_true = np.array([classes.index(lab) for lab, _ in pairs], int)
        y_pred = np.array([classes.index(p) for _, p in pairs], int)
        present = np.unique(y_true)
        out[source] = {"n_scored": len(pairs),
                       "balanced_accuracy": _mean(np.array([(y_pred[y_true == c] == c).mean() for c in present])),
                       "balanced_accuracy_ci95": balanced_interval(y_true, y_pred, len(classes), n_boot, seed),
                       "accuracy": float((y_true == y_pred).mean()) if pairs else None,
                       "accuracy_ci95": bootstrap(y_true, y_pred, len(classes), n_boot, seed)[0]}
    return out


def bootstrap(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_boot: int = 1000, seed: int = 0) -> tuple:
    """95% percentile intervals for accuracy, each class's recall and each class's precision, resampling the
    scored images; returns ``(accuracy, [recall per class], [precision per class])``."""
    if len(y_true) == 0:
        return None, [None] * n_classes, [None] * n_classes
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), (n_boot, len(y_true)))
    correct = (y_true == y_pred)[idx]
    accs = correct.mean(1)
    recalls, precisions = [], []
    for c in range(n_classes):
        recalls.append(_interval(correct, y_true[idx] == c))
        precisions.append(_interval(correct, y_pred[idx] == c))
    return [float(np.percentile(accs, 2.5)), float(np.percentile(accs, 97.5))], recalls, precisions


def balanced_interval(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_boot: int = 1000,
                      seed: int = 0) -> list | None:
    """95% percentile interval of the balanced accuracy (mean recall over the classes each resample holds),
    resampling the scored images as :func:`bootstrap` does."""
    if len(y_true) == 0:
        return None
    idx = np.random.default_rng(seed).integers(0, len(y_true), (n_boot, len(y_true)))
    truth, correct = y_true[idx], (y_true == y_pred)[idx]
    n = np.stack([(truth == c).sum(1) for c in range(n_classes)], 1)
    hits = np.stack([((truth == c) & correct).sum(1) for c in range(n_classes)], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nanmean(np.where(n > 0, hits / n, np.nan), 1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _interval(correct, chosen):
    """The 95% interval of the share correct among the ``chosen`` images of each resample (None if never any)."""
    n = chosen.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = ((correct & chosen).sum(1) / n)[n > 0]
    return [float(np.percentile(share, 2.5)), float(np.percentile(share, 97.5))] if len(share) else None


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between top-1 probability and accuracy, over equal-width bins."""
    if len(probs) == 0:
        return None
    conf = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    gaps = [abs(conf[which == b].mean() - correct[which == b].mean()) * (which == b).mean()
            for b in range(bins) if (which == b).any()]
    return float(np.sum(gaps))


def open_set_scores(top_in, top_none, keep: float = KEEP) -> dict:
    """How well the top probability tells photos of the ten (``top_in``) from photos of none of them
    (``top_none``): ``auroc``, and the share of none photos accepted (``none_accepted``) at the ``threshold`` that
    keeps ``keep`` of the in-set photos."""
    from sklearn.metrics import roc_auc_score

    top_in, top_none = np.asarray(top_in), np.asarray(top_none)
    threshold = float(np.quantile(top_in, 1 - keep))
    truth = np.r_[np.ones(len(top_in)), np.zeros(len(top_none))]
    return {"auroc": float(roc_auc_score(truth, np.r_[top_in, top_none])),
            "none_accepted": float((top_none >= threshold).mean()), "threshold": threshold, "keep": keep,
            "n_in": len(top_in), "n_none": len(top_none)}


def risk_coverage(scores, correct, none_scores=()) -> dict:
    """What each "none of the 10" threshold does: answering only photos whose top probability reaches it.

    ``scores``: the top probability of each photo of the ten, ``correct``: whether its top class is right,
    ``none_scores``: the top probability of each photo of none of them. Returns arrays over the thresholds (every
    distinct score, highest first): ``threshold``, ``coverage`` (share of the animal photos answered),
    ``selective_accuracy`` (right among those answered) and ``none_accepted`` (share of none photos answered).
    """
    scores, correct = np.asarray(scores, float), np.asarray(correct, bool)
    none_scores = np.asarray(none_scores, float)
    thresholds = np.unique(np.r_[scores, none_scores])[::-1]
    order = np.argsort(-scores, kind="stable")
    answered = np.searchsorted(-scores[order], -thresholds, side="right")  # photos with a score >= threshold
    right = np.r_[0, np.cumsum(correct[order])][answered]
    none_sorted = np.sort(none_scores)
    none_in = len(none_sorted) - np.searchsorted(none_sorted, thresholds, side="left")
    return {"threshold": thresholds, "coverage": answered / max(len(scores), 1),
            "selective_accuracy": np.divide(right, answered, out=np.full(len(answered), np.nan),
                                            where=answered > 0),
            "none_accepted": none_in / len(none_sorted) if len(none_sorted) else np.full(len(thresholds), np.nan)}


def at_threshold(curve: dict, threshold: float) -> dict:
    """The point of a :func:`risk_coverage` curve for one threshold (the lowest listed one it reaches)."""
    i = int(np.searchsorted(-curve["threshold"], -threshold, side="right")) - 1
    if i < 0:
        return {"threshold": threshold, "coverage": 0.0, "selective_accuracy": float("nan"), "none_accepted": 0.0}
    return {k: float(v[i]) for k, v in curve.items()} | {"threshold": float(threshold)}


def open_set(labels, predictions, probs, threshold, scored, y_true, y_pred, classes=CLASSES):
    """How null-labelled images are predicted, and what a rejection threshold does to both kinds of image; with a
    threshold, the confusion matrix with a none row (labelled none) and column (top probability under it)."""
    from sklearn.metrics import confusion_matrix

    null = np.array([lab == NONE and p is not None for lab, p in zip(labels, predictions)], bool)
    out = {"null_images": int(null.sum()),
           "null_predicted_as": dict(Counter(p for p, n in zip(predictions, null) if n))}
    if probs is None:
        return out
    top = np.asarray(probs).max(1)
    if null.any() and scored.any():
        out["separation"] = open_set_scores(top[scored], top[null])
    if threshold is None:
        return out
    accepted = top[scored] >= threshold
    out.update({
        "threshold": float(threshold),
        "coverage": float(accepted.mean()) if scored.any() else None,
        "selective_accuracy": float((y_true == y_pred)[accepted].mean()) if accepted.any() else None,
        "null_rejected": int((top[null] < threshold).sum()),
        "null_rejected_share": float((top[null] < threshold).mean()) if null.any() else None,
    })
    names = [*classes, NONE]
    # each photo where the Classify tab would put it: its answer, none under the threshold (the one rule)
    both = [(names.index(lab), names.index(answer(row, classes, threshold)))
            for lab, p, row in zip(labels, predictions, np.asarray(probs)) if p is not None and lab in names]
    if both:
        truth, shown = zip(*both)
        out["confusion_matrix"] = {"labels": names,
                                   "matrix": confusion_matrix(truth, shown, labels=range(len(names))).tolist()}
    return out


def shown_matrix(report: dict) -> dict:
    """The confusion matrix an evaluation shows, ``{"labels", "matrix"}``: the Evaluate tab's picture and its table
    of counts both take it from here, so they never differ. With a threshold it is the open-set one (a row for the
    photos labelled none, a column for those answered none: :func:`classifier.predictor.answer`), else the closed
    one over the ten classes."""
    return report["open_set"].get("confusion_matrix") or report["confusion_matrix"]


def review_change(before: dict, after: dict, predicted: dict, probs: dict | None = None, classes=CLASSES,
                  n_boot: int = 1000, threshold: float | None = None) -> dict:
    """The model against the labels before review and after it, on the same predictions: the one computation behind
    the Evaluate tab's "what the review changed" and the Review tab's impact table.

    ``before`` and ``after``: ``{key: label}``; ``predicted``: ``{key: top-1 class}`` (keys without one are left
    out); ``probs``: optional ``{key: probabilities}``. Returns ``{"before": report, "after": report, "changed":
    labels the review changed, "model_mistakes_before": photos whose label before review is a class the model did
    not predict, "label_mistakes": of those, how many the review relabelled as the model said}``. ``threshold``
    (with ``probs``): the "none of the 10" one, for the open-set figures of both reports (:func:`evaluate`).
    """
    def report(labels):
        keys = [k for k in labels if k in predicted]
        rows = np.array([probs[k] for k in keys]) if probs is not None and keys else None
        return evaluate([labels[k] for k in keys], [predicted[k] for k in keys], rows, threshold, classes=classes,
                        n_boot=n_boot)

    mistakes = [k for k, label in before.items() if k in predicted and label in classes and predicted[k] != label]
    return {"before": report(before), "after": report(after),
            "changed": sum(k in before and label != before[k] for k, label in after.items()),
            "model_mistakes_before": len(mistakes),
            "label_mistakes": sum(after.get(k) == predicted[k] for k in mistakes)}
