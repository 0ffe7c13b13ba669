"""Pictures people would rather look at: the confusion matrix and a contact sheet of confident mistakes.

A picture is drawn once (by an evaluation or a training process) and shown to viewers of either language, so its
words carry both, English then Chinese (:func:`both`). Chinese glyphs come from the first CJK font installed
(``fonts-noto-cjk``: ``packages.txt`` on Spaces, ``.ci/run`` in CI).
"""

import os

import matplotlib

matplotlib.use("agg")  # no display on servers; spelled as Gradio spells it, so its switch around each event is none
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from classifier.classes import CLASSES, display_name  # noqa: E402
from classifier.images import ImageError, decode  # noqa: E402
from i18n import say  # noqa: E402

CJK_FONTS = ["Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei"]
# DejaVu first for Latin text; matplotlib falls back glyph by glyph along the list (missing families are skipped)
plt.rcParams["font.family"] = ["DejaVu Sans", *[f.name for f in matplotlib.font_manager.fontManager.ttflist
                                                 if f.name in CJK_FONTS][:1]]


def both(key: str, **values) -> str:
    """A picture's words in English and Chinese (assets/i18n.json)."""
    return f"{say('en', key, **values)} · {say('zh', key, **values)}"


def tick_name(label: str) -> str:
    """A class's two names; none and other names as short words in both languages."""
    return display_name(label) if label in CLASSES else both(f"fig_{label.split(':')[0]}")


def confusion_matrix_figure(matrix, labels, title):
    """Counts and row-normalised (recall) side by side; returns the matplotlib figure."""
    matrix = np.asarray(matrix)
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(17, 7.5), layout="constrained")
    panels = ((axes[0], matrix, "d", both("fig_counts")), (axes[1], normalised, ".2f", both("fig_share")))
    for ax, values, fmt, name in panels:
        ConfusionMatrixDisplay(values, display_labels=[tick_name(x) for x in labels]).plot(
            ax=ax, values_format=fmt, cmap="Blues", colorbar=False, xticks_rotation=45)
        ax.set_title(name)
        ax.set_xlabel(both("fig_predicted"))
        ax.set_ylabel(both("fig_label"))
    fig.suptitle(title, fontsize=13)
    return fig


def risk_coverage_figure(curve, calibrated=None, chosen=None, lang="en"):
    """Selective accuracy against coverage as the "none of the 10" threshold moves (:func:`metrics.risk_coverage`),
    with the share of none photos still answered when there are any; the calibrated and the chosen thresholds
    marked. Drawn at view time, so its words are in the viewer's ``lang``."""
    from .metrics import at_threshold

    fig, ax = plt.subplots(figsize=(8.5, 4.6), layout="constrained")
    ax.plot(curve["coverage"], curve["selective_accuracy"], color="tab:blue", label=say(lang, "rc_accuracy"))
    if not np.isnan(curve["none_accepted"]).all():
        ax.plot(curve["coverage"], curve["none_accepted"], color="tab:red", linestyle="--",
                label=say(lang, "rc_none_accepted"))
    for threshold, key, colour in ((calibrated, "rc_calibrated", "black"), (chosen, "rc_chosen", "tab:orange")):
        if threshold is not None:
            point = at_threshold(curve, threshold)
            ax.plot([point["coverage"]], [point["selective_accuracy"]], "o", color=colour, markersize=9,
                    label=say(lang, key, threshold=threshold, coverage=point["coverage"],
                              accuracy=point["selective_accuracy"]))
    ax.set_xlabel(say(lang, "rc_coverage"))
    ax.set_ylabel(say(lang, "rc_share"))
    answered = curve["coverage"][curve["coverage"] > 0]
    ax.set_xlim(max(0.0, (answered.min() if len(answered) else 0) - 0.02), 1.005)  # where the curve is
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", fontsize=8)
    fig.suptitle(say(lang, "rc_title"), fontsize=10)
    return fig


def figure_image(fig, dpi=90):
    """A figure as a PIL image (for the app, which shows pictures rather than serving files)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def save_figure(fig, path, **kwargs):
    """Write a figure atomically (the app may be showing the file while a run rewrites it)."""
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, **kwargs)
    plt.close(fig)
    os.replace(tmp, path)


def save_confusion_matrix(matrix, labels, title, path):
    save_figure(confusion_matrix_figure(matrix, labels, title), path, dpi=90)


def save_report_matrix(report, head, path):
    """Draw the confusion matrix an evaluation ``report`` shows (:func:`metrics.shown_matrix`, the one the Evaluate
    tab's table holds too), titled ``head`` and what the picture counts, read from the same report: its scored
    images, and the photos labelled none when it has a row for them."""
    from .metrics import shown_matrix

    shown = shown_matrix(report)
    none = int(np.asarray(shown["matrix"])[-1].sum()) if shown["labels"][-1] not in CLASSES else 0
    counted = both("fig_scored_none", n=report["n_scored"], none=none) if none else \
        both("fig_scored", n=report["n_scored"])
    save_confusion_matrix(shown["matrix"], shown["labels"], f"{head} · {counted}", path)


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
            ax.text(0.5, 0.5, both("fig_unreadable"), ha="center")
        ax.set_title(f"{label} → {pred} ({score:.2f})", fontsize=9, color="darkred")
    if not errors:
        axes.flat[0].text(0.5, 0.5, both("fig_no_mistakes"), ha="center", fontsize=14)
    fig.suptitle(both("fig_mistakes"), fontsize=12)
    save_figure(fig, path, dpi=80, bbox_inches="tight")
