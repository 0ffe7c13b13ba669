"""A model's pooled backbone features of photos: what the probe trains on (one decode for a photo and its mirror
image). A loaded model gives the same with its probabilities (:meth:`classifier.predictor.Classifier.features`):
what near-copies, leaks and label suspects are found with."""

import keras
import numpy as np

from .predictor import Classifier


def feature_model(classifier_model):
    """The part of a classifier from pixels to pooled backbone features."""
    return keras.Model(classifier_model.input, classifier_model.get_layer("avg_pool").output)


def extract_features(classifier_model, paths, batch_size=32, progress=None, mirror=False):
    """Pooled features of a Keras classifier for ``paths`` (its feature part only: training runs it, under mixed
    precision on a GPU); returns ``(features, ok_mask, errors)``, skipping unreadable files. With ``mirror``, each
    row is the photo's features followed by its mirror image's (twice as wide, from one decode)."""
    extractor = Classifier.from_keras(feature_model(classifier_model))
    engine = extractor.engine

    def with_mirror(pixels):
        return np.concatenate([engine(pixels), engine(np.ascontiguousarray(pixels[:, :, ::-1]))], axis=1)

    features, errors = extractor.predict_paths(paths, progress, batch_size, run=with_mirror if mirror else None)
    dim = classifier_model.get_layer("avg_pool").output.shape[-1] * (2 if mirror else 1)
    ok = np.array([p in features for p in paths], bool)
    rows = [features[p] for p in paths if p in features]
    return np.array(rows, np.float32).reshape(-1, dim), ok, list(errors.items())
