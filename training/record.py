"""One training run as it is recorded: ``status.json`` (running with progress, done, failed with the reason,
cancelled), ``train.log`` and ``history.csv`` with its curves. The run's data is read and checked before TensorFlow is
imported, so a folder that cannot train fails in a second, not after the framework has loaded.
"""

import csv
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from classifier.files import write_atomic

from . import layout
from .config import TrainConfig
from .data import prepare_data


class Cancelled(Exception):
    pass


def run(cfg: TrainConfig):
    """Train one model as ``cfg`` says (see ``python -m training --help``); returns the run folder."""
    recorder = RunRecorder(cfg.out)
    signal.signal(signal.SIGTERM, lambda *_: setattr(recorder, "cancel_requested", True))  # the Train tab's Cancel

    def interrupted(*_):  # Ctrl+C; remembered, as an import it breaks may raise ImportError instead
        recorder.interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    try:
        recorder.update(stage="st_reading")
        parts, facts = prepare_data(cfg, recorder)
        recorder.stop_if_cancelled()
        from .pipeline import train  # TensorFlow: only once the data can train

        train(cfg, recorder, parts, facts)
    except (Cancelled, KeyboardInterrupt):  # the Train tab's Cancel (SIGTERM), or Ctrl+C in a terminal
        recorder.end_cancelled()
    except Exception as e:  # recorded for the app and the log, then raised for the exit status
        if recorder.interrupted:  # Ctrl+C inside an import (TensorFlow's takes seconds): cancelled, not failed
            recorder.end_cancelled()
            return recorder.dir
        recorder.update(state=layout.FAILED, reason=f"{type(e).__name__}: {e}", ended=time.time())
        recorder.log.error(f"run failed: {type(e).__name__}: {e}")
        recorder.log.debug("traceback", exc_info=True)
        raise
    return recorder.dir


class RunRecorder:
    """status.json, train.log and history.csv of one run."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.status = {"state": layout.RUNNING, "pid": os.getpid(), "started": time.time(), "phase": 0, "epoch": 0,
                       "epochs": 0, "progress": 0.0}
        self.history = []
        self.cancel_requested = False
        self.interrupted = False  # Ctrl+C (SIGINT) was pressed
        self.log = logging.getLogger(f"run.{self.dir.name}")
        self.log.setLevel(logging.DEBUG)
        terminal = logging.StreamHandler(sys.stdout)
        terminal.setLevel(logging.INFO)  # tracebacks (DEBUG) go to train.log only
        self.log.handlers = [logging.FileHandler(self.dir / layout.LOG), terminal]
        for h in self.log.handlers:
            h.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def end_cancelled(self):
        """Record the run as cancelled (the served model is never touched by it)."""
        self.update(state=layout.CANCELLED, ended=time.time())
        self.log.info("cancelled; the served model is unchanged")

    def stop_if_cancelled(self):
        """Between steps: end the run as cancelled once a cancel was asked for."""
        if self.cancel_requested:
            raise Cancelled

    def update(self, **fields):
        self.status.update(fields, updated=time.time())
        write_atomic(self.dir / layout.STATUS, json.dumps(self.status))

    def add_epoch(self, phase, logs):
        self.history.append({"phase": phase, "epoch": len(self.history) + 1,
                             **{k: float(v) for k, v in logs.items() if np.isscalar(v)}})
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k not in ("phase", "epoch"), k))
        with open(self.dir / "history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        save_curves(self.history, self.dir / layout.CURVES)


def save_curves(history, path):
    """Loss, accuracy, cat recall and dog recall per epoch, both phases, with the phase boundary marked."""
    from matplotlib.ticker import MaxNLocator

    from evaluation.plots import both, plt, save_figure

    epochs = [r["epoch"] for r in history]
    boundary = next((r["epoch"] - 0.5 for r in history if r["phase"] == 2), None)
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8), layout="constrained")
    panels = ((both("fig_loss"), ("loss", "val_loss")), (both("fig_accuracy"), ("accuracy", "val_accuracy")),
              (both("fig_cat_recall"), ("val_recall_cat",)), (both("fig_dog_recall"), ("val_recall_dog",)))
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            ax.plot(epochs, [r.get(key, np.nan) for r in history], marker=".", label=key)
        if boundary:
            ax.axvline(boundary, color="gray", linestyle="--", label=both("fig_phase2"))
        ax.set_title(title)
        ax.set_xlabel(both("fig_epoch"))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    save_figure(fig, path, dpi=80)
