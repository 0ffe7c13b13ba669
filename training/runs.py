"""Training runs as the app sees them: each is a ``python -m training`` process writing into
``DATA_DIR/runs/<name>/`` (``status.json``, ``train.log``, pictures, ``model.keras``). Reading a run never touches
the process, so a crash of either side never corrupts the other. No Gradio here: requests that cannot be done raise
:class:`RunError`.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from classifier import ASSETS
from i18n import Message, say

from . import layout
from .config import TrainConfig, recipe_of
from .limits import LIMITS, check_counts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPLIT = "default model's split"  # split-a10.csv and exclude.txt, for shared/data/animals (and none)


def read_status(run_dir: str | Path) -> dict:
    """A run's status.json; a run whose process died without saying so is reported as failed."""
    status = read_json(Path(run_dir) / layout.STATUS) or {"state": layout.STARTING, "progress": 0.0}
    if status.get("state") == layout.RUNNING and not _alive(status.get("pid")):
        said = _last_error(Path(run_dir) / layout.PROCESS_LOG)
        status.update(state=layout.FAILED, reason=said or "the training process ended without finishing (killed?)")
    return status


def _last_error(log):
    """The ``error: ...`` line a training process printed before it exited, if any."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((ln[len("error: "):] for ln in reversed(lines) if ln.startswith("error: ")), None)


def read_json(path: Path) -> dict | None:
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


class RunError(Message):
    """A run request that cannot be done (one is going, no such run...); the message says what to do."""


class RunStore:
    """The training runs under ``DATA_DIR/runs``: list them, read their state, start, cancel, serve. The Train and
    Evaluate tabs share it, so "a finished run" means one thing: ``status.json`` says done."""

    def __init__(self, settings):
        self.settings = settings
        self.runs = settings.layout.runs

    def list_runs(self) -> list[Path]:
        return sorted((p.parent for p in self.runs.glob("*/status.json")), key=lambda p: p.name, reverse=True)

    def finished(self) -> list[str]:
        """Names of the runs that ended with a model, newest first."""
        return [r.name for r in self.list_runs()
                if read_status(r)["state"] == layout.DONE and (r / layout.MODEL).exists()]

    def model(self, name: str) -> Path:
        """The model file of finished run ``name``; refuses any other name."""
        if name not in self.finished():
            raise RunError("tr_err_no_run", name=repr(name))
        return self.runs / name / layout.MODEL

    def split_choices(self, new="new stratified split", default=DEFAULT_SPLIT) -> list[tuple]:
        """``(label, value)``: a new split, the default model's pinned split, and each earlier run's split (by the
        run's name); ``new`` and ``default`` label the first two."""
        runs = [(r.name, r.name) for r in self.list_runs() if (r / layout.SPLIT).exists()]
        return [(new, ""), (default, DEFAULT_SPLIT), *runs]

    def split_args(self, choice: str) -> list[str]:
        if not choice:
            return []
        if choice == DEFAULT_SPLIT:
            model = ASSETS / "model"
            return ["--split", str(model / "split-a10.csv"), "--exclude", str(model / "exclude.txt")]
        if choice not in {r.name for r in self.list_runs()} or not (self.runs / choice / layout.SPLIT).exists():
            raise RunError("tr_err_no_split", name=repr(choice))
        return ["--split", str(self.runs / choice / layout.SPLIT)]

    def teacher_args(self, names: list[str]) -> list[str]:
        unknown = set(names or ()) - set(self.finished())
        if unknown:
            raise RunError("tr_err_teachers", names=", ".join(sorted(unknown)))
        return [arg for name in names or () for arg in ("--teacher", str(self.runs / name / layout.MODEL))]

    def active(self) -> Path | None:
        """The run whose process is still going, if any."""
        return next((r for r in self.list_runs() if read_status(r)["state"] == layout.RUNNING), None)

    def start(self, data: str, backbone: str, epochs_head: int, epochs_finetune: int, unfreeze: int,
              split: str = "", teachers: list[str] = (), none: str = "", labels: dict | None = None,
              head: str = "dense", size: int | None = None) -> Path:
        """Start a run in a new process (:meth:`plan` says what it runs); returns its folder."""
        going = self.active()
        if going:
            raise RunError("tr_err_going", name=going.name)
        run, argv = self.plan(data, backbone, epochs_head, epochs_finetune, unfreeze, split, teachers, none, labels,
                              head, size)
        with open(run / layout.PROCESS_LOG, "w") as log:
            proc = subprocess.Popen([sys.executable, "-m", "training", *argv], cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        (run / layout.STATUS).write_text(json.dumps({"state": layout.RUNNING, "pid": proc.pid,
                                                     "progress": 0.0, "stage": "st_starting"}))
        return run

    def plan(self, data: str, backbone: str, epochs_head: int, epochs_finetune: int, unfreeze: int,
             split: str = "", teachers: list[str] = (), none: str = "", labels: dict | None = None,
             head: str = "dense", size: int | None = None) -> tuple:
        """A new run's folder and the ``python -m training`` flags it runs with (checked: a bad value is a
        :class:`RunError` in the tab's words). ``labels`` (``{key: label}``: the data set's reviewed labels,
        :func:`labeling.labelset.labels_of`) label the photos instead of the set's own file or folders; they are
        written into the run folder (:data:`layout.LABELS`). ``head="linear"`` is a probe of the frozen backbone at
        input ``size`` (the epochs and blocks are not used; no teachers). Every other setting is the served model's
        recipe (:func:`training.config.recipe_of`: its validation share, augmented views...), as the tab shows it,
        when the head is the recipe's; the config's defaults for the other head."""
        if head == "linear" and teachers:
            raise RunError("tr_err_linear_teachers")
        size = int(size) if size else None
        if size is not None and not 96 <= size <= 640:
            raise RunError("tr_err_size", value=size)
        for name, value in (("epochs_head", epochs_head), ("epochs_finetune", epochs_finetune),
                            ("unfreeze_blocks", unfreeze)):
            try:
                check_counts(**{name: value})
            except ValueError:  # the CLI's check, in the tab's words
                raise RunError("tr_err_count", field=Message(f"field_{name}"), low=LIMITS[name][0],
                               high=LIMITS[name][1], value=value) from None
        if epochs_head < 1:
            raise RunError("tr_err_head")
        folder = self.settings.dataset_path(data)
        extra = self.split_args(split) + self.teacher_args(teachers)
        if none:  # photos of none of the ten, learnt as outlier exposure
            extra += ["--none", str(self.settings.dataset_path(none))]
        if self.settings.persist_dir:  # the finished run outlives the host (restored at the next start)
            extra += ["--keep", str(self.settings.layout.kept("runs"))]
        run = base = self.runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{folder.name}"
        for n in range(2, 100):  # two runs planned within one second get two folders
            if not run.exists():
                break
            run = base.with_name(f"{base.name}-{n}")
        run.mkdir(parents=True)
        if labels is not None:
            (run / layout.LABELS).write_text(json.dumps(labels, ensure_ascii=False))
        recipe = recipe_of(self.settings.model_path)
        config = dataclasses.replace(recipe if recipe.head == head else TrainConfig(), data=[str(folder)],
                                     out=str(run), backbone=backbone, epochs_head=int(epochs_head),
                                     epochs_finetune=int(epochs_finetune), unfreeze_blocks=int(unfreeze), head=head,
                                     size=size, data_labels=str(run / layout.LABELS) if labels is not None else None)
        return run, [*config.check().to_argv(), *extra]

    def cancel(self) -> Path:
        run = self.active()
        if run is None:
            raise RunError("tr_err_none_going")
        os.kill(int(read_status(run)["pid"]), signal.SIGTERM)
        return run

    def serve(self, slot, run_name: str, lang: str = "en") -> str:
        """Switch ``slot`` to finished run ``run_name``'s model (converted and loaded first; the old model answers
        until then); returns a line in ``lang``."""
        if not run_name or run_name not in self.finished():
            raise RunError("tr_err_pick_serve")
        try:
            clf = slot.swap(self.runs / run_name / layout.MODEL)
        except (OSError, ValueError) as e:
            raise RunError("tr_err_load", reason=str(e)) from None
        return say(lang, "tr_serving", name=clf.name, run=run_name)


