"""A model file as the app keeps it, without TensorFlow: where the default one is, its metadata, its calibration
and its content hash.

Two file forms: ``.npz`` (compact: the weights that differ from the packaged backbone, the metadata inside under
:data:`META_KEY`) and ``.keras`` (the whole model, its metadata in a ``.json`` beside it). A model's calibration
(temperature, "none of the 10" threshold) is ``calibration.json`` beside the file. Building and loading the Keras
model is :mod:`classifier.model`'s job; predicting is :mod:`classifier.predictor`'s.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from . import ASSETS

DEFAULT_MODEL = ASSETS / "model" / "default.npz"
META_KEY = "__meta__"  # the metadata's entry in a compact .npz


def calibration_path(model_path: str | Path | None) -> Path:
    """Where a model's calibration lives: ``calibration.json`` beside the model file."""
    return Path(model_path or DEFAULT_MODEL).with_name("calibration.json")


def read_calibration(model_path: str | Path | None) -> dict | None:
    """``{"temperature": T, "threshold": t, ...}`` fitted for the model, or None if it was never calibrated."""
    path = calibration_path(model_path)
    return json.loads(path.read_text()) if path.exists() else None


def write_calibration(model_path: str | Path, calibration: dict) -> Path:
    """Write a model's calibration where :func:`read_calibration` reads it; returns the file."""
    path = calibration_path(model_path)
    path.write_text(json.dumps(calibration, indent=2))
    return path


def meta_path(model_path: str | Path) -> Path:
    """Where a ``.keras`` model's metadata lives: the ``.json`` of the same name beside it (a ``.npz`` keeps its own
    inside, under :data:`META_KEY`)."""
    return Path(model_path).with_suffix(".json")


def write_meta(model_path: str | Path, meta: dict) -> Path:
    """Write a ``.keras`` model's metadata where :func:`model_meta` reads it; returns the file."""
    path = meta_path(model_path)
    path.write_text(json.dumps(meta, indent=2))
    return path


def npz_meta(data) -> dict:
    """The metadata stored in an open compact ``.npz`` (``np.load``'s result)."""
    return json.loads(str(data[META_KEY]))


def model_meta(path: str | Path) -> dict:
    """A model file's metadata without loading the model: inside a ``.npz``, or the ``.json`` beside a ``.keras``."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            meta = npz_meta(data)
    else:
        sidecar = meta_path(path)
        meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    meta.setdefault("name", path.stem)
    return meta


def trained_on(meta: dict) -> set[Path]:
    """The data folders a model was trained on (its metadata's ``trained_on``, which a training run writes);
    empty for the shipped default, trained on photos outside the app's data sets."""
    return {Path(p) for p in meta.get("trained_on", [])}


def shipped_tflite(model_path: str | Path, digest: str | None = None) -> Path:
    """Where a model file's own ``.tflite`` lies when it brings one: beside it, named by its content hash (so a
    changed model never meets a stale conversion; pass ``digest`` when it is known), in float16 (the default's stays
    under 10 MB, a Space's limit without Git LFS). ``python -m training --compact`` writes it; serving it needs no
    TensorFlow."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}-{digest or content_hash(path)}.float16.tflite")


def content_hash(path: str | Path) -> str:
    """A short hash of a model file's bytes: the key of everything made from it (its ``.tflite``, its exports), so a
    retrained file never meets a stale conversion."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]


def default_cache() -> Path:
    """Where converted models are kept: ``MODEL_CACHE``, else ``DATA_DIR/tflite`` (``./data/tflite``), as the app's
    settings say (this package cannot read them: it sits below them)."""
    return Path(os.environ.get("MODEL_CACHE") or Path(os.environ.get("DATA_DIR") or "data") / "tflite")
