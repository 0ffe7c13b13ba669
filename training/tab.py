"""The Train tab: start the pipeline as a background process, watch it live, cancel it, serve its model.

One run at a time. The run is a separate ``python -m training`` process writing into ``DATA_DIR/runs/<name>/``;
the tab only reads its ``status.json``, ``train.log`` and pictures, so a crash of either side never corrupts the
other, and only "Serve this model" changes what the Classify tab serves.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from PIL import Image

from classifier.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.classes import display_name
from guard import refuse
from settings import PathNotAllowed

from .limits import check_counts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPLIT = "default model's split"  # assets/model/split.csv and exclude.txt, for shared/data/animals


def read_status(run_dir):
    """A run's status.json; a run whose process died without saying so is reported as failed."""
    status = _read_json(Path(run_dir) / "status.json") or {"state": "starting", "progress": 0.0}
    if status.get("state") == "running" and not _alive(status.get("pid")):
        said = _last_error(Path(run_dir) / "process.log")
        status.update(state="failed", reason=said or "the training process ended without finishing (killed?)")
    return status


def _last_error(log):
    """The ``error: ...`` line a training process printed before it exited, if any."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((ln[len("error: "):] for ln in reversed(lines) if ln.startswith("error: ")), None)


def _read_json(path):
    """A JSON file the training process may be writing right now: None until it is complete."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid):
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    try:  # a zombie child (ended, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


class Trainer:
    def __init__(self, settings, slot, guard):
        self.settings, self.slot, self.guard = settings, slot, guard
        self.runs = settings.data_dir / "runs"
        self.procs = {}

    def check(self, password):
        self.guard.require(password, "Training, cancelling and serving models")

    def list_runs(self):
        return sorted((p.parent for p in self.runs.glob("*/status.json")), key=lambda p: p.name, reverse=True)

    def finished(self):
        """Names of the runs that ended with a model."""
        return [r.name for r in self.list_runs() if read_status(r)["state"] == "done"]

    def split_choices(self):
        """("new stratified split", ""), the default model's pinned split, and each earlier run's split."""
        runs = [(f"same as {r.name}", r.name) for r in self.list_runs() if (r / "split.csv").exists()]
        return [("new stratified split", ""), (DEFAULT_SPLIT, DEFAULT_SPLIT), *runs]

    def split_args(self, choice):
        if not choice:
            return []
        if choice == DEFAULT_SPLIT:
            model = ROOT / "assets" / "model"
            return ["--split", str(model / "split.csv"), "--exclude", str(model / "exclude.txt")]
        if choice not in {r.name for r in self.list_runs()} or not (self.runs / choice / "split.csv").exists():
            raise refuse(f"No run {choice!r} with a split to reuse.")
        return ["--split", str(self.runs / choice / "split.csv")]

    def teacher_args(self, names):
        unknown = set(names or ()) - set(self.finished())
        if unknown:
            raise refuse(f"Teachers must be finished runs; not: {', '.join(sorted(unknown))}.")
        return [arg for name in names or () for arg in ("--teacher", str(self.runs / name / "model.keras"))]

    def active(self):
        """The run whose process is still going, if any."""
        return next((r for r in self.list_runs() if read_status(r)["state"] == "running"), None)

    def start(self, data, backbone, epochs_head, epochs_finetune, unfreeze, split="", teachers=()):
        if self.active():
            raise refuse(f"A run is going ({self.active().name}): watch or cancel it first.")
        try:
            check_counts(epochs_head=epochs_head, epochs_finetune=epochs_finetune, unfreeze_blocks=unfreeze)
            if epochs_head < 1:
                raise ValueError("Phase-1 epochs must be 1 or more.")
            folder = self.settings.dataset_path(data)
        except (ValueError, PathNotAllowed) as e:
            raise refuse(str(e).replace("--epochs-head", "Phase-1 epochs").replace("--epochs-finetune", "Phase-2 "
                         "epochs").replace("--unfreeze-blocks", "Blocks to fine-tune")) from None
        extra = self.split_args(split) + self.teacher_args(teachers)
        run = self.runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{folder.name}"
        run.mkdir(parents=True)
        cmd = [sys.executable, "-m", "training", "--data", str(folder), "--out", str(run), "--backbone", backbone,
               "--epochs-head", str(int(epochs_head)), "--epochs-finetune", str(int(epochs_finetune)),
               "--unfreeze-blocks", str(int(unfreeze)), *extra]
        with open(run / "process.log", "w") as log:
            self.procs[run.name] = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
        (run / "status.json").write_text(json.dumps({"state": "running", "pid": self.procs[run.name].pid,
                                                     "progress": 0.0, "stage": "starting"}))
        return run

    def cancel(self):
        run = self.active()
        if run is None:
            raise refuse("No run is going.")
        os.kill(int(read_status(run)["pid"]), signal.SIGTERM)
        return run

    def serve(self, run_name):
        run = self.runs / Path(run_name or "").name
        if not run_name or read_status(run)["state"] != "done":
            raise refuse("Pick a finished run to serve.")
        clf = self.slot.swap(run / "model.keras")
        return f"Now serving **{clf.name}** from `{run.name}`."


def _picture(path):
    """A run's PNG as a picture (files under DATA_DIR are never served by path), or None."""
    try:
        return Image.open(path).convert("RGB")
    except (OSError, ValueError):
        return None


def snapshot(run, scrub=str):
    """What the tab shows of a run: status line, log tail, curves, confusion matrix, per-class table; ``scrub``
    takes server paths out of the text."""
    if run is None:
        return "No run yet.", "", None, None, None
    status = read_status(run)
    p = float(status.get("progress") or 0)
    bar = "█" * int(p * 30) + "░" * (30 - int(p * 30))
    epoch = f" · epoch {status['epoch']}/{status['epochs']}" if status.get("epochs") else ""
    line = (f"**{run.name}** · {status['state']} · `{bar}` {p:.0%} · {status.get('stage', '')}{epoch} · "
            f"{status.get('device', '')}")
    if status.get("reason"):
        line += f"\n\n**Failed:** {scrub(status['reason'])}"
    if status.get("accuracy") is not None:
        on = {"test": "test", "val": "validation"}.get(status.get("measured_on"), "held-out")
        line += f"\n\nAccuracy on the {on} photos: {status['accuracy']:.1%} (report below)."
    log = run / "train.log"
    tail = scrub("\n".join(log.read_text(errors="replace").splitlines()[-14:])) if log.exists() else ""
    matrix, table = None, None
    for folder in (run / "eval" / "test", run / "eval" / "val"):
        report = _read_json(folder / "report.json")
        if report and (folder / "confusion_matrix.png").exists():
            matrix = _picture(folder / "confusion_matrix.png")
            table = pd.DataFrame([[display_name(c), m["support"], round(m["precision"], 3), round(m["recall"], 3)]
                                  for c, m in report["per_class"].items()],
                                 columns=[f"class ({folder.name})", "support", "precision", "recall"])
            break
    return line, tail, _picture(run / "train_curves.png"), matrix, table


def data_hint(settings):
    """Where the tab finds training photos, and what to do when there are none yet."""
    roots = ", ".join(f"`{Path(r).name}`" for r in settings.data_roots)
    hint = (f"Training photos: a folder under the data roots ({roots}) holding class folders (English, Italian or "
            "Chinese names) or sources of them (`<source>/<class>/`). Runs are kept in `DATA_DIR/runs`.")
    if not settings.datasets():
        hint += " **No folder there yet:** copy one in (or set `DATA_ROOTS`), then open the list again."
    return hint


def build(settings, slot, guard, T=None):
    """Add the Train tab; returns the "serve" event so the app can refresh the Classify tab after it."""
    trainer = Trainer(settings, slot, guard)
    if settings.admin_password:
        gr.Markdown("Starting, cancelling and serving need the admin password.")
    else:
        gr.Markdown("⚠️ `ADMIN_PASSWORD` is not set: **training is open to anyone** using this app.")
    hint = gr.Markdown(data_hint(settings))
    with gr.Row():
        data = gr.Dropdown(settings.datasets(), label="Training photos (class folders, or sources of them)")
        backbone = gr.Dropdown(list(BACKBONES), value=DEFAULT_BACKBONE, label="Backbone")
        epochs_head = gr.Number(20, precision=0, label="Phase-1 epochs (head)")
        epochs_finetune = gr.Number(3, precision=0, label="Phase-2 epochs (fine-tune)")
        unfreeze = gr.Number(3, precision=0, label="Blocks to fine-tune")
    with gr.Accordion("Split and distillation", open=False):
        with gr.Row():
            split = gr.Dropdown(trainer.split_choices(), value="", label="Validation split",
                                info="reuse one to compare runs on the same validation photos; the default "
                                     "model's split also leaves out its exclusion list (for shared/data/animals)")
            teachers = gr.Dropdown(trainer.finished(), value=[], multiselect=True, label="Distil from (finished runs)",
                                   info="targets mix these runs' mean answers (70%) with the labels (30%)")
    password = guard.password_box()
    with gr.Row():
        start = gr.Button("Start training", variant="primary")
        watch = gr.Button("Watch the current run")
        cancel = gr.Button("Cancel the run", variant="stop")
    status = gr.Markdown()
    with gr.Row():
        curves = gr.Image(label="Training curves", type="pil", format="png", interactive=False)
    with gr.Row():
        matrix = gr.Image(label="Confusion matrix", type="pil", format="png", interactive=False, scale=3,
                          elem_id="train-matrix")
        table = gr.Dataframe(label="Per class", interactive=False, scale=2,
                             headers=["class", "support", "precision", "recall"])
    log = gr.Textbox(label="Log (last lines)", lines=8, max_lines=14, interactive=False)
    with gr.Row():
        runs = gr.Dropdown([r.name for r in trainer.list_runs()], label="Runs", scale=3)
        show = gr.Button("Show run", scale=1)
        serve = gr.Button("Serve this model", scale=1)
    served = gr.Markdown()
    outputs = [status, log, curves, matrix, table]

    def follow(run):
        """Stream the run's state until it ends (at least two updates while it runs)."""
        while True:
            # The state is read before the snapshot, so the last update shown is the finished one.
            ended = read_status(run)["state"] not in ("running", "starting")
            line, tail, c, m, t = snapshot(run, guard.scrub)
            yield line, tail, c, m, t, gr.Dropdown(choices=[r.name for r in trainer.list_runs()], value=run.name)
            if ended:
                return
            time.sleep(2)

    def on_start(pw, folder, bb, eh, ef, k, split_choice, teacher_runs):
        trainer.check(pw)
        if not folder:
            raise refuse("Pick a folder of training photos.")
        yield from follow(trainer.start(folder, bb, eh, ef, k, split_choice, teacher_runs))

    def on_watch():
        run = trainer.active() or next(iter(trainer.list_runs()), None)
        if run is None:
            raise refuse("No run yet.")
        yield from follow(run)

    def on_cancel(pw):
        trainer.check(pw)
        return f"Cancelling {trainer.cancel().name} after the current batch…"

    def on_serve(pw, name):
        trainer.check(pw)
        try:
            return trainer.serve(name)
        except (OSError, ValueError) as e:
            raise refuse(guard.scrub(f"The model could not be loaded ({e}); the current model keeps serving.")) \
                from None

    start.click(on_start, [password, data, backbone, epochs_head, epochs_finetune, unfreeze, split, teachers],
                [*outputs, runs], api_name="train_start", concurrency_limit=1, concurrency_id="train",
                validator=guard.door(0, "Training"))
    watch.click(on_watch, None, [*outputs, runs], api_name="train_watch")
    cancel.click(on_cancel, password, served, api_name="train_cancel")
    show.click(lambda name: snapshot(trainer.runs / Path(name).name, guard.scrub) if name else snapshot(None), runs,
               outputs,
               api_visibility="private")
    data.focus(lambda: (gr.Dropdown(choices=settings.datasets()), data_hint(settings)), None, [data, hint],
               api_visibility="private", queue=False)
    split.focus(lambda: gr.Dropdown(choices=trainer.split_choices()), None, split, api_visibility="private",
                queue=False)
    teachers.focus(lambda: gr.Dropdown(choices=trainer.finished()), None, teachers, api_visibility="private",
                   queue=False)
    return serve.click(on_serve, [password, runs], served, api_name="serve")
