"""Pictures people would rather look at: the confusion matrix and a contact sheet of confident mistakes."""

import os

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from classifier.images import ImageError, decode  # noqa: E402


def confusion_matrix_figure(matrix, labels, title):
    """Counts and row-normalised (recall) side by side; returns the matplotlib figure."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(17, 7.5), layout="constrained")
    panels = ((axes[0], matrix, "d", "counts"),
              (axes[1], normalised, ".2f", "share of each true class (recall on the diagonal)"))
    for ax, values, fmt, name in panels:
        ConfusionMatrixDisplay(values, display_labels=labels).plot(ax=ax, values_format=fmt, cmap="Blues",
                                                                  colorbar=False, xticks_rotation=45)
        ax.set_title(name)
        ax.set_xlabel("predicted")
        ax.set_ylabel("label")
    fig.suptitle(title, fontsize=13)
    return fig


def save_figure(fig, path, **kwargs):
    """Write a figure atomically (the app may be showing the file while a run rewrites it)."""
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, **kwargs)
    plt.close(fig)
    os.replace(tmp, path)


def save_confusion_matrix(matrix, labels, title, path):
    save_figure(confusion_matrix_figure(matrix, labels, title), path, dpi=90)


def save_error_sheet(errors, path, columns=6, limit=24):
    """A contact sheet of mistakes: ``errors`` is a list of ``(image path, label, prediction, score)``."""
    errors = errors[:limit]
    rows = max(1, -(-len(errors) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.6, rows * 2.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, label, pred, score) in zip(axes.flat, errors):
        try:
            ax.imshow(decode(image, 160).astype(np.uint8))
        except ImageError:
            ax.text(0.5, 0.5, "unreadable", ha="center")
        ax.set_title(f"{label} → {pred} ({score:.2f})", fontsize=9, color="darkred")
    if not errors:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", fontsize=14)
    fig.suptitle("most confident mistakes: label → prediction (score)", fontsize=12)
    save_figure(fig, path, dpi=80, bbox_inches="tight")
