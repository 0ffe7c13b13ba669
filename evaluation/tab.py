"""The Evaluate tab: pick a model and a labelled test set, run, read the report, click into the confusion matrix.

The tab only composes; the work is :func:`evaluation.run.run`.
"""

import csv
import time
from pathlib import Path

import gradio as gr
import pandas as pd
from PIL import Image

from classifier.classes import CLASSES, display_name
from classifier.images import ImageError, thumbnail
from classifier.labels import labels_file
from i18n import T
from training.runs import RunStore
from ui import dataset_dropdown, progress_bar, shown, upload_box, upload_event

from .run import evaluate_folder

DEFAULT = "default"


def model_choices(settings):
    """``[(label, value)]``: the default model, then every finished training run (newest first). Values are names,
    never server paths; :func:`model_path` finds the file."""
    return [(f"default: {Path(settings.model_path).name}", DEFAULT)] + \
        [(f"run: {name}", f"run: {name}") for name in RunStore(settings).finished()]


def model_path(settings, choice):
    """The model file of a :func:`model_choices` value; raises ``RunError`` for anything else."""
    if choice in (None, "", DEFAULT):
        return Path(settings.model_path)
    return RunStore(settings).model(str(choice).removeprefix("run: "))


def evaluate_set(settings, choice, dataset, threshold=None, tta=False, progress=None):
    """Run an evaluation from the tab; returns ``(report, output folder)``. Data sets must lie under the roots;
    a request that cannot be done raises ``ValueError`` with what to do."""
    if not dataset:
        raise ValueError("Pick a test set: a folder of class folders (or of images with a results.json) under the "
                         "data roots.")
    folder = settings.dataset_path(dataset)
    model = model_path(settings, choice)
    out = settings.data_dir / "evaluations" / f"{time.strftime('%Y%m%d-%H%M%S')}-{folder.name}"
    try:
        report = evaluate_folder(folder, out, model, labels_file(folder),
                                threshold=threshold or None, tta=tta, progress=progress)
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(str(e).replace(str(folder), folder.name)) from None
    return report, out


def summary_markdown(report, say):
    """The report's headline figures in a few lines, in the user's language (``say(key, **values)``)."""
    acc, ci = report["accuracy"], report["accuracy_ci95"]
    if acc is None:
        return say("ev_none_scored")
    ex = report["excluded"]
    lines = [say("ev_headline", acc=acc, lo=ci[0], hi=ci[1], n=report["n_scored"], total=report["n_images"]),
             say("ev_excluded", null=ex["null"], other=ex["other"], unreadable=ex["unreadable"],
                 f1=report["macro_f1"], top3=report.get("top3_accuracy", 0),
                 ece=report.get("expected_calibration_error", 0)),
             say("ev_weak_spots", cat=report["per_class"]["cat"]["recall"],
                 dog=report["per_class"]["dog"]["precision"])]
    if report.get("per_source"):
        lines.append(say("ev_per_source", sources=" · ".join(
            say("ev_source", name=name, acc=s["accuracy"], n=s["n_scored"])
            for name, s in report["per_source"].items() if s["accuracy"] is not None)))
    open_set = report["open_set"]
    if open_set["null_images"]:
        lines.append(say("ev_none_images", n=open_set["null_images"], predicted=open_set["null_predicted_as"]))
    if "separation" in open_set:
        lines.append(say("ev_separation", auroc=open_set["separation"]["auroc"],
                         accepted=open_set["separation"]["none_accepted"]))
    if "threshold" in open_set:
        lines.append(say("ev_threshold_line", threshold=open_set["threshold"], coverage=open_set["coverage"] or 0,
                         selective=open_set["selective_accuracy"] or 0, rejected=open_set["null_rejected"],
                         n=open_set["null_images"]))
    return "\n\n".join(lines)


# Column names, also shown before the first evaluation (an empty table would show "1 2 3").
PER_CLASS_COLUMNS = ("class", "support", "precision", "recall", "recall 95% CI", "f1")
COUNTS_COLUMNS = ("label ↓ / predicted →", *CLASSES)


def per_class_table(report):
    rows = []
    for c, m in report["per_class"].items():
        ci = m["recall_ci95"]
        rows.append([display_name(c), m["support"], round(m["precision"], 3), round(m["recall"], 3),
                     f"{ci[0]:.2f}–{ci[1]:.2f}" if ci else "", round(m["f1"], 3)])
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def counts_table(report):
    matrix = report["confusion_matrix"]["matrix"]
    return pd.DataFrame([[f"{c} →"] + r for c, r in zip(CLASSES, matrix)], columns=COUNTS_COLUMNS)


def cell_images(out_dir, label, predicted, limit=48):
    """Thumbnails and captions of the images labelled ``label`` and predicted ``predicted``, surest first."""
    with open(Path(out_dir) / "per_image.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == label and r["prediction"] == predicted]
    rows.sort(key=lambda r: -float(r["score"] or 0))
    out = []
    for r in rows[:limit]:
        try:
            thumb = thumbnail(r["path"], 200)
        except ImageError:
            continue
        out.append((thumb, f"{r['key']} · {predicted} {float(r['score']):.2f} · p({label}) {float(r['p_label']):.2f}"))
    return out


def build(settings, slot, guard, T=T):
    """Add the Evaluate tab's components and events to the current ``gr.Blocks``."""
    gr.Markdown(T("ev_intro"))
    with gr.Row():
        model = gr.Dropdown(model_choices(settings), value=DEFAULT, label=T("ev_model"))
        dataset = dataset_dropdown(settings, T("ev_set"), allow_custom_value=False)
        threshold = gr.Slider(0, 1, value=0, step=0.01,
                              label=T("ev_threshold"))
        tta = gr.Checkbox(label=T("ev_tta"), value=False)
    upload = upload_box(T("ev_upload"))
    with gr.Row():
        password = guard.password_box()
        refresh = gr.Button(T("ev_refresh"), size="sm")
        start = gr.Button(T("ev_run"), variant="primary")
    summary = gr.Markdown()
    matrix_image = gr.Image(label=T("confusion"), type="pil", format="png", interactive=False, height=560)
    gr.Markdown(T("ev_click"))
    counts = gr.Dataframe(label=T("ev_counts"), interactive=False, headers=list(COUNTS_COLUMNS))
    cell_title = gr.Markdown()
    gallery = gr.Gallery(label=T("ev_gallery"), columns=8, height=400)
    open_review = gr.Button(T("ev_open_review"), size="sm")
    cell = gr.State(None)
    per_class = gr.Dataframe(label=T("per_class"), interactive=False, headers=list(PER_CLASS_COLUMNS))
    out_state = gr.State(None)

    @shown
    def on_run(pw, choice, data, thr, mirror, request: gr.Request, progress=gr.Progress()):
        guard.require(pw, "Evaluating")
        report, out = evaluate_set(settings, choice, data, thr, mirror,
                                   progress=progress_bar(progress, "predicting {done}/{total}"))
        # the picture itself, not its path: files under DATA_DIR are never served
        matrix = Image.open(out / "confusion_matrix.png").convert("RGB")
        return (summary_markdown(report, T.say_to(request)), matrix, per_class_table(report), counts_table(report),
                str(out.name), "", [])

    def on_select(name, evt: gr.SelectData):
        if not name or not evt.index or evt.index[1] == 0:
            return "", [], None
        label, predicted = CLASSES[evt.index[0]], CLASSES[evt.index[1] - 1]
        images = cell_images(settings.data_dir / "evaluations" / Path(name).name, label, predicted)
        return (f"**label {display_name(label)} → predicted {display_name(predicted)}**: {len(images)} images",
                images, (label, predicted))

    start.click(on_run, [password, model, dataset, threshold, tta],
                [summary, matrix_image, per_class, counts, out_state, cell_title, gallery],
                concurrency_limit=1, concurrency_id="evaluate", api_name="evaluate",
                validator=guard.door(0, "Evaluating"))
    upload_event(upload, settings, guard, password, summary, dataset, "evaluate_upload")
    counts.select(on_select, out_state, [cell_title, gallery, cell], api_visibility="private")
    refresh.click(lambda: gr.Dropdown(choices=model_choices(settings)), None, model, api_visibility="private",
                  queue=False)
    return cell, open_review
