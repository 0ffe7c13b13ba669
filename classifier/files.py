"""File helpers every package uses: list the images of a folder, sort keys as people do, write atomically, keep a
folder where it outlives the host and bring it back."""

import os
import shutil
import threading
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
    """Write a text file so that readers (the app, a watching tab) never see half of it, nor two writers' halves (each
    writes its own temporary file)."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, path)


COMPLETE = ".complete"  # written last into a kept copy: the copy is whole


def keep_copy(folder: str | Path, target: str | Path) -> bool:
    """Copy ``folder``'s files to ``target`` once, as object storage mounted as a folder takes them: each file created
    new (never appended to, rewritten or renamed over, no locks), :data:`COMPLETE` last. Returns False when
    ``target`` is complete already (nothing written)."""
    folder, target = Path(folder), Path(target)
    if (target / COMPLETE).exists():
        return False
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        out = target / path.relative_to(folder)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists():  # a copy a crash interrupted goes on where it stopped
            with open(path, "rb") as src, open(out, "xb") as dst:
                shutil.copyfileobj(src, dst)
    (target / COMPLETE).open("x").close()
    return True


def restore_copies(kept: str | Path, target: str | Path, staging: str | Path) -> list[str]:
    """Copy back every complete folder under ``kept`` that ``target`` lacks, each whole: copied under ``staging``
    (on the same disk as ``target``), then renamed into place, so a reader lists it only once it is all there.
    Returns their names."""
    restored = []
    for done in sorted(Path(kept).glob(f"*/{COMPLETE}")):
        name = done.parent.name
        if (Path(target) / name).exists():
            continue
        part = Path(staging) / name
        shutil.rmtree(part, ignore_errors=True)
        shutil.copytree(done.parent, part, ignore=shutil.ignore_patterns(COMPLETE))
        Path(target).mkdir(parents=True, exist_ok=True)
        part.rename(Path(target) / name)
        restored.append(name)
    return restored
