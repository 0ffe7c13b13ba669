"""A data set's labels (:func:`labeling.labelset.labels_of`) written in the formats training tools load:

- :func:`imagefolder_zip`: a zip of one folder per class (``none/`` for none of the ten), as torchvision's and
  Keras' ``ImageFolder`` readers take it;
- :func:`hf_folder`: the photos beside a ``metadata.csv`` (``file_name``, ``label``, the label before review, who
  decided and when, ``left_out``: why a reviewer left the photo out, empty for the others), which Hugging Face
  ``datasets`` loads with ``load_dataset("imagefolder", data_dir=...)``.

Only the data set's own photos go in, each once, under a name made of its key (``cat/001.jpg`` becomes
``cat__001.jpg``: the folders of the source layout never collide, and never read as class folders); photos without a
usable label (unlabelled, the classifier's own, a name that is no class) are left out and counted. A photo a
reviewer left out is not in the ImageFolder zip (it has no class folder); the ``datasets`` folder keeps it, without
a label and with its reason, so whoever loads it sees what was set aside and why.
"""

import csv
import shutil
import time
import zipfile
from pathlib import Path

from classifier.classes import CLASSES, NONE

from .labelset import labels_of


def _photos(store, dataset, source, left_out=False):
    """``(label set, [(row, label, flat file name)])`` for the photos with a class or none label (and with
    ``left_out``, those a reviewer left out, their label None)."""
    labels = labels_of(store, dataset, source)
    rows = store.state(dataset=labels.dataset)
    out = []
    for row in sorted(rows, key=lambda r: r["key"]):
        label = labels.labels.get(row["key"])
        if label in CLASSES or label == NONE or (left_out and row["key"] in labels.left_out):
            out.append((row, label, row["path"].replace("/", "__")))
    return labels, out


def imagefolder_zip(store, dataset, path, source: str | None = None) -> dict:
    """Write ``path`` (a .zip): ``<class>/<photo>`` for every labelled photo of ``dataset``; returns the counts."""
    labels, photos = _photos(store, dataset, source)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:  # photos are compressed already
        for row, label, name in photos:
            zf.write(row["file"], f"{label}/{name}")
    return {**labels.summary(), "written": len(photos), "left_out": labels.photos - len(photos)}


def hf_folder(store, dataset, folder, source: str | None = None) -> dict:
    """Write ``folder``: the labelled photos of ``dataset`` and a ``metadata.csv`` for Hugging Face ``datasets``
    (``load_dataset("imagefolder", data_dir=folder)``); returns the counts."""
    labels, photos = _photos(store, dataset, source, left_out=True)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    decided = store.decision_times()
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "label", "label_before_review", "decided_by", "decided_at", "key", "left_out"])
        for row, label, name in photos:
            shutil.copyfile(row["file"], folder / name)
            at = decided.get(row["id"]) if row["human_label"] is not None else None
            writer.writerow([name, label or "", labels.before.get(row["key"], ""), row["reviewer"] or "",
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)) if at else "", row["key"],
                             labels.left_out.get(row["key"], "")])
    return {**labels.summary(), "written": len(photos), "left_out": labels.photos - len(photos)}
