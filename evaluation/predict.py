"""Batch prediction over a folder, written as the original project's ``predictions.json`` (+ a CSV)."""

import csv
import json
import os
from pathlib import Path

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


def write_predictions(probs, classes, json_path, csv_path=None):
    """Write ``{key: top-1 class}`` as JSON and, optionally, one CSV row of probabilities per image."""
    top1 = {key: classes[int(row.argmax())] for key, row in probs.items()}
    _atomic_write(json_path, json.dumps(top1, ensure_ascii=False, indent=1))
    if csv_path:
        tmp = f"{csv_path}.tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["key", *classes])
            writer.writerows([key, *(f"{p:.6f}" for p in row)] for key, row in probs.items())
        os.replace(tmp, csv_path)
    return top1


def _atomic_write(path, text):
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, path)
