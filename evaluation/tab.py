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
from i18n import Message, language, say
from training.runs import RunStore
from ui import T, dataset_dropdown, fill_at_load, headed, progress_bar, shown, upload_box, upload_event

from .run import evaluate_folder

DEFAULT = "default"


def model_choices(settings):
    """``[(label, value)]``: the default model, then every finished training run (newest first). Values are names,
    never server paths; :func:`model_path` finds the file."""
    return [(f"★ {Path(settings.model_path).name}", DEFAULT)] + \
        [(f"▶ {name}", f"run: {name}") for name in RunStore(settings).finished()]


def model_path(settings, choice):
    """The model file of a :func:`model_choices` value; raises ``RunError`` for anything else."""
    if choice in (None, "", DEFAULT):
        return Path(settings.model_path)
    return RunStore(settings).model(str(choice).removeprefix("run: "))


def evaluate_set(settings, choice, dataset, threshold=None, tta=False, progress=None):
    """Run an evaluation from the tab; returns ``(report, output folder)``. Data sets must lie under the roots;
    a request that cannot be done raises ``ValueError`` with what to do."""
    if not dataset:
        raise Message("ev_err_pick_set")
    folder = settings.dataset_path(dataset)
    model = model_path(settings, choice)
    out = settings.data_dir / "evaluations" / f"{time.strftime('%Y%m%d-%H%M%S')}-{folder.name}"
    try:
        report = evaluate_folder(folder, out, model, labels_file(folder),
                                threshold=threshold or None, tta=tta, progress=progress)
    except Message as e:
        raise e.scrubbed(lambda text: text.replace(str(folder), folder.name)) from None
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(str(e).replace(str(folder), folder.name)) from None
    return report, out


def summary_markdown(report, lang: str = "en"):
    """The report's headline figures in a few lines, in the user's language."""
    acc, ci = report["accuracy"], report["accuracy_ci95"]
    if acc is None:
        return say(lang, "ev_none_scored")
    ex = report["excluded"]
    lines = [say(lang, "ev_headline", acc=acc, lo=ci[0], hi=ci[1], n=report["n_scored"], total=report["n_images"]),
             say(lang, "ev_excluded", null=ex["null"], other=ex["other"], unreadable=ex["unreadable"],
                 f1=report["macro_f1"], top3=report.get("top3_accuracy", 0),
                 ece=report.get("expected_calibration_error", 0)),
             say(lang, "ev_weak_spots", cat=report["per_class"]["cat"]["recall"],
                 dog=report["per_class"]["dog"]["precision"])]
    if report.get("per_source"):
        lines.append(say(lang, "ev_per_source", sources=" · ".join(
            say(lang, "ev_source", name=name, acc=s["accuracy"], n=s["n_scored"])
            for name, s in report["per_source"].items() if s["accuracy"] is not None)))
    open_set = report["open_set"]
    if open_set["null_images"]:
        predicted = " · ".join(f"{display_name(c)} {n}" for c, n in open_set["null_predicted_as"].items())
        lines.append(say(lang, "ev_none_images", n=open_set["null_images"], predicted=predicted))
    if "separation" in open_set:
        lines.append(say(lang, "ev_separation", auroc=open_set["separation"]["auroc"],
                         accepted=open_set["separation"]["none_accepted"]))
    if "threshold" in open_set:
        lines.append(say(lang, "ev_threshold_line", threshold=open_set["threshold"], coverage=open_set["coverage"] or 0,
                         selective=open_set["selective_accuracy"] or 0, rejected=open_set["null_rejected"],
                         n=open_set["null_images"]))
    return "\n\n".join(lines)


PER_CLASS_COLUMNS = ("class", "support", "precision", "recall", "recall_ci", "f1")  # keys of col_<name>


def per_class_table(report, lang: str = "en"):
    """Support, precision, recall with its 95% interval, and F1 per class, headed in ``lang``."""
    rows = []
    for c, m in report["per_class"].items():
        ci = m["recall_ci95"]
        rows.append([display_name(c), m["support"], round(m["precision"], 3), round(m["recall"], 3),
                     f"{ci[0]:.2f}–{ci[1]:.2f}" if ci else "", round(m["f1"], 3)])
    return pd.DataFrame(rows, columns=headed(PER_CLASS_COLUMNS, lang).columns)


def counts_table(report, lang: str = "en"):
    """The closed-set confusion counts, label per row and prediction per column (a cell click opens its images)."""
    matrix = report["confusion_matrix"]["matrix"]
    return pd.DataFrame([[f"{display_name(c)} →"] + r for c, r in zip(CLASSES, matrix)],
                        columns=[say(lang, "col_label_predicted"), *map(display_name, CLASSES)])


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
    counts = gr.Dataframe(label=T("ev_counts"), interactive=False)
    cell_title = gr.Markdown()
    gallery = gr.Gallery(label=T("ev_gallery"), columns=8, height=400)
    open_review = gr.Button(T("ev_open_review"), size="sm")
    cell = gr.State(None)
    per_class = gr.Dataframe(label=T("per_class"), interactive=False)
    # empty until the first evaluation, headed in the viewer's words (a table without headers shows "1 2 3")
    fill_at_load(lambda lang: headed(PER_CLASS_COLUMNS, lang), per_class)
    fill_at_load(lambda lang: pd.DataFrame(columns=[say(lang, "col_label_predicted"), *map(display_name, CLASSES)]),
                 counts)
    out_state = gr.State(None)

    @shown
    def on_run(pw, choice, data, thr, mirror, lang, progress=gr.Progress()):
        guard.require(pw, "do_evaluate")
        report, out = evaluate_set(settings, choice, data, thr, mirror,
                                   progress=progress_bar(progress, lang, "predicting"))
        # the picture itself, not its path: files under DATA_DIR are never served
        matrix = Image.open(out / "confusion_matrix.png").convert("RGB")
        return (summary_markdown(report, lang), matrix, per_class_table(report, lang), counts_table(report, lang),
                str(out.name), "", [])

    def on_select(name, evt: gr.SelectData, request: gr.Request):
        if not name or not evt.index or evt.index[1] == 0:
            return "", [], None
        label, predicted = CLASSES[evt.index[0]], CLASSES[evt.index[1] - 1]
        images = cell_images(settings.data_dir / "evaluations" / Path(name).name, label, predicted)
        return (say(language(request), "ev_cell", label=display_name(label), predicted=display_name(predicted),
                    n=len(images)), images, (label, predicted))

    start.click(on_run, [password, model, dataset, threshold, tta],
                [summary, matrix_image, per_class, counts, out_state, cell_title, gallery],
                concurrency_limit=1, concurrency_id="evaluate", api_name="evaluate",
                validator=guard.door(0, "do_evaluate"))
    upload_event(upload, settings, guard, password, summary, dataset, "evaluate_upload")
    counts.select(on_select, out_state, [cell_title, gallery, cell], api_visibility="private")
    refresh.click(lambda: gr.Dropdown(choices=model_choices(settings)), None, model, api_visibility="private",
                  queue=False)
    return cell, open_review
