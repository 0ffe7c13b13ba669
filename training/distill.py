"""Knowledge distillation: the model learns from earlier models' answers as well as from the labels.

An ensemble of models (say a fine-tuned EfficientNet-Lite0 and a Lite2) is more accurate than either, but costs
their sum at every prediction. Distillation moves much of that gain into one small model: each training view's
target becomes ``alpha * teachers' mean probabilities + (1 - alpha) * one-hot label``, which with cross-entropy is
the classic mixed distillation loss at temperature 1 (Hinton et al., 2015). The teachers see exactly the view the
student sees, resized to their own input size ("consistent teaching", Beyer et al., 2022). Validation loss stays
the plain label loss, so early stopping judges the student against the labels only.

Phase 1 (cached features) gets the teachers' probabilities once per cached view (training/pipeline.py); phase 2
streams new views, so :class:`Distiller` asks the teachers for each batch.
"""

import keras
from keras import layers, ops

from classifier.classes import CLASSES
from classifier.model import inference_model, load_model


def teacher_ensemble(paths, size):
    """One frozen model: pixels of ``size`` in, the mean class probabilities of the models at ``paths`` out."""
    inputs = keras.Input((size, size, 3), name="image")
    outputs = []
    for i, path in enumerate(paths):
        try:
            model, meta = load_model(path)
        except (OSError, ValueError) as e:  # Keras calls a corrupt .keras file "not found": name the teacher
            raise ValueError(f"teacher {path} could not be loaded as a model ({e}); pass a run's model.keras or "
                             "a compact .npz") from None
        if list(meta.get("classes", CLASSES)) != list(CLASSES):
            raise ValueError(f"teacher {path} predicts other classes: {meta.get('classes')}")
        model = inference_model(model)  # BatchNorm folded: the teachers only ever predict
        model = keras.Model(model.input, model.output, name=f"teacher_{i}")  # unique names in the ensemble
        model.trainable = False
        own = model.input_shape[1]
        x = inputs if own == size else layers.Resizing(own, own, name=f"resize_{i}")(inputs)
        outputs.append(model(x, training=False))
    out = outputs[0] if len(outputs) == 1 else layers.Average(name="mean")(outputs)
    teacher = keras.Model(inputs, out, name="teacher")
    teacher.trainable = False
    return teacher


class Distiller(keras.Model):
    """Trains ``student`` on targets mixed from ``teacher``'s probabilities and the labels (weight ``alpha``).

    Compile it with ``categorical_crossentropy``; the targets it is given are already probabilities (one-hot,
    or uniform for a photo of none of the ten), weighted per photo.
    """

    def __init__(self, student, teacher, alpha=0.7, **kwargs):
        super().__init__(**kwargs)
        self.student, self.teacher, self.alpha = student, teacher, float(alpha)

    def call(self, x, training=None):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        target = y
        if training:
            soft = ops.stop_gradient(self.teacher(x, training=False))
            target = self.alpha * ops.cast(soft, target.dtype) + (1.0 - self.alpha) * target
        return super().compute_loss(x, target, y_pred, sample_weight, training)
