"""The Evaluate tab: pick a model and a labelled test set, run, read the report, click into the confusion matrix.

The tab only composes; the work is :func:`evaluation.run.evaluate_folder`.
"""

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from classifier.classes import CLASSES, NONE, WATCHED, display_name
from classifier.images import ImageError, thumbnail
from classifier.labels import labels_file
from classifier.modelfile import model_meta, read_calibration, trained_on
from classifier.predictor import none_threshold
from escaping import plain
from evaluation.curation import MapTooLarge, curate, file_labels, map_coordinates
from evaluation.metrics import at_threshold, risk_coverage, shown_matrix
from evaluation.run import MATRIX, MATRIX_BEFORE, PER_IMAGE, REPORT, evaluate_folder
from i18n import Message, column_names, say
from labeling.labelset import FILE, LABEL_SOURCES

from .common import (
    DEFAULT,
    T,
    dataset_dropdown,
    fill_at_load,
    headed,
    model_choices,
    model_path,
    progress_bar,
    shown,
    store_labels,
    upload_box,
    upload_event,
)


def evaluation_dir(settings, name: str) -> Path:
    """Where the evaluation ``name`` is kept: ``DATA_DIR/evaluations/<name>`` (a name, never a path)."""
    return settings.layout.evaluations / Path(name).name


def evaluate_set(settings, choice, dataset, threshold=None, tta=False, progress=None, source="reviewed"):
    """Run an evaluation from the tab; returns ``(report, output folder)``. Data sets must lie under the roots;
    a request that cannot be done raises ``ValueError`` with what to do. A data set the label store knows is scored
    against its labels from ``source`` (:func:`labeling.labelset.labels_of`: reviewed where decided, before review,
    reviewed photos only), and, once reviewed, against its labels before review too; ``"file"`` (or a set never
    imported) takes its own results.json or class folders."""
    if not dataset:
        raise Message("ev_err_pick_set")
    folder = settings.dataset_path(dataset)
    model = model_path(settings, choice)
    out = evaluation_dir(settings, f"{time.strftime('%Y%m%d-%H%M%S')}-{folder.name}")
    labels = store_labels(settings, folder, source)
    try:
        if labels is None:
            report = evaluate_folder(folder, out, model, labels_file(folder), threshold=threshold or None, tta=tta,
                                     progress=progress, label_source={"source": FILE})
        else:
            report = evaluate_folder(folder, out, model, threshold=threshold or None, tta=tta, progress=progress,
                                     labels=labels.labels, before=labels.before if labels.reviewed else None,
                                     label_source=labels.summary())
        # a run evaluated on photos it trained on: its figures here are optimistic, and the headline says so
        report["trained_on_these"] = folder.resolve() in trained_on(model_meta(model))
    except Message as e:
        raise e.scrubbed(lambda text: text.replace(str(folder), folder.name)) from None
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(str(e).replace(str(folder), folder.name)) from None
    settings.layout.keep(out, "evaluations")  # to PERSIST_DIR, if set: it outlives the host
    return report, out


def side_by_side(matrix, before) -> Image.Image:
    """The confusion matrix, and once the set was reviewed the one against the labels before review on its right:
    what the review changed, in one picture (the API's answer keeps its shape)."""
    after = Image.open(matrix).convert("RGB")
    if not Path(before).exists():
        return after
    old = Image.open(before).convert("RGB")
    both = Image.new("RGB", (after.width + old.width, max(after.height, old.height)), "white")
    both.paste(after, (0, 0))
    both.paste(old, (after.width, 0))
    return both


def label_line(report, lang: str = "en") -> str:
    """Which labels the evaluation used, how many were reviewed and changed, and how many photos reviewers left
    out (not scored) and why."""
    src = report.get("label_source") or {"source": FILE}
    if src["source"] == FILE:
        return say(lang, "ev_source_file")
    line = say(lang, f"ev_source_{src['source']}", left=src["photos"] - src["reviewed"], **src)
    if reasons := src.get("left_out_reasons"):  # an evaluation from before left-out photos has none
        line += " " + say(lang, "ev_left_out", n=sum(reasons.values()), reasons=" · ".join(
            f"{say(lang, f'rv_out_{why}')} {n}" for why, n in reasons.items()))
    return line


def review_line(report, lang: str = "en") -> str | None:
    """What the review changed: the same predictions against the labels before review and these."""
    review = report.get("review")
    if not review or review["before"]["accuracy"] is None or report["accuracy"] is None:
        return None
    before = review["before"]
    return say(lang, "ev_review_change", before=before["accuracy"], n_before=before["n_scored"],
               bal_before=before["balanced_accuracy"], after=report["accuracy"], n_after=report["n_scored"],
               bal_after=report["balanced_accuracy"], mistakes=review["model_mistakes_before"],
               label_mistakes=review["label_mistakes"])


def summary_markdown(report, lang: str = "en"):
    """The report's headline figures in a few lines, in the user's language."""
    acc, ci = report["accuracy"], report["accuracy_ci95"]
    if acc is None:
        return say(lang, "ev_none_scored")
    ex = report["excluded"]
    bal, bci = report["balanced_accuracy"], report["balanced_accuracy_ci95"]
    lines = [say(lang, "ev_headline", bal=bal, blo=bci[0], bhi=bci[1], acc=acc, lo=ci[0], hi=ci[1],
                 n=report["n_scored"], total=report["n_images"]), label_line(report, lang),
             *([say(lang, "ev_leak")] if report.get("trained_on_these") else []),
             *filter(None, [review_line(report, lang)]),
             say(lang, "ev_excluded", null=ex["null"], other=ex["other"], unreadable=ex["unreadable"],
                 f1=report["macro_f1"], top3=report.get("top3_accuracy", 0),
                 ece=report.get("expected_calibration_error", 0)),
             say(lang, "ev_weak_spots", cat=report["per_class"][WATCHED[0]]["recall"],
                 dog=report["per_class"][WATCHED[1]]["precision"])]
    if report.get("per_source"):
        lines.append(say(lang, "ev_per_source", sources=" · ".join(
            say(lang, "ev_source", name=plain(name), acc=s["accuracy"], n=s["n_scored"])
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
BEFORE_COLUMNS = ("precision_before", "recall_before")  # beside them once the set was reviewed


def per_class_table(report, lang: str = "en"):
    """Support, precision, recall with its 95% interval, and F1 per class, headed in ``lang``; once the set was
    reviewed, precision and recall against the labels before review beside them."""
    before = (report.get("review") or {}).get("before", {}).get("per_class")
    rows = []
    for c, m in report["per_class"].items():
        ci = m["recall_ci95"]
        rows.append([display_name(c), m["support"], round(m["precision"], 3), round(m["recall"], 3),
                     f"{ci[0]:.2f}–{ci[1]:.2f}" if ci else "", round(m["f1"], 3),
                     *([round(before[c]["precision"], 3), round(before[c]["recall"], 3)] if before else [])])
    return pd.DataFrame(rows, columns=column_names(PER_CLASS_COLUMNS + (BEFORE_COLUMNS if before else ()), lang))


def counts_table(report, lang: str = "en"):
    """The confusion counts the picture beside it draws (:func:`evaluation.metrics.shown_matrix`: with a threshold,
    a none row and column), label per row and answer per column (a cell click opens its images)."""
    shown = shown_matrix(report)
    return pd.DataFrame([[f"{display_name(c)} →"] + r for c, r in zip(shown["labels"], shown["matrix"])],
                        columns=counts_columns(lang, shown["labels"]))


def counts_columns(lang: str, names) -> list[str]:
    return [say(lang, "col_label_predicted"), *map(display_name, names)]


def cell_at(out_dir, index) -> tuple | None:
    """The ``(label, answer)`` of the counts table's cell at ``index`` (row, column), as :func:`counts_table` laid
    out the evaluation in ``out_dir``; None for the label column."""
    if not index or index[1] == 0:
        return None
    names = shown_matrix(json.loads((Path(out_dir) / REPORT).read_text()))["labels"]
    return names[index[0]], names[index[1] - 1]


def curve_of(out_dir):
    """The risk-coverage curve of an evaluation (:func:`metrics.risk_coverage`), from its per_image.csv; the
    photos of the evaluated model's classes against those of none."""
    classes = json.loads((Path(out_dir) / REPORT).read_text())["confusion_matrix"]["labels"]
    with open(Path(out_dir) / PER_IMAGE, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["score"]]
    animals = [r for r in rows if r["label"] in classes]
    return risk_coverage([float(r["score"]) for r in animals], [r["prediction"] == r["label"] for r in animals],
                         [float(r["score"]) for r in rows if r["label"] == NONE])


def risk_view(out_dir, calibrated, chosen, lang):
    """The risk-coverage picture and the line saying what ``chosen`` does, in ``lang``."""
    curve = curve_of(out_dir)
    point = at_threshold(curve, chosen or 0)
    none = "" if np.isnan(point["none_accepted"]) else say(lang, "ev_pick_none", none=point["none_accepted"])
    line = say(lang, "ev_pick_line", threshold=chosen or 0, coverage=point["coverage"],
               accuracy=point["selective_accuracy"]) + none
    from evaluation.plots import figure_image, risk_coverage_figure  # matplotlib: not at the app's start

    return figure_image(risk_coverage_figure(curve, calibrated, chosen, lang)), line


def cell_images(out_dir, label, predicted, limit=48):
    """Thumbnails and captions of the images labelled ``label`` and answered ``predicted`` (none under the
    threshold, as the counts and the picture count them), surest first."""
    with open(Path(out_dir) / PER_IMAGE, newline="") as f:  # no answer column: an evaluation from before it
        rows = [r for r in csv.DictReader(f) if r["label"] == label and r.get("answer", r["prediction"]) == predicted]
    rows.sort(key=lambda r: -float(r["score"] or 0))
    out = []
    for r in rows[:limit]:
        try:
            thumb = thumbnail(r["path"], 200)
        except ImageError:
            continue
        out.append((thumb, f"{r['key']} · {predicted} {float(r['score']):.2f} · p({label}) {float(r['p_label']):.2f}"))
    return out


# -- copies and leaks, and the map (evaluation.curation) ------------------------------------------------------------

MARKS = ("leak", "copy", "across", "left_out", "disagree", "none")  # a point's mark on the map, the first that holds
MARK_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#7f7f7f", "#1f77b4", "#c7c7c7")
LABEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
                 "#393b79", "#7f7f7f", "#c7c7c7", "#000000")  # the ten classes, none, no label, other
MAP_PICK = 50  # photos a band selected on the map opens in Review at most (nearest its middle first)
COLUMNS = {"label": "labelled", "mark": "note"}  # the map's columns to colour by (Gradio's page translates "label")


def curation_markdown(report, lang: str = "en") -> str:
    """What :func:`evaluation.curation.curate` found, in a few lines in ``lang``: leaks (with the figures without
    them) or why the check is unavailable, groups of copies, copies in other sets, left-out photos."""
    counts, leaks, figures = report["counts"], report["leaks"], report["figures"]
    lines = [say(lang, "cu_counts", photos=counts["photos"], model=plain(report["model"]),
                 threshold=report["threshold"])]
    if leaks["status"] == "unavailable":
        lines.append(say(lang, "cu_unavailable"))
    elif not counts["leaks"]:
        lines.append(say(lang, "cu_no_leaks"))
    elif figures and figures["all"]["accuracy"] is not None:
        f, a = figures["without_leaks"], figures["all"]
        if f["accuracy"] is None:
            lines.append(say(lang, "cu_leaks_only", n=counts["leaks"], bal_all=a["balanced_accuracy"],
                             scored_all=a["n_scored"]))
        else:
            ci = f["balanced_accuracy_ci95"] or (f["balanced_accuracy"],) * 2
            lines.append(say(lang, "cu_leaks", n=counts["leaks"], bal=f["balanced_accuracy"], blo=ci[0], bhi=ci[1],
                             acc=f["accuracy"], scored=f["n_scored"], bal_all=a["balanced_accuracy"],
                             acc_all=a["accuracy"], scored_all=a["n_scored"]))
    else:
        lines.append(say(lang, "cu_leaks_count", n=counts["leaks"]))
    lines.append(say(lang, "cu_groups", m=counts["copy_groups"], n=counts["photos_in_copy_groups"]))
    if report["across"]:
        sets = sorted({a["dataset"] for a in report["across"]})
        lines.append(say(lang, "cu_across", n=counts["copies_in_other_sets"], sets=plain(", ".join(sets))))
    if counts["left_out"]:
        lines.append(say(lang, "cu_left_out", n=counts["left_out"]))
    if counts["unreadable"]:
        lines.append(say(lang, "cu_unreadable", n=counts["unreadable"]))
    return "\n\n".join(lines)


def map_frame(report, coords, labels: dict, lang: str = "en", uids: dict | None = None) -> pd.DataFrame:
    """The map's points: ``x``, ``y``, the photo's ``key``, its label (as shown) and its mark (the first of
    :data:`MARKS` that holds, in ``lang``), named by :data:`COLUMNS`, and ``uid`` (the label store's name of the
    photo, where it knows the set: what Review's queue is filtered by)."""
    leaked = set(report["leaks"].get("by_key", ()))
    copies = {k for g in report["groups"] for k in g}
    across = {a["key"] for a in report["across"]}
    left_out = set(report["left_out"])
    rows = []
    for key, (x, y), probs in zip(coords["keys"], coords["xy"], coords["probs"]):
        label = labels.get(key)
        answer = CLASSES[int(np.argmax(probs))] if len(probs) else None
        holds = (key in leaked, key in copies, key in across, key in left_out,
                 label in CLASSES and answer is not None and answer != label, True)
        mark = MARKS[holds.index(True)]
        shown_label = ("other" if label.startswith("other") else display_name(label)) if label else \
            say(lang, "cu_unlabelled")
        rows.append((float(x), float(y), key, shown_label, say(lang, f"cu_mark_{mark}"), (uids or {}).get(key)))
    return pd.DataFrame(rows, columns=["x", "y", "key", COLUMNS["label"], COLUMNS["mark"], "uid"])


def map_plot(frame, colour: str, lang: str = "en") -> gr.ScatterPlot:
    """The map coloured by ``colour`` (``"label"`` or ``"mark"``), each value always in the same colour."""
    if colour == "mark":
        names = [say(lang, f"cu_mark_{m}") for m in MARKS]
        colours = dict(zip(names, MARK_COLOURS))
    else:
        names = [*map(display_name, [*CLASSES, NONE]), say(lang, "cu_unlabelled"), "other"]
        colours = dict(zip(names, LABEL_COLOURS))
    present = set(frame[COLUMNS[colour]]) if frame is not None and len(frame) else set()
    return gr.ScatterPlot(value=frame, color=COLUMNS[colour],
                          color_map={k: v for k, v in colours.items() if k in present})


def keys_in(frame, band) -> list[str]:
    """The photos of the map's ``frame`` whose ``x`` lies in ``band`` (``[x0, x1]``, what a selection on the map
    gives), nearest its middle first, at most :data:`MAP_PICK`."""
    if frame is None or not len(frame) or not band or len(band) < 2:
        return []
    lo, hi = sorted(float(b) for b in band[:2])
    inside = frame[(frame["x"] >= lo) & (frame["x"] <= hi)]
    order = (inside["x"] - (lo + hi) / 2).abs().sort_values(kind="stable").index
    return inside.loc[order, "key"].head(MAP_PICK).tolist()


def uids_in(frame, keys) -> list[str]:
    """The label store's names (``uid``) of those photos of the map, where it knows them."""
    if frame is None or not len(frame):
        return []
    by_key = dict(zip(frame["key"], frame["uid"]))
    return [by_key[k] for k in keys if by_key.get(k)]


def store_uids(settings, folder) -> dict:
    """``{key: uid}`` of the photos of the data set at ``folder`` as the label store names them (its data set's
    name and the photo's path), empty where the store does not know the set."""
    from labeling.store import LabelStore

    db = settings.layout.labels_db
    if not db.exists():
        return {}
    store = LabelStore(db)
    found = [d for d in store.datasets() if d["root"] == str(Path(folder).resolve())]
    return {r["key"]: r["uid"] for r in store.state(dataset=found[0]["name"])} if found else {}


@dataclass(frozen=True)
class EvaluateParts:
    """What the Evaluate tab hands the app to wire across tabs."""

    cell: gr.State  # the selected confusion cell: (label, answer)
    open_review: gr.Button  # opens that cell in the Review tab's queue
    map: gr.ScatterPlot  # the map of a data set's photos: a band selected on it opens its photos in Review
    points: gr.State  # the map's points (map_frame), which the selection is read against


def build(settings, slot, guard, T=T, session_threshold=None) -> EvaluateParts:
    """Add the Evaluate tab's components and events to the current ``gr.Blocks``; ``session_threshold`` (a
    ``gr.State``) is where "use it in Classify" puts the threshold picked on the risk-coverage curve. Returns the
    parts the app wires across tabs (:class:`EvaluateParts`)."""
    ui = SimpleNamespace(session_threshold=session_threshold or gr.State(None))
    gr.Markdown(T("ev_intro"))
    choices_panel(ui, settings, guard)
    results_panel(ui, slot)
    curation_panel(ui)
    wire(ui, settings, guard)
    wire_curation(ui, settings, guard)
    return EvaluateParts(ui.cell, ui.open_review, ui.map, ui.points)


def choices_panel(ui, settings, guard):
    """Which model on which test set, with which threshold; an upload; the button."""
    with gr.Row():
        ui.model = gr.Dropdown(model_choices(settings), value=DEFAULT, label=T("ev_model"))
        ui.dataset = dataset_dropdown(settings, T("ev_set"), allow_custom_value=False)
        ui.threshold = gr.Slider(0, 1, value=0, step=0.01, label=T("ev_threshold"))
        ui.tta = gr.Checkbox(label=T("ev_tta"), value=False)
    ui.source = gr.Radio([(T(f"labels_{s}"), s) for s in LABEL_SOURCES], value=LABEL_SOURCES[0], label=T("ev_labels"),
                         info=T("ev_labels_info"), elem_id="ev-labels")
    ui.upload = upload_box(T("ev_upload"), "ev-upload")
    with gr.Row():
        ui.password = guard.password_box()
        ui.refresh = gr.Button(T("ev_refresh"), size="sm")
        ui.start = gr.Button(T("ev_run"), variant="primary")


def results_panel(ui, slot):
    """The summary, the confusion matrix, risk and coverage with a threshold to try, the counts whose cells open
    their photos, the per-class table."""
    ui.summary = gr.Markdown()
    ui.matrix_image = gr.Image(label=T("confusion"), type="pil", format="png", interactive=False, height=560)
    with gr.Row():
        ui.risk = gr.Image(label=T("ev_risk"), show_label=False, type="pil", format="png", interactive=False,
                           height=420, scale=3, elem_id="ev-risk")
        with gr.Column(scale=2):
            ui.pick = gr.Slider(0, 1, value=0, step=0.01, label=T("ev_pick"), elem_id="ev-pick")
            ui.pick_line = gr.Markdown()
            ui.use = gr.Button(T("ev_use"), elem_id="ev-use", size="md")
            ui.used = gr.Markdown()
    gr.Markdown(T("ev_click"))
    ui.counts = gr.Dataframe(label=T("ev_counts"), interactive=False)
    ui.cell_title = gr.Markdown()
    ui.gallery = gr.Gallery(label=T("ev_gallery"), columns=8, height=400)
    ui.open_review = gr.Button(T("ev_open_review"), size="sm")
    ui.cell = gr.State(None)
    ui.per_class = gr.Dataframe(label=T("per_class"), interactive=False)
    # empty until the first evaluation, headed in the viewer's words (a table without headers shows "1 2 3")
    fill_at_load(lambda lang: headed(PER_CLASS_COLUMNS, lang), ui.per_class)
    fill_at_load(lambda lang: pd.DataFrame(columns=counts_columns(lang, slot.get().classes)), ui.counts)
    ui.out_state = gr.State(None)
    ui.calibrated_state = gr.State(None)


def curation_panel(ui):
    """Copies and leaks of the chosen data set, for the chosen model, and the map of its photos."""
    with gr.Accordion(T("cu_title"), open=True, elem_id="cu-panel"):
        gr.Markdown(T("cu_intro"))
        with gr.Row():
            ui.cu_sample = gr.Checkbox(label=T("cu_sample"), value=False, elem_id="cu-sample")
            ui.cu_colour = gr.Radio([(T("cu_by_label"), "label"), (T("cu_by_mark"), "mark")], value="label",
                                    label=T("cu_colour"), elem_id="cu-colour")
            ui.cu_run = gr.Button(T("cu_run"), variant="primary", elem_id="cu-run")
        ui.cu_summary = gr.Markdown(elem_id="cu-summary")
        gr.Markdown(T("cu_map_hint"))
        ui.map = gr.ScatterPlot(x="x", y="y", color=COLUMNS["label"], tooltip=["key", *COLUMNS.values()], x_title=" ",
                                y_title=" ", label=T("cu_map"), height=520, elem_id="cu-map")
        ui.points = gr.State(None)


def curation_handlers(settings, guard):
    """Copies and leaks (then the map), and the map coloured again."""
    @shown
    def on_curate(pw, choice, data, source, sample, colour, lang, progress=gr.Progress()):
        guard.start(pw, "do_evaluate")
        if not data:
            raise Message("ev_err_pick_set")
        folder = settings.dataset_path(data)
        model = model_path(settings, choice)
        chosen = store_labels(settings, folder, source)  # the label store's, else the set's own
        labels, left_out, used = (chosen.labels, chosen.left_out, chosen.source) if chosen else \
            (file_labels(folder), {}, FILE)
        others = {n: settings.dataset_path(n) for n in settings.datasets()}
        report = curate(folder, model, settings.layout, data, labels or None, left_out, used, others,
                        progress_bar(progress, lang, "cu_computing"))
        text = curation_markdown(report, lang)
        progress(1.0, desc=say(lang, "cu_drawing"))
        try:
            coords = map_coordinates(folder, model, settings.layout, bool(sample))
        except MapTooLarge as e:
            return text + "\n\n" + e.said(lang), gr.ScatterPlot(value=None), None
        uids = store_uids(settings, folder)
        frame = map_frame(report, coords, {**labels, **{k: None for k in left_out}}, lang, uids)
        key = "cu_map_sampled" if coords["sampled"] else "cu_map_line"
        text += "\n\n" + say(lang, key, n=len(frame), total=coords["photos"], method=coords["method"])
        if not uids:  # Review opens only the photos of the label store
            text += " " + say(lang, "cu_not_in_store")
        return text, map_plot(frame, colour, lang), frame

    @shown
    def on_colour(frame, colour, lang):
        return map_plot(frame, colour, lang)

    return SimpleNamespace(curate=on_curate, colour=on_colour)


def wire_curation(ui, settings, guard):
    on = curation_handlers(settings, guard)
    inputs = [ui.password, ui.model, ui.dataset, ui.source, ui.cu_sample, ui.cu_colour]
    ui.cu_run.click(on.curate, inputs, [ui.cu_summary, ui.map, ui.points], concurrency_limit=1,
                    concurrency_id="curate", api_name="curate",
                    validator=guard.door(inputs, ui.password, "do_evaluate", costly=True))
    ui.cu_colour.input(on.colour, [ui.points, ui.cu_colour], ui.map, api_visibility="private",
                       concurrency_id="view", concurrency_limit=2)


def handlers(settings, guard):
    """Evaluate; try a threshold on the curve; use it in Classify; a clicked cell's photos."""
    @shown
    def on_run(pw, choice, data, thr, mirror, source="reviewed", lang="en", progress=gr.Progress()):
        guard.start(pw, "do_evaluate")
        report, out = evaluate_set(settings, choice, data, thr, mirror,
                                   progress=progress_bar(progress, lang, "predicting"), source=source)
        # the picture itself, not its path: files under DATA_DIR are never served
        matrix = side_by_side(out / MATRIX, out / MATRIX_BEFORE)
        calibrated = (read_calibration(model_path(settings, choice)) or {}).get("threshold")
        chosen = thr or none_threshold(calibrated, settings.low_confidence)  # the model's rule, as Classify
        picture, line = risk_view(out, calibrated, chosen, lang)
        return (summary_markdown(report, lang), matrix, per_class_table(report, lang), counts_table(report, lang),
                str(out.name), "", [], picture, chosen, line, calibrated)

    @shown
    def on_pick(name, calibrated, chosen, lang):
        if not name:
            raise Message("ev_err_run_first")
        return risk_view(evaluation_dir(settings, name), calibrated, chosen, lang)

    @shown
    def on_use(name, chosen, lang):
        if not name:
            raise Message("ev_err_run_first")
        return float(chosen), say(lang, "ev_used", threshold=chosen)

    @shown
    def on_select(name, pw, evt: gr.SelectData, lang):
        guard.require(pw, "do_see_photos")  # a data set's photos and their keys: for who may evaluate
        cell = cell_at(evaluation_dir(settings, name), evt.index) if name else None
        if cell is None:
            return "", [], None
        label, predicted = cell
        images = cell_images(evaluation_dir(settings, name), label, predicted)
        return (say(lang, "ev_cell", label=display_name(label), predicted=display_name(predicted), n=len(images)),
                images, (label, predicted))

    return SimpleNamespace(run=on_run, pick=on_pick, use=on_use, select=on_select)


def wire(ui, settings, guard):
    on = handlers(settings, guard)
    run_inputs = [ui.password, ui.model, ui.dataset, ui.threshold, ui.tta, ui.source]
    ui.start.click(on.run, run_inputs,
                   [ui.summary, ui.matrix_image, ui.per_class, ui.counts, ui.out_state, ui.cell_title, ui.gallery,
                    ui.risk, ui.pick, ui.pick_line, ui.calibrated_state],
                   concurrency_limit=1, concurrency_id="evaluate", api_name="evaluate",
                   validator=guard.door(run_inputs, ui.password, "do_evaluate", costly=True))
    upload_event(ui.upload, settings, guard, ui.password, ui.summary, ui.dataset, "evaluate_upload")
    select_inputs = [ui.out_state, ui.password]
    ui.counts.select(on.select, select_inputs, [ui.cell_title, ui.gallery, ui.cell], api_visibility="private",
                     concurrency_id="view", concurrency_limit=2,
                     validator=guard.door(select_inputs, ui.password, "do_see_photos"))
    ui.pick.input(on.pick, [ui.out_state, ui.calibrated_state, ui.pick], [ui.risk, ui.pick_line],
                  api_visibility="private", trigger_mode="always_last",  # while dragging: the last value drawn
                  concurrency_id="view", concurrency_limit=2)
    # for this browser session only: the Classify tab answers "none of the 10" under this threshold
    ui.use.click(on.use, [ui.out_state, ui.pick], [ui.session_threshold, ui.used], api_visibility="private",
                 queue=False)  # a value and a line: nothing to wait for
    ui.refresh.click(lambda: gr.Dropdown(choices=model_choices(settings)), None, ui.model, api_visibility="private",
                     queue=False)
