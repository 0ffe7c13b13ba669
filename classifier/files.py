"""File helpers every package uses: list the images of a folder, sort keys as people do, write atomically."""

import os
from pathlib import Path

from .images import is_image_file


def list_images(images_dir: str | Path) -> list[tuple[str, str]]:
    """``[(key, path)]`` for every image under ``images_dir``, sorted by key.

    The key is the path relative to ``images_dir`` without its extension: ``cat/001`` for class folders,
    ``17`` for the original flat ``testdata/17.jpg``.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    files = (p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    return sorted((p.relative_to(root).with_suffix("").as_posix(), str(p)) for p in files)


def natural_key(key: str) -> tuple:
    """Sort "2" before "10" (the original file's keys are numbers)."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def write_atomic(path: str | Path, text: str) -> None:
    """Write a text file so that readers (the app, a watching tab) never see half of it."""
    tmp = f"{path}.tmp"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, path)
