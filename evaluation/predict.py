"""Batch prediction over a folder, written as the original project's ``predictions.json`` (+ a CSV)."""

import csv
import json
import os
from pathlib import Path

from classifier.classes import NONE
from classifier.images import ImageError, is_image_file


def list_images(images_dir):
    """``[(key, path)]`` for every image under ``images_dir``, sorted by key.

    The key is the path relative to ``images_dir`` without its extension: ``cat/001`` for class folders,
    ``17`` for the original flat ``testdata/17.jpg``.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = (p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    return sorted((p.relative_to(root).with_suffix("").as_posix(), str(p)) for p in files)


def predict_folder(classifier, images_dir, batch_size=32, progress=None):
    """Predict every image under ``images_dir``.

    Returns ``(probabilities, errors)``: ``{key: probability row}`` and ``{key: message}`` for unreadable files.
    ``progress(done, total)`` is called after each image.
    """
    items = list_images(images_dir)
    keys = {path: key for key, path in items}
    probs, errors = {}, {}
    for i, (path, out) in enumerate(classifier.predict_files([p for _, p in items], batch_size)):
        if isinstance(out, ImageError):
            errors[keys[path]] = str(out)
        else:
            probs[keys[path]] = out
        if progress:
            progress(i + 1, len(items))
    return probs, errors


def write_predictions(top1, path):
    """Write ``{key: class id}`` in the original ``predictions.json`` format ("none of the 10" as ``"null"``)."""
    data = {k: ("null" if v == NONE else v) for k, v in sorted(top1.items(), key=lambda kv: natural_key(kv[0]))}
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=1))


def write_probabilities(probs, classes, path):
    """Write one CSV row per image: key, then one probability column per class."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", *classes])
        writer.writerows([key, *(f"{p:.6f}" for p in row)] for key, row in sorted(probs.items(),
                                                                                     key=lambda kv: natural_key(kv[0])))
    os.replace(tmp, path)


def natural_key(key):
    """Sort "2" before "10" (the original file's keys are numbers)."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def write_atomic(path, text):
    """Write a text file so that readers (the app, a watching tab) never see half of it."""
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, path)
