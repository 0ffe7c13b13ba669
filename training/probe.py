"""The linear head: class-balanced logistic regression on the frozen backbone's cached features.

Photos of none of the ten are an 11th class. The strength ``C`` is chosen by cross-validation over the photos (a
photo's augmented views stay in its fold), and the out-of-fold probabilities of the clean photos give the
calibration (temperature, threshold) and an estimate no fit saw. The fitted pipeline (standardise, then the linear
map) and the temperature fold into one Dense layer, :func:`head_weights`.
"""

import threading

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from classifier.classes import CLASSES
from evaluation.metrics import KEEP

CS = (0.1, 0.3, 1.0, 3.0, 10.0)  # with none as an 11th class, 1.0 won at 384 px over 0.03-0.3
_ONE_AT_A_TIME = threading.Lock()
ABSENT = -50.0  # the bias of a class with no training photos: never predicted


def probe(c: float):
    """Standardised features, then multinomial logistic regression with inverse strength ``c``; none of the ten
    (label 10) is a class like the others, every class weighted to the same total."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))


def fit(c: float, x, y):
    """The probe at ``c`` fitted on ``x``, ``y`` (labels 0-10), its BLAS on one thread: lbfgs multiplies small
    matrices, and on 2 cores two threads made the C search 3-15 times slower (``benchmarks/probe_threads.py``). The
    limit holds for the whole process, so fits take turns: one could otherwise lift another's limit."""
    with _ONE_AT_A_TIME, threadpool_limits(1, user_api="blas"):
        return probe(c).fit(x, y)


def probabilities(model, x, n=len(CLASSES) + 1) -> np.ndarray:
    """``(len(x), 11)`` probabilities, each column at its label (0-9, 10 for none), absent labels at zero."""
    out = np.zeros((len(x), n))
    out[:, model[-1].classes_] = model.predict_proba(x)
    return out


def cross_validate(x, y, photo, clean, cs=CS, folds=5, seed=0, log=print):
    """Choose C by ``folds``-fold cross-validation over photos (``photo``: a row's photo id; its views share a
    fold), scored by the balanced accuracy of the clean rows of the ten classes. Returns ``(C, out-of-fold (n, 11)
    probabilities of every row, meaningful on the clean rows)``."""
    y = np.where(y < 0, len(CLASSES), y)
    folds = min(folds, int(np.bincount(y[clean]).min(initial=folds)) or 2)
    splitter = StratifiedGroupKFold(max(2, folds), shuffle=True, random_state=seed)
    oof = {c: np.zeros((len(y), len(CLASSES) + 1)) for c in cs}
    for fit_at, test_at in splitter.split(x, y, photo):
        test_at = test_at[clean[test_at]]
        for c in cs:
            oof[c][test_at] = probabilities(fit(c, x[fit_at], y[fit_at]), x[test_at])
    inset = clean & (y < len(CLASSES))
    score = {c: balanced_accuracy_score(y[inset], oof[c][inset, :len(CLASSES)].argmax(1)) for c in cs}
    best = max(cs, key=score.get)
    log("probe C by cross-validation (balanced accuracy, out of fold): "
        + ", ".join(f"{c}: {s:.4f}" for c, s in score.items()) + f"; chosen {best}")
    return best, oof[best]


def head_weights(model, temperature=1.0, feature_dim=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``(kernel (d, 11), bias (11,))`` of the Dense softmax layer equal to the fitted pipeline with its logits
    divided by ``temperature``: standardisation folded into the linear map, absent labels never predicted."""
    scaler, lr = model[0], model[-1]
    coef = lr.coef_ / scaler.scale_  # (k, d)
    bias = lr.intercept_ - coef @ scaler.mean_
    if coef.shape[0] == 1:  # two classes: scikit-learn keeps one row, the other's logit is 0
        coef, bias = np.r_[-coef, coef] / 2, np.r_[-bias, bias] / 2
    kernel = np.zeros((feature_dim or coef.shape[1], len(CLASSES) + 1), np.float32)
    full = np.full(len(CLASSES) + 1, ABSENT, np.float32)
    kernel[:, lr.classes_], full[lr.classes_] = coef.T / temperature, bias / temperature
    return kernel, full


def calibration(oof: np.ndarray, y: np.ndarray, keep: float = KEEP) -> dict:
    """The calibration of a linear head from out-of-fold ``(n, 11)`` probabilities of clean photos (``y``: 0-9, -1
    for none): the temperature (folded into the head's weights, so ``temperature`` is 1 and ``folded_temperature``
    says what was folded), the threshold on the top of the ten that keeps ``keep`` of the animal photos, and what
    that threshold does out of fold."""
    from classifier.predictor import apply_temperature
    from evaluation.calibration import fit_temperature
    from evaluation.metrics import open_set_scores

    y = np.asarray(y)
    temperature, nll = fit_temperature(oof, np.where(y < 0, len(CLASSES), y))
    ten = apply_temperature(oof, temperature)[:, :len(CLASSES)]
    inset, top = y >= 0, ten.max(1)
    threshold = float(np.quantile(top[inset], 1 - keep))
    answered = inset & (top >= threshold)
    result = {"temperature": 1.0, "folded_temperature": temperature, "threshold": threshold, "threshold_keeps": keep,
              "n_images": int(inset.sum()), "fitted_on": "out-of-fold probabilities of the training photos",
              "nll_before": float(nll(0.0)), "nll_after": float(nll(np.log(temperature))),
              "answered_right": float((ten.argmax(1) == y)[answered].mean())}
    if (~inset).any():
        result["out_of_fold_open_set"] = open_set_scores(top[inset], top[~inset], keep)
    return result
