"""The model in other hands: a ``.keras``/``.npz`` classifier as a float16 TFLite file and as an ONNX file.

Both take what the app's model takes, a batch of ``(n, size, size, 3)`` float32 RGB pixels in 0-255 (no scaling),
and give the ten probabilities in :data:`~classifier.classes.CLASSES` order, before any calibration temperature.
Their BatchNorms are folded into the convolutions, as in serving. Each is checked against the Keras model in the
tests (same top-1, probabilities within 1e-3).

    >>> from ai_edge_litert.interpreter import Interpreter          # TFLite
    >>> from onnxruntime import InferenceSession                     # ONNX
"""

import contextlib
import io
import json
import os
import shutil
import stat
import tempfile
import threading
from pathlib import Path

import numpy as np

from .backbones import DEFAULT_BACKBONE, input_size
from .classes import CLASSES
from .files import write_atomic
from .modelfile import DEFAULT_MODEL, content_hash, default_cache, model_meta, read_calibration, shipped_tflite

FORMATS = {"tflite": "float16.tflite", "onnx": "onnx"}  # format -> file suffix


def export(model_path=None, formats=tuple(FORMATS), cache_dir=None) -> dict[str, Path]:
    """``{format: file}`` for a model, converted once and cached under ``cache_dir`` (default: where the served
    ``.tflite`` files are) by the model file's content hash. Converting imports TensorFlow."""
    model_path = Path(model_path or DEFAULT_MODEL)
    digest = content_hash(model_path)
    folder = Path(cache_dir or default_cache())
    out = {f: folder / f"{model_path.stem}-{digest}.{FORMATS[f]}" for f in formats}
    missing = [f for f, path in out.items() if not path.exists()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        model = _inference_model(model_path)
        for f in missing:
            tmp = out[f].with_suffix(f".{os.getpid()}.tmp")  # another process may export the same model at once
            (_tflite16 if f == "tflite" else _onnx)(model, tmp)
            os.replace(tmp, out[f])
    return out


def bundle(model_path=None, cache_dir=None) -> list[str]:
    """The files a user downloads: both exports under the model's name and a ``<name>.json`` that says what they
    take and give (classes, input size, pixel range, the calibration temperature and threshold), in the temporary
    folder of that model file's content (never under ``DATA_DIR``, which the app does not serve): each download of
    the same model gives the same files, so downloads do not fill the disk."""
    model_path = Path(model_path or DEFAULT_MODEL)
    meta = model_meta(model_path)
    name = model_path.parent.name if model_path.stem == "model" else model_path.stem  # a run's model.keras
    base = _private(Path(tempfile.gettempdir()) / f"model-export-{os.getuid()}")
    folder = base / f"{name}-{content_hash(model_path)}"
    folder.mkdir(exist_ok=True)
    files = []
    for f, path in export(model_path, cache_dir=cache_dir).items():
        files.append(folder / f"{name}.{FORMATS[f]}")
        if not files[-1].exists() or files[-1].stat().st_size != path.stat().st_size:  # whole or absent, never half
            tmp = files[-1].with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            shutil.copy(path, tmp)
            os.replace(tmp, files[-1])
    calibration = read_calibration(model_path) or {}
    size = meta.get("size") or input_size(meta.get("backbone", DEFAULT_BACKBONE))
    output = "probabilities, before the calibration temperature"
    if meta.get("head") == "linear":
        output += ("; they sum to less than 1 where the photo looks like none of the ten (that share is the folded "
                   "11th class)")
    card = {"name": meta.get("name", name), "classes": list(meta.get("classes", CLASSES)),
            "input": {"shape": [None, size, size, 3], "dtype": "float32", "pixels": "RGB 0-255"},
            "output": output,
            "temperature": calibration.get("temperature", 1.0), "none_threshold": calibration.get("threshold")}
    files.append(folder / f"{name}.json")
    write_atomic(files[-1], json.dumps(card, indent=2))  # every time: its calibration may have changed
    return [str(f) for f in files]


def _private(folder: Path) -> Path:
    """``folder``, made for this user alone (0700) if missing; refused if it is a link or another user's (a shared
    ``/tmp``: nobody else may choose where the downloads are written)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{folder} is not a private folder of this user's; remove it")
    return folder


def bring_tflite(model_path) -> Path:
    """Convert a compact model once, beside it (:func:`~classifier.modelfile.shipped_tflite`), so that serving it
    imports no TensorFlow: float16, with the pooled features as a second output, which the review's curation reads
    (:meth:`classifier.predictor.Classifier.features`). An earlier model's conversion there is removed."""
    model_path = Path(model_path)
    for stale in model_path.parent.glob(f"{model_path.stem}-*.float16.tflite"):
        stale.unlink()
    out = shipped_tflite(model_path)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    _tflite16(_inference_model(model_path, features=True), tmp)
    os.replace(tmp, out)
    return out


def _inference_model(model_path, features=False):
    from .model import inference_model, load_model

    model, _ = load_model(model_path)
    fast = inference_model(model, features)
    fast(np.zeros((1, *model.input_shape[1:]), np.float32))  # built and called once: the exporters need it
    return fast


def _tflite16(model, path):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]  # weights stored in float16, half the file
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel's signature
        Path(path).write_bytes(converter.convert())


def _onnx(model, path):
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(path), format="onnx", verbose=False)  # Keras' own exporter (tf2onnx underneath)
