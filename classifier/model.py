"""The Keras classifier: a backbone plus a head, built, saved and loaded in one way.

Two heads: ``dense`` (the original project's, trained by gradient descent, then fine-tuned with the backbone) and
``linear`` (a linear probe: one softmax layer over the ten classes and "none of the ten", fitted by logistic
regression on the frozen backbone's features; its none column is folded away by a fixed selection layer, so the
model still gives ten probabilities, which sum to less than one on a photo of none of them).

Two file forms load the same way with :func:`load_model`:

- ``.keras``: the whole model (training runs write these); loads in safe mode with ``compile=False``.
- ``.npz`` (compact): only the weights that differ from the packaged ImageNet backbone, plus metadata. The
  default model in ``assets/`` uses it to stay far below 10 MB, so a Space needs no Git LFS.

Metadata (name, backbone, input size, head, measured accuracy...) is a dict kept inside the ``.npz`` or in a
``.json`` file beside a ``.keras`` file. Predicting is :class:`classifier.predictor.Classifier`'s job (LiteRT or Keras).
"""

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers

from .backbones import DEFAULT_BACKBONE, build_backbone, inference_backbone
from .classes import CLASSES
from .modelfile import DEFAULT_MODEL, META_KEY, model_meta, npz_meta

HEADS = ("dense", "linear")


def build_classifier(backbone=DEFAULT_BACKBONE, weights="imagenet", num_classes=len(CLASSES), size=None,
                     head="dense"):
    """Backbone + global average pooling + ``head`` (:func:`build_head`).

    The backbone is a nested model named after it and always runs in inference mode, so its BatchNorm
    statistics never change, also when some of its layers are fine-tuned later. ``size``: the input size in
    pixels (default: the backbone's own).
    """
    base = build_backbone(backbone, weights=weights, size=size)
    inputs = keras.Input(base.input_shape[1:], name="image")
    features = base(inputs, training=False)
    pooled = layers.GlobalAveragePooling2D(name="avg_pool")(features)
    outputs = build_head(pooled.shape[-1], num_classes, head)(pooled)
    return keras.Model(inputs, outputs, name=f"{backbone}_animals10")


def build_head(feature_dim, num_classes=len(CLASSES), kind="dense"):
    """The head on pooled backbone features (its own model, so it can train on cached features).

    ``dense``: Dropout 0.5, Dense 512 swish, BatchNorm, Dropout 0.3, Dense 256 swish, softmax. ``linear``: softmax
    over ``num_classes + 1`` (the last is none of them), then a fixed layer that keeps the first ``num_classes``
    columns (plain Keras layers, so the model loads in safe mode and converts to TFLite as it is).
    """
    if kind == "linear":
        return keras.Sequential([
            keras.Input((feature_dim,), name="features"),
            layers.Dense(num_classes + 1, activation="softmax", dtype="float32", name="probabilities_and_none"),
            layers.Dense(num_classes, use_bias=False, trainable=False, dtype="float32", name="probabilities",
                         kernel_initializer=keras.initializers.Identity()),  # eye(n + 1, n): drops none
        ], name="head")
    if kind != "dense":
        raise ValueError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")
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


def inference_model(model, features: bool = False):
    """A prediction-only copy of a classifier (or of its feature part) with a faster backbone.

    The backbone's BatchNorms are folded into its convolutions (~1.5x the throughput on CPU); the layers after
    the backbone (pooling, head) are shared, not copied. With ``features``, its outputs are named, one pass giving
    them all (what the served ``.tflite`` carries, so the review's curation and Grad-CAM need no TensorFlow):
    ``probabilities``; ``features``, the pooled backbone features; and for a linear head ``cams``, each class's
    Grad-CAM map (:class:`LinearCams`).
    """
    base = backbone_of(model)
    assert model.layers[1] is base, "expects input -> backbone -> ... as build_classifier makes"
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = pooled = feature_map = inference_backbone(base)(inputs)
    for layer in model.layers[2:]:
        x = layer(x)
        if layer.name == "avg_pool":
            pooled = x
    if not features:
        return keras.Model(inputs, x, name=model.name + "_inference")
    outputs = {"probabilities": x, "features": pooled}
    head = next((layer for layer in model.layers if layer.name == "head"), None)
    if head is not None and [layer.name for layer in head.layers] == ["probabilities_and_none", "probabilities"]:
        outputs["cams"] = LinearCams(head.layers[0], x.shape[-1])(feature_map, pooled)
    return keras.Model(inputs, outputs, name=model.name + "_inference")


class LinearCams(layers.Layer):
    """Grad-CAM of each class for a linear head, in closed form, so a model without gradients (LiteRT) gives it.

    Grad-CAM (:mod:`classifier.heatmap`) weighs the backbone's last feature map by the gradient of the class's
    log-probability with respect to the pooled features. For a softmax layer ``p = softmax(f W + b)`` over the ten
    classes and none, that gradient is ``W[:, c] - W p``: the map for class ``c`` is ``relu(A (W[:, c] - W p))``.
    Returns ``(n, h, w, classes)``, unscaled.
    """

    def __init__(self, softmax_layer, classes: int, **kwargs):
        super().__init__(name="cams", dtype="float32", **kwargs)  # float32 under mixed precision too (a GPU's)
        self.softmax_layer, self.classes = softmax_layer, classes

    def call(self, feature_map, pooled):
        kernel = self.softmax_layer.kernel
        mean = keras.ops.matmul(self.softmax_layer(pooled), keras.ops.transpose(kernel))  # W p, per photo
        weights = kernel[None, :, : self.classes] - mean[:, :, None]
        return keras.ops.relu(keras.ops.einsum("bhwd,bdc->bhwc", feature_map, weights))


def save_compact(model, path, meta, dtype="float32"):
    """Save only what differs from the packaged ImageNet backbone, plus ``meta``; returns the stored names.

    Variables are matched by position (a loaded ``.keras`` model names them differently from a fresh build) and
    stored under the fresh build's names, which :func:`load_model` assigns by. ``dtype="float16"`` halves the file
    for models whose fine-tuned backbone blocks would not fit under 10 MB (measure the stored model afterwards).
    """
    reference = _reference(meta).weights
    if len(reference) != len(model.weights):
        raise ValueError("the model's layout differs from build_classifier's; save it as .keras instead")
    arrays = {}
    for var, ref in zip(model.weights, reference):
        value, base = keras.ops.convert_to_numpy(var), keras.ops.convert_to_numpy(ref)
        if value.shape != base.shape:
            raise ValueError(f"shape mismatch at {ref.path}: {value.shape} vs {base.shape}")
        if not np.array_equal(value, base):
            arrays[ref.path] = value.astype(dtype) if value.dtype == np.float32 else value
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # a missing folder is no reason to lose a run
    np.savez_compressed(path, **{META_KEY: json.dumps(meta)}, **arrays)
    return sorted(arrays)


def load_model(path=None):
    """Load a ``.keras`` or compact ``.npz`` classifier; return ``(keras_model, meta)``."""
    path = Path(path or DEFAULT_MODEL)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            meta = npz_meta(data)
            model = _reference(meta)
            by_path = {v.path: v for v in model.weights}
            for key in data.files:
                if key != META_KEY:
                    by_path[key].assign(data[key].astype(by_path[key].dtype))
        return model, meta
    return keras.saving.load_model(path, compile=False, safe_mode=True), model_meta(path)


def _reference(meta):
    """A fresh ImageNet build of the layout ``meta`` describes (backbone, input size, head)."""
    return build_classifier(meta["backbone"], weights="imagenet", size=meta.get("size"),
                            head=meta.get("head", "dense"))
