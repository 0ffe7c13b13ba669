"""Phase 2: fine-tune the last K blocks of the backbone, BatchNorm frozen, after a recompile.

Keras 3 fixes a model's trainable variables when it is compiled: changing ``trainable`` without recompiling keeps
training only the phase-1 variables (one of the original project's bugs). BatchNormalization layers stay frozen
(their statistics fixed, inference mode): small fine-tuning batches would otherwise wreck the ImageNet statistics.
"""

import re

import keras

from classifier.model import backbone_of


def block_groups(backbone):
    """The backbone's blocks in order, as lists of layers; the final 1x1 "top" layers join the last block."""
    groups, order = {}, []
    for layer in backbone.layers:
        m = re.match(r"(block\w+?)_", layer.name)
        name = m.group(1) if m else ("top" if layer.name.startswith("top") else None)
        if name is None:
            continue
        if name not in groups:
            groups[name], _ = [], order.append(name)
        groups[name].append(layer)
    if "top" in groups and len(order) > 1:
        order.remove("top")
        groups[order[-1]] += groups.pop("top")
    return [groups[n] for n in order]


def unfreeze_last_blocks(model, k):
    """Make the last ``k`` blocks of the classifier's backbone trainable, every BatchNorm frozen; returns the
    names of the trainable backbone layers. Recompile the model afterwards."""
    base = backbone_of(model)
    base.trainable = True
    chosen = {layer.name for group in block_groups(base)[-k:] for layer in group} if k > 0 else set()
    for layer in base.layers:
        layer.trainable = layer.name in chosen and not isinstance(layer, keras.layers.BatchNormalization)
    return sorted(layer.name for layer in base.layers if layer.trainable and layer.weights)


def compile_for(model, learning_rate, jit_compile=False, soft=False):
    """(Re)compile ``model`` for training with Adam and cross-entropy on class indices, or (``soft``) on
    probability targets: one-hot or mixed with a teacher's, given or made by :class:`training.distill.Distiller`."""
    loss = "categorical_crossentropy" if soft else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"],
                  jit_compile=jit_compile)
