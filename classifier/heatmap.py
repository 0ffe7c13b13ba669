"""Where the model looked: Grad-CAM heatmaps for one class over one photo.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of the backbone's last feature map by the gradient of the
class's score with respect to it, sums, and keeps the positive part; the score here is the class's log-probability
(the class against the others: the other nine, and none of the ten for a linear head). In this model the head sees the
feature map only through global average pooling, so that gradient is the same at every position: it is the
gradient with respect to the pooled features, divided by the map's size. The heatmap therefore costs one backbone
pass plus a gradient through the small head, not through the backbone.

For a linear head (the default's) that gradient has a closed form, which the served ``.tflite`` computes in its own
pass (:class:`classifier.model.LinearCams`): :class:`ServedExplainer` draws the heatmap from it, without TensorFlow.
For any other head, :class:`Explainer` loads the served file (``.npz`` or ``.keras``) as a Keras model, since LiteRT
has no gradients; its backbone runs with its BatchNorms folded (as the Keras engine does). Both give the unfolded
Keras model's heatmap to a tolerance (tested).
"""

import numpy as np
from PIL import Image

from .classes import CLASSES, TOP_K
from .images import decode, thumbnail


class Explainer:
    """Grad-CAM for a classifier built by :func:`classifier.model.build_classifier`.

    >>> explainer = Explainer.load("assets/model/default.npz")
    >>> cam = explainer.heatmap(pixels, "cat")   # (h, w) in [0, 1] over the feature map's grid
    """

    def __init__(self, model, classes=CLASSES, fused: bool = True):
        import keras
        import tensorflow as tf

        from .model import backbone_of, inference_backbone

        base = backbone_of(model)
        self.backbone = inference_backbone(base) if fused else base
        self.head = model.get_layer("head")
        self.size = model.input_shape[1]
        self.classes = tuple(classes)
        n = len(self.classes)
        # the head up to its softmax layer, then the class logits themselves (before the softmax); a linear head's
        # softmax layer has an 11th column, none of the ten, which the layer after it drops (so do the scores here)
        at = max(i for i, layer in enumerate(self.head.layers)
                 if getattr(layer, "activation", None) is keras.activations.softmax)
        dense, hidden = self.head.layers[at], self.head.layers[:at]

        def logits(pooled):
            x = pooled
            for layer in hidden:
                x = layer(x, training=False)
            return tf.matmul(x, dense.kernel) + dense.bias

        def explain(pixels, index):
            features = self.backbone(pixels, training=False)
            pooled = tf.reduce_mean(features, axis=(1, 2))
            with tf.GradientTape() as tape:
                tape.watch(pooled)
                scores = logits(pooled)
                top = tf.argmax(scores[:, :n], axis=1, output_type=tf.int32)
                index = tf.where(index < 0, top, index)  # -1: the top class
                score = tf.gather(tf.nn.log_softmax(scores), index, axis=1, batch_dims=1)
            weights = tape.gradient(score, pooled)  # (n, channels): the same at every position of the map
            return tf.nn.relu(tf.einsum("nhwc,nc->nhw", features, weights)), tf.nn.softmax(scores)[:, :n]

        self._explain = tf.function(explain, reduce_retracing=True, input_signature=[
            tf.TensorSpec((None, self.size, self.size, 3), tf.float32), tf.TensorSpec((None,), tf.int32)])

    @classmethod
    def load(cls, path=None, fused: bool = True) -> "Explainer":
        from .model import load_model

        model, meta = load_model(path)
        return cls(model, meta.get("classes") or CLASSES, fused)

    def heatmaps(self, pixels: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps ``(n, h, w)`` scaled to [0, 1] each, for a decoded batch ``(n, size, size, 3)`` of 0-255 pixels
        and one class per photo (an id, an index, or None for the model's top class); also the probabilities
        ``(n, 10)`` (before any temperature)."""
        index = np.asarray([-1 if c is None else c if isinstance(c, (int, np.integer)) else self.classes.index(c)
                            for c in classes], np.int32)
        cams, probs = self._explain(np.asarray(pixels, np.float32), index)
        cams, probs = np.asarray(cams), np.asarray(probs)
        peak = cams.reshape(len(cams), -1).max(1)[:, None, None]
        return np.divide(cams, peak, out=np.zeros_like(cams), where=peak > 0), probs

    def heatmap(self, pixels: np.ndarray, label=None) -> np.ndarray:
        """One photo's heatmap ``(h, w)`` in [0, 1] for class ``label`` (None: the model's top class)."""
        return self.heatmaps(np.asarray(pixels)[None], [label])[0][0]

    def explain(self, source, label=None, k: int = TOP_K, side: int = 640):
        """A photo (path, PIL image, bytes) with the heatmap for ``label`` laid over it (None: the model's top
        class); returns ``(picture, the class shown, the top-k classes best first)``. The heatmap covers the whole
        photo, as the model saw it (squeezed to a square), so it is stretched back over the photo's own shape."""
        cams, probs = self.heatmaps(decode(source, self.size)[None], [label])
        top = [self.classes[i] for i in np.argsort(probs[0])[::-1][:k]]
        shown = label if label is not None else top[0]
        return overlay(np.asarray(thumbnail(source, side), np.float32), cams[0]), shown, top


class ServedExplainer(Explainer):
    """Grad-CAM from the served :class:`~classifier.predictor.Classifier`'s own pass, for a model whose engine gives
    each class's map (``cams``: a linear head's closed form), so no TensorFlow is loaded. :func:`explainer` picks it
    where it can."""

    def __init__(self, classifier):
        self.engine, self.size, self.classes = classifier.engine, classifier.size, tuple(classifier.classes)

    def _explain(self, pixels, index):
        out = self.engine.run(pixels, ("cams", "probabilities"))
        probs = out["probabilities"]
        index = np.where(index < 0, probs.argmax(1), index)  # -1: the top class
        return out["cams"][np.arange(len(index)), :, :, index], probs


def explainer(classifier) -> Explainer:
    """The Grad-CAM explainer of a loaded classifier: from its own pass where its engine gives the class maps
    (:class:`ServedExplainer`), else its model file loaded in Keras (:class:`Explainer`)."""
    if "cams" in classifier.engine.outputs:
        return ServedExplainer(classifier)
    return Explainer.load(classifier.path)


def overlay(pixels: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The photo (0-255 pixels, ``(h, w, 3)``) with the heatmap laid over it in colour (matplotlib's inferno)."""
    from matplotlib import colormaps

    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    heat = Image.fromarray((cam * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BICUBIC)
    colour = (colormaps["inferno"](np.asarray(heat) / 255.0)[..., :3] * 255).astype(np.uint8)
    weight = (alpha * np.asarray(heat, np.float32) / 255.0)[..., None]  # cold parts stay the photo
    return Image.fromarray((np.asarray(image) * (1 - weight) + colour * weight).astype(np.uint8))
