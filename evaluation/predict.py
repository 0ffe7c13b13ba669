"""Batch prediction over a folder, written as the original project's ``predictions.json`` (+ a CSV)."""

import csv
import json
import os

from classifier.classes import NONE
from classifier.files import list_images, natural_key, write_atomic


def predict_folder(classifier, images_dir, batch_size: int = 32, progress=None) -> tuple[dict, dict]:
    """Predict every image under ``images_dir``.

    Returns ``(probabilities, errors)``: ``{key: probability row}`` and ``{key: message}`` for unreadable files.
    ``progress(done, total)`` is called after each image.
    """
    items = list_images(images_dir)
    keys = {path: key for key, path in items}
    probs, errors = classifier.predict_paths([p for _, p in items], progress, batch_size)
    return {keys[p]: row for p, row in probs.items()}, {keys[p]: message for p, message in errors.items()}


def write_predictions(top1: dict[str, str], path) -> None:
    """Write ``{key: class id}`` in the original ``predictions.json`` format ("none of the 10" as ``"null"``)."""
    data = {k: ("null" if v == NONE else v) for k, v in sorted(top1.items(), key=lambda kv: natural_key(kv[0]))}
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1))


def write_probabilities(probs: dict, classes, path) -> None:
    """Write one CSV row per image: key, then one probability column per class."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", *classes])
        writer.writerows([key, *(f"{p:.6f}" for p in row)] for key, row in sorted(probs.items(),
                                                                                     key=lambda kv: natural_key(kv[0])))
    os.replace(tmp, path)
