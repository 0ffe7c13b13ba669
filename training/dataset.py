"""tf.data pipelines over photo files, decoded in parallel by the one shared decode."""

import numpy as np
import tensorflow as tf

from classifier.classes import CLASSES
from classifier.images import decode


def image_dataset(paths, labels, size, batch_size, augmenter=None, shuffle=False, seed=0):
    """Batches of ``(pixels float32 0-255, label index)`` (-1: none of the ten); ``augmenter`` (training only) sees
    each photo anew every epoch. Files must be readable (the feature-caching phase has already dropped the
    unreadable ones)."""
    ds = tf.data.Dataset.from_tensor_slices((list(map(str, paths)), np.asarray(labels, np.int32)))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)

    def load(path, label):
        x = decode(path.decode(), size)
        return augmenter(x, CLASSES[label] if label >= 0 else "none") if augmenter else x

    def tf_load(path, label):
        x = tf.numpy_function(load, [path, label], tf.float32)
        return tf.ensure_shape(x, (size, size, 3)), label

    return ds.map(tf_load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)
