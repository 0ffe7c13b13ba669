"""A run folder's contract, named once: the files a training run writes under ``DATA_DIR/runs/<run>/`` and the states
its ``status.json`` goes through. The pipeline writes them, :class:`training.runs.RunStore`, the CLI and the Train tab
read them; an evaluation's own files (``report.json``...) are :mod:`evaluation.run`'s."""

from pathlib import Path

STATUS = "status.json"  # {"state", "pid", "progress", "stage", "epoch", "accuracy", "reason"...}, rewritten atomically
MODEL = "model.keras"  # the trained model (its metadata in model.json, its calibration in calibration.json)
CONFIG = "config.json"  # the TrainConfig, the class weights, the data's facts, the device and the versions
SPLIT = "split.csv"  # path,split of every photo the run saw: a later run may reuse it
CURVES = "train_curves.png"
LOG = "train.log"  # the pipeline's log
PROCESS_LOG = "process.log"  # the process's own output (what a crash printed)
EVAL = "eval"  # eval/val/ and eval/test/: what ``python -m evaluation run`` writes, for each part
OOF = "out_of_fold.json"  # a linear head's cross-validated report: balanced accuracy, per class, per source
OOF_MATRIX = "out_of_fold_matrix.png"  # its confusion matrix (what the Train tab shows of a run with no held-out set)
LABELS = "labels.json"  # the data set's reviewed labels the run trained on, when the label store knew the set
TRAIN_FEATURES = "train-features.npz"  # the training photos' own features while the run goes (its index's source)

STARTING, RUNNING, DONE, FAILED, CANCELLED = "starting", "running", "done", "failed", "cancelled"
GOING = (STARTING, RUNNING)  # a run in one of these may still change


def evaluation(run: str | Path, part: str) -> Path:
    """The folder of a run's evaluation on its ``part`` (``"val"`` or ``"test"``)."""
    return Path(run) / EVAL / part
