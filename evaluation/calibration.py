"""Temperature scaling and a "none of the 10" threshold, fitted on labelled photos kept apart from the test set."""

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize_scalar

from classifier.predictor import apply_temperature

from .metrics import KEEP, expected_calibration_error


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> tuple[float, Callable[[float], float]]:
    """The temperature T minimising the negative log-likelihood of softmax(log(p) / T), and that NLL as a function
    of log T (``nll(0.0)`` is the NLL before scaling)."""
    probs, y_true = np.asarray(probs), np.asarray(y_true)

    def nll(log_t):
        p = apply_temperature(probs, np.exp(log_t))
        return -np.mean(np.log(np.clip(p[np.arange(len(y_true)), y_true], 1e-12, 1)))

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x)), nll


def calibrate(probs: np.ndarray, y_true: np.ndarray, keep: float = KEEP) -> dict:
    """Fit a temperature, then suggest the threshold that keeps ``keep`` of these (in-set) photos.

    Returns the dict written to ``calibration.json``.
    """
    temperature, nll = fit_temperature(probs, y_true)
    calibrated = apply_temperature(np.asarray(probs), temperature)
    top = calibrated.max(1)
    return {
        "temperature": temperature,
        "threshold": float(np.quantile(top, 1 - keep)),
        "threshold_keeps": keep,
        "n_images": int(len(y_true)),
        "nll_before": float(nll(0.0)), "nll_after": float(nll(np.log(temperature))),
        "ece_before": expected_calibration_error(np.asarray(probs), np.asarray(y_true)),
        "ece_after": expected_calibration_error(calibrated, np.asarray(y_true)),
    }
