"""The Train tab: lays out the run settings, the live view of a run and the list of runs, and wires them to
:class:`training.runs.RunStore` (one run at a time; only "Serve this model" changes what the Classify tab serves).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd
from PIL import Image

from classifier.backbones import BACKBONES, NAMES
from classifier.classes import display_name
from classifier.export import bundle
from escaping import plain
from evaluation.run import MATRIX, REPORT
from i18n import STRINGS, Message, column_names, say
from labeling.labelset import LABEL_SOURCES
from training import layout
from training.config import recipe_of
from training.runs import RunStore, read_json, read_status

from .common import (
    T,
    dataset_dropdown,
    evaluations_of,
    fill_at_load,
    headed,
    model_choices,
    shown,
    store_labels,
    upload_box,
    upload_event,
)

TABLE_COLUMNS = ("class", "support", "precision", "recall")  # a run's per-class table (keys col_<name>)


def _picture(path):
    """A run's PNG as a picture (files under DATA_DIR are never served by path), or None."""
    try:
        return Image.open(path).convert("RGB")
    except (OSError, ValueError):
        return None


def snapshot(run, scrub=str, lang: str = "en"):
    """What the tab shows of a run: status line, log tail, curves, confusion matrix, per-class table; ``scrub``
    takes server paths out of the text, which is in ``lang`` (the log is the process's own, in English)."""
    if run is None:
        return say(lang, "tr_no_run"), "", None, None, None
    status = read_status(run)
    p = float(status.get("progress") or 0)
    bar = "█" * int(p * 30) + "░" * (30 - int(p * 30))
    stage = status.get("stage", "")  # a key of the catalog; an older run's own words otherwise
    stage = say(lang, stage, **{"done": 0, "total": 0, **status}) if stage in STRINGS["en"] else stage
    epoch = say(lang, "tr_epoch", epoch=status["epoch"], epochs=status["epochs"]) if status.get("epochs") else ""
    device = status.get("device", "").replace("cores", say(lang, "tr_cores"))
    device = f" · {device}" if device else ""  # known once TensorFlow has loaded
    state = say(lang, f"state_{status['state']}")
    line = f"**{run.name}** · {state} · `{bar}` {p:.0%} · {stage}{epoch}{device}"
    if status.get("reason"):
        line += say(lang, "tr_failed", reason=plain(scrub(status["reason"])))
    if status.get("accuracy") is not None:
        on = {"test": "test", "val": "val"}.get(status.get("measured_on"), "held_out")
        if status.get("balanced_accuracy") is None:  # a run from before it was recorded
            line += say(lang, "tr_accuracy", on=Message(f"tr_on_{on}"), accuracy=status["accuracy"])
        else:  # balanced first: a skewed set's plain accuracy hides its weak class
            line += say(lang, "tr_balanced", on=Message(f"tr_on_{on}"), balanced=status["balanced_accuracy"],
                        accuracy=status["accuracy"])
    log = run / layout.LOG
    tail = scrub("\n".join(log.read_text(errors="replace").splitlines()[-14:])) if log.exists() else ""
    matrix, table = None, None
    # its test photos, else its validation photos, else (a probe fitted on every photo) its cross-validation's
    for report_file, matrix_file, part in ((layout.evaluation(run, "test") / REPORT,
                                            layout.evaluation(run, "test") / MATRIX, "test"),
                                           (layout.evaluation(run, "val") / REPORT,
                                            layout.evaluation(run, "val") / MATRIX, "val"),
                                           (run / layout.OOF, run / layout.OOF_MATRIX, "out_of_fold")):
        report = read_json(report_file)
        if report and matrix_file.exists():
            matrix = _picture(matrix_file)
            table = pd.DataFrame([[display_name(c), m["support"], round(m["precision"], 3), round(m["recall"], 3)]
                                  for c, m in report["per_class"].items()],
                                 columns=column_names((f"class_{part}", *TABLE_COLUMNS[1:]), lang))
            break
    return line, tail, _picture(run / layout.CURVES), matrix, table


def labels_line(settings, folder, source: str = "reviewed", lang: str = "en") -> str:
    """What a run on ``folder`` learns from with labels from ``source`` (:data:`labeling.labelset.LABEL_SOURCES`):
    the label store's labels, how many were reviewed, and the photos left out (by reviewers, and for want of a
    usable label), which it never trains on; or the folder's own labels."""
    if not folder:
        return ""
    labels = store_labels(settings, settings.dataset_path(folder), source or LABEL_SOURCES[0])
    if labels is None:
        return say(lang, "tr_labels_file")
    why = ", ".join(f"{say(lang, f'rv_out_{r}')} {n}" for r, n in labels.reasons().items())
    return say(lang, "tr_labels_line", name=plain(labels.dataset), source=say(lang, f"labels_{labels.source}"),
               n=len(labels.labels), reviewed=labels.reviewed, changed=labels.changed, out=len(labels.left_out),
               why=say(lang, "tr_labels_why", it=why) if why else "", left=labels.unlabelled + labels.model_only)


def data_hint(settings, lang: str = "en"):
    """Where the tab finds training photos, and what to do when there are none yet, in ``lang``."""
    roots = ", ".join(f"`{Path(r).name}`" for r in settings.data_roots)
    return say(lang, "tr_hint", roots=roots) + ("" if settings.datasets() else say(lang, "tr_hint_empty"))


@dataclass(frozen=True)
class TrainParts:
    """What the Train tab hands the app to wire across tabs."""

    served: gr.events.Dependency  # the "serve" event, after which the Classify tab names the new model


def build(settings, slot, guard, T=T) -> TrainParts:
    """Add the Train tab; returns the parts the app wires across tabs (:class:`TrainParts`)."""
    store = RunStore(settings)
    ui = SimpleNamespace(hint=gr.Markdown())  # in the viewer's words, at load
    settings_panel(ui, settings, store)
    ui.password = guard.password_box()
    with gr.Row():
        ui.start = gr.Button(T("tr_start"), variant="primary")
        ui.watch = gr.Button(T("tr_watch"))
        ui.cancel = gr.Button(T("tr_cancel"), variant="stop")
    results_panel(ui, settings, store)
    wire_runs(ui, settings, guard, store)
    return TrainParts(wire_models(ui, settings, slot, guard, store))


def split_choices(store):
    return store.split_choices(T("split_new"), T("split_default"))


def export_choices(settings, store):
    """The default model, then every finished run (newest first): the one list of models (values without the
    ``run:`` prefix, as the run store names them)."""
    return [(label, value.removeprefix("run: ")) for label, value in model_choices(settings)]


def settings_panel(ui, settings, store):
    """What to train on and how long: the data, the backbone (by its name), the epochs and blocks, the split,
    teachers, photos of none of the ten; an upload. A new run starts on the recipe of the model the app serves at
    start (:func:`training.config.recipe_of`: these fields, and the validation share and views the run plan takes
    from it), not on a second set of numbers."""
    recipe = recipe_of(settings.model_path)
    head = recipe.head
    with gr.Row():
        ui.data = dataset_dropdown(settings, T("tr_data"))
        ui.backbone = gr.Dropdown([(NAMES[b], b) for b in BACKBONES], value=recipe.backbone, label=T("tr_backbone"),
                                  info=T("tr_backbone_info"))
        ui.head = gr.Dropdown([(T("tr_head_linear"), "linear"), (T("tr_head_dense"), "dense")], value=head,
                              label=T("tr_head"), info=T("tr_head_info"), scale=2)
    # which labels: the review's by default (retrain on the reviewed labels), and what that leaves out
    ui.labels = gr.Radio([(T(f"labels_{s}"), s) for s in LABEL_SOURCES], value=LABEL_SOURCES[0], label=T("tr_labels"),
                         info=T("tr_labels_info"), elem_id="tr-labels")
    ui.labels_md = gr.Markdown(elem_id="tr-labels-line")
    with gr.Row():  # the input size for both recipes; the epochs and blocks for fine-tuning only
        ui.size = gr.Number(recipe.size, precision=0, label=T("tr_size"), info=T("tr_size_info"))
        tuning = head == "dense"  # the epochs and blocks are fine-tuning's: greyed out for a probe
        ui.epochs_head = gr.Number(recipe.epochs_head, precision=0, label=T("tr_epochs_head"), interactive=tuning)
        ui.epochs_finetune = gr.Number(recipe.epochs_finetune, precision=0, label=T("tr_epochs_ft"),
                                       interactive=tuning)
        ui.unfreeze = gr.Number(recipe.unfreeze_blocks, precision=0, label=T("tr_blocks"), interactive=tuning)
    ui.head.change(lambda h: [gr.Number(interactive=h == "dense")] * 3, ui.head,
                   [ui.epochs_head, ui.epochs_finetune, ui.unfreeze], api_visibility="private", queue=False)
    with gr.Accordion(T("tr_split_acc"), open=False), gr.Row():
        ui.split = gr.Dropdown(split_choices(store), value="", label=T("tr_split"), info=T("tr_split_info"))
        ui.teachers = gr.Dropdown(store.finished(), value=[], multiselect=True, label=T("tr_teachers"),
                                  info=T("tr_teachers_info"))
        ui.none = dataset_dropdown(settings, T("tr_none"), value=None, info=T("tr_none_info"))
    ui.upload = upload_box(T("tr_upload"))


def results_panel(ui, settings, store):
    """A run as it goes and once done: status, curves, confusion matrix, per-class table, log; the runs to show,
    serve or download."""
    ui.status = gr.Markdown()
    with gr.Row():
        ui.curves = gr.Image(label=T("tr_curves"), type="pil", format="png", interactive=False)
    with gr.Row():
        ui.matrix = gr.Image(label=T("confusion"), type="pil", format="png", interactive=False, scale=3,
                             elem_id="train-matrix")
        ui.table = gr.Dataframe(label=T("per_class"), interactive=False, scale=2)
    ui.log = gr.Textbox(label=T("tr_log"), lines=8, max_lines=14, interactive=False)
    with gr.Row():
        ui.runs = gr.Dropdown([r.name for r in store.list_runs()], label=T("tr_runs"), scale=3)
        ui.show_button = gr.Button(T("tr_show"), scale=1)
        ui.serve = gr.Button(T("tr_serve"), scale=1)
    ui.served = gr.Markdown()
    with gr.Row():
        ui.to_export = gr.Dropdown(export_choices(settings, store), value="default", label=T("tr_export_model"),
                                   scale=3)
        ui.export_button = gr.Button(T("tr_export"), scale=1, elem_id="tr-export")
        ui.exported = gr.File(label=T("downloads"), file_count="multiple", scale=3, elem_id="tr-exported")
    ui.outputs = [ui.status, ui.log, ui.curves, ui.matrix, ui.table]


def run_handlers(settings, guard, store):
    """Start a run and follow it, watch the latest, cancel, show a past one."""
    def show(run, lang):
        line, tail, c, m, t = snapshot(run, guard.scrub, lang)
        curves = gr.Image(c, visible=c is not None)  # a linear probe has no epochs: no curves, no empty box
        return line, tail, curves, m, t if t is not None else headed(TABLE_COLUMNS, lang)

    def follow(run, lang):
        """Stream the run's state until it ends (at least two updates while it runs)."""
        while True:
            # The state is read before the snapshot, so the last update shown is the finished one.
            ended = read_status(run)["state"] not in layout.GOING
            yield *show(run, lang), gr.Dropdown(choices=[r.name for r in store.list_runs()], value=run.name)
            if ended:
                return
            time.sleep(2)

    @shown
    def on_start(pw, folder, bb, eh, ef, k, split_choice, teacher_runs, none_folder=None, head="dense", size=None,
                 source="reviewed", lang="en"):
        guard.start(pw, "do_train")
        if not folder:
            raise Message("tr_err_pick_data")
        if source and source not in LABEL_SOURCES:
            raise ValueError(f"unknown label source {source!r}: choose one of {', '.join(LABEL_SOURCES)}")
        path = settings.dataset_path(folder)
        # a data set the label store knows trains on its labels from ``source`` (reviewed by default), never on the
        # photos reviewers left out
        labels = store_labels(settings, path, source or LABEL_SOURCES[0])
        if labels is not None:
            gr.Info(labels_line(settings, folder, source, lang).replace("**", ""), title=say(lang, "note_title"))
        if used := evaluations_of(settings, path):
            gr.Warning(say(lang, "tr_leak", n=used), title=say(lang, "leak_title"))
        run = store.start(folder, bb, eh, ef, k, split_choice, teacher_runs, none_folder or "",
                          labels.labels if labels is not None else None, head or "dense", size)
        yield from follow(run, lang)

    @shown
    def on_watch(pw, lang):  # a run's log names its photos: for the admins
        guard.require(pw, "do_see_runs")
        run = store.active() or next(iter(store.list_runs()), None)
        if run is None:
            raise Message("tr_no_run")
        yield from follow(run, lang)

    @shown
    def on_cancel(pw, lang):
        guard.require(pw, "do_cancel_run")
        return say(lang, "tr_cancelling", name=store.cancel().name)

    @shown
    def on_show(pw, name, lang):
        guard.require(pw, "do_see_runs")
        return show(store.runs / Path(name).name if name else None, lang)

    return SimpleNamespace(start=on_start, watch=on_watch, cancel=on_cancel, show=on_show)


def wire_runs(ui, settings, guard, store):
    on = run_handlers(settings, guard, store)
    start_inputs = [ui.password, ui.data, ui.backbone, ui.epochs_head, ui.epochs_finetune, ui.unfreeze, ui.split,
                    ui.teachers, ui.none, ui.head, ui.size, ui.labels]
    ui.start.click(on.start, start_inputs, [*ui.outputs, ui.runs], api_name="train_start", concurrency_limit=1,
                   concurrency_id="train", validator=guard.door(start_inputs, ui.password, "do_train", costly=True))
    ui.watch.click(on.watch, ui.password, [*ui.outputs, ui.runs], api_name="train_watch",
                   validator=guard.door([ui.password], ui.password, "do_see_runs"))
    ui.cancel.click(on.cancel, ui.password, ui.served, api_name="train_cancel",
                    validator=guard.door([ui.password], ui.password, "do_cancel_run"))
    ui.show_button.click(on.show, [ui.password, ui.runs], ui.outputs, api_visibility="private", concurrency_id="view",
                         concurrency_limit=2, validator=guard.door([ui.password, ui.runs], ui.password, "do_see_runs"))
    fill_at_load(lambda lang: data_hint(settings, lang), ui.hint)
    fill_at_load(lambda lang: headed(TABLE_COLUMNS, lang), ui.table)
    ui.data.focus(shown(lambda lang: data_hint(settings, lang)), None, ui.hint, api_visibility="private", queue=False)
    for control in (ui.data, ui.labels):  # what a run would learn from, as the data or the labels are chosen
        control.change(shown(lambda folder, source, lang: labels_line(settings, folder, source, lang)),
                       [ui.data, ui.labels], ui.labels_md, api_visibility="private", concurrency_id="view",
                       concurrency_limit=2)
    ui.split.focus(lambda: gr.Dropdown(choices=split_choices(store)), None, ui.split, api_visibility="private",
                   queue=False)
    ui.teachers.focus(lambda: gr.Dropdown(choices=store.finished()), None, ui.teachers, api_visibility="private",
                      queue=False)
    upload_event(ui.upload, settings, guard, ui.password, ui.status, ui.data, "train_upload")


def wire_models(ui, settings, slot, guard, store):
    """Download a model (the default or a run's) and serve a run; returns the "serve" event."""
    @shown
    def on_serve(pw, name, lang):
        guard.require(pw, "do_serve")
        return guard.scrub(store.serve(slot, name, lang))

    @shown
    def on_export(pw, choice):
        guard.start(pw, "do_export_model")
        return bundle(settings.model_path if choice == "default" else store.model(choice), settings.model_cache)

    ui.to_export.focus(lambda: gr.Dropdown(choices=export_choices(settings, store)), None, ui.to_export,
                       api_visibility="private", queue=False)
    ui.export_button.click(on_export, [ui.password, ui.to_export], ui.exported, api_name="export_model",
                           concurrency_id="export",
                           validator=guard.door([ui.password, ui.to_export], ui.password, "do_export_model",
                                                costly=True))
    return ui.serve.click(on_serve, [ui.password, ui.runs], ui.served, api_name="serve",
                          validator=guard.door([ui.password, ui.runs], ui.password, "do_serve"))
