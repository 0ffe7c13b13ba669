"""The classifier: a backbone plus the original project's dense head, saved, loaded and run in one way.

Two file forms load the same way with :func:`load_model`:

- ``.keras``: the whole model (training runs write these); loads in safe mode with ``compile=False``.
- ``.npz`` (compact): only the weights that differ from the packaged ImageNet backbone, plus metadata. The
  default model in ``assets/`` uses it to stay far below 10 MB, so a Space needs no Git LFS.

Metadata (name, backbone, measured accuracy...) is a dict kept inside the ``.npz`` or in a ``.json`` file
beside a ``.keras`` file.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .backbones import DEFAULT_BACKBONE, build_backbone, inference_backbone
from .classes import CLASSES
from .images import ImageError, decode

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "model" / "default.npz"


def build_classifier(backbone=DEFAULT_BACKBONE, weights="imagenet", num_classes=len(CLASSES)):
    """Backbone + head: GAP, Dropout 0.5, Dense 512 swish, BatchNorm, Dropout 0.3, Dense 256 swish, softmax.

    The backbone is a nested model named after it and always runs in inference mode, so its BatchNorm
    statistics never change, also when some of its layers are fine-tuned later.
    """
    base = build_backbone(backbone, weights=weights)
    inputs = keras.Input(base.input_shape[1:], name="image")
    features = base(inputs, training=False)
    pooled = layers.GlobalAveragePooling2D(name="avg_pool")(features)
    outputs = build_head(pooled.shape[-1], num_classes)(pooled)
    return keras.Model(inputs, outputs, name=f"{backbone}_animals10")


def build_head(feature_dim, num_classes=len(CLASSES)):
    """The dense head on pooled backbone features (its own model, so it can train on cached features)."""
    return keras.Sequential([
        keras.Input((feature_dim,), name="features"),
        layers.Dropout(0.5, name="dropout_1"),
        layers.Dense(512, activation="swish", name="dense_512"),
        layers.BatchNormalization(name="bn"),
        layers.Dropout(0.3, name="dropout_2"),
        layers.Dense(256, activation="swish", name="dense_256"),
        layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities"),
    ], name="head")


def backbone_of(model):
    """The nested backbone model inside a classifier built by :func:`build_classifier`."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != "head")


def inference_model(model):
    """A prediction-only copy of a classifier (or of its feature part) with a faster backbone.

    The backbone's BatchNorms are folded into its convolutions (~1.5x the throughput on CPU); the layers after
    the backbone (pooling, head) are shared, not copied.
    """
    base = backbone_of(model)
    assert model.layers[1] is base, "expects input -> backbone -> ... as build_classifier makes"
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inference_backbone(base)(inputs)
    for layer in model.layers[2:]:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name + "_inference")


def save_compact(model, path, meta, dtype="float32"):
    """Save only what differs from the packaged ImageNet backbone, plus ``meta``; returns the stored names.

    Variables are matched by position (a loaded ``.keras`` model names them differently from a fresh build) and
    stored under the fresh build's names, which :func:`load_model` assigns by. ``dtype="float16"`` halves the file
    for models whose fine-tuned backbone blocks would not fit under 10 MB (measure the stored model afterwards).
    """
    reference = build_classifier(meta["backbone"], weights="imagenet").weights
    if len(reference) != len(model.weights):
        raise ValueError("the model's layout differs from build_classifier's; save it as .keras instead")
    arrays = {}
    for var, ref in zip(model.weights, reference):
        value, base = keras.ops.convert_to_numpy(var), keras.ops.convert_to_numpy(ref)
        if value.shape != base.shape:
            raise ValueError(f"shape mismatch at {ref.path}: {value.shape} vs {base.shape}")
        if not np.array_equal(value, base):
            arrays[ref.path] = value.astype(dtype) if value.dtype == np.float32 else value
    np.savez_compressed(path, __meta__=json.dumps(meta), **arrays)
    return sorted(arrays)


def load_model(path=None):
    """Load a ``.keras`` or compact ``.npz`` classifier; return ``(keras_model, meta)``."""
    path = Path(path or DEFAULT_MODEL)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            model = build_classifier(meta["backbone"], weights="imagenet")
            by_path = {v.path: v for v in model.weights}
            for key in data.files:
                if key != "__meta__":
                    by_path[key].assign(data[key].astype(by_path[key].dtype))
        return model, meta
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    meta.setdefault("name", path.stem)
    return model, meta


def calibration_path(model_path):
    """Where a model's calibration lives: ``calibration.json`` beside the model file."""
    return Path(model_path or DEFAULT_MODEL).with_name("calibration.json")


def read_calibration(model_path):
    """``{"temperature": T, "threshold": t, ...}`` fitted for the model, or None if it was never calibrated."""
    path = calibration_path(model_path)
    return json.loads(path.read_text()) if path.exists() else None


def apply_temperature(probs, temperature):
    """Soften (T > 1) or sharpen (T < 1) probabilities: softmax(log(p) / T)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


class Classifier:
    """A loaded model with its one prediction path (decode, batch, softmax probabilities).

    >>> clf = Classifier.load()                      # the default model
    >>> probs = clf.predict(["cat.jpg", pil_image])  # (2, 10) probabilities, rows in CLASSES order
    >>> clf.top_k(probs[0], 3)                       # [("cat", 0.97), ("dog", 0.02), ...]
    """

    def __init__(self, model, meta=None, path=None, calibration=None):
        self.model, self.meta, self.path = model, dict(meta or {}), path
        self.calibration = calibration or {}
        self.temperature = float(self.calibration.get("temperature", 1.0))
        self.threshold = self.calibration.get("threshold")  # calibrated "none of the 10" cut, if any
        self.size = model.input_shape[1]
        self.classes = tuple(self.meta.get("classes", CLASSES))
        fast = inference_model(model)
        # A traced function skips Keras' per-call overhead: model.predict costs ~60 ms a call on this CPU.
        self._forward = tf.function(lambda x: fast(x, training=False), reduce_retracing=True,
                                    input_signature=[tf.TensorSpec((None, self.size, self.size, 3), tf.float32)])

    @classmethod
    def load(cls, path=None):
        """Load :func:`load_model` output as a :class:`Classifier`."""
        model, meta = load_model(path)
        return cls(model, meta, str(path or DEFAULT_MODEL), read_calibration(path))

    @property
    def name(self):
        return self.meta.get("name") or (Path(self.path).stem if self.path else self.model.name)

    def predict(self, images, tta=False):
        """Probabilities for one image (PIL, path, bytes) -> ``(10,)``, or a list/array batch -> ``(n, 10)``.

        Raises :class:`~classifier.images.ImageError` if an image cannot be decoded.
        """
        single = not isinstance(images, (list, tuple, np.ndarray)) or (
            isinstance(images, np.ndarray) and images.ndim == 3)
        batch = [images] if single else images
        if not (isinstance(batch, np.ndarray) and batch.ndim == 4):
            batch = np.stack([decode(image, self.size) for image in batch]) if len(batch) else \
                np.zeros((0, self.size, self.size, 3), np.float32)
        probs = self.predict_pixels(batch, tta)
        return probs[0] if single else probs

    def predict_pixels(self, pixels, tta=False):
        """Probabilities for an already decoded float32 batch ``(n, size, size, 3)`` of 0-255 pixels.

        ``tta`` averages the probabilities of each photo and its mirror image. A fitted temperature (see
        ``python -m evaluation calibrate``) is applied.
        """
        if len(pixels) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        probs = self._forward(tf.convert_to_tensor(pixels, tf.float32)).numpy()
        if tta:
            probs = (probs + self._forward(tf.convert_to_tensor(pixels[:, :, ::-1], tf.float32)).numpy()) / 2
        return probs if self.temperature == 1.0 else apply_temperature(probs, self.temperature)

    def predict_files(self, paths, batch_size=32, workers=2, tta=False):
        """Stream ``(path, probabilities or ImageError)`` over many files with bounded memory.

        Images are decoded in a thread pool (PIL releases the GIL) one batch ahead of the model.
        """
        paths = list(paths)
        chunks = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
        with ThreadPoolExecutor(workers) as pool:
            ahead = [pool.submit(self._try_decode, p) for p in chunks[0]] if chunks else []
            for i, chunk in enumerate(chunks):
                current = ahead
                ahead = [pool.submit(self._try_decode, p) for p in chunks[i + 1]] if i + 1 < len(chunks) else []
                decoded = [f.result() for f in current]
                good = [d for d in decoded if not isinstance(d, ImageError)]
                probs = iter(self.predict_pixels(np.stack(good), tta) if good else [])
                for path, d in zip(chunk, decoded):
                    yield path, (d if isinstance(d, ImageError) else next(probs))

    def top_k(self, probs, k=5):
        """The ``k`` most likely ``(class_id, probability)`` pairs, best first."""
        order = np.argsort(probs)[::-1][:k]
        return [(self.classes[i], float(probs[i])) for i in order]

    def _try_decode(self, path):
        try:
            return decode(path, self.size)
        except ImageError as e:
            return e

