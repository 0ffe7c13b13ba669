"""Find labelled photos in class folders and split them reproducibly.

A data folder holds class folders named in English, Italian (Animals-10) or Chinese, either directly
(``DIR/cat/``) or one level down (``DIR/<source>/cat/``, as in ``shared/data/animals``). A none folder holds photos
of none of the ten in ``DIR/<source>/<category>/`` (as ``shared/data/none``) or ``DIR/<category>/``.
"""

import csv
from pathlib import Path

import numpy as np

from classifier.classes import CLASSES, NONE, to_class_id
from classifier.images import is_image_file


def discover(data_dirs, labels: dict | None = None) -> list[dict]:
    """Return a list of ``{"path", "key", "label", "source"}`` for every image under ``data_dirs``; a folder with a
    ``results.json`` is labelled by it (photos labelled none or another name are left out). With ``labels``
    (``{key: label}``, keys as results.json's: the reviewed labels of a data set, :mod:`labeling.labelset`), every
    folder is labelled by those instead.

    ``key`` is the path relative to its data folder, the stable id used by split files. Raises ``ValueError``
    naming a class-level folder that maps to no class.
    """
    items = []
    for root in map(Path, data_dirs):
        if not root.is_dir():
            raise ValueError(f"data folder {root} does not exist")
        if labels is not None:
            items += _labelled_by(root, labels)
            continue
        if (root / "results.json").exists():
            items += _labelled_by_file(root)
            continue
        for class_dir, source in _class_dirs(root):
            label = to_class_id(class_dir.name)
            if label in (None, NONE):
                raise ValueError(f"folder {class_dir} is not one of the 10 classes ({', '.join(CLASSES)}; "
                                 "Italian Animals-10 names work too). Rename or remove it.")
            for path in sorted(class_dir.rglob("*")):
                if path.is_file() and is_image_file(path):
                    items.append({"path": str(path), "key": path.relative_to(root).as_posix(),
                                  "label": label, "source": source})
    return items


def _labelled_by_file(root):
    """The photos of a folder labelled by its results.json (the original flat layout), those of the ten only."""
    from classifier.labels import read_labels

    return _labelled_by(root, read_labels(root / "results.json"))


def _labelled_by(root, labels: dict):
    """The photos of a folder labelled by ``{key: label}``, those of the ten only."""
    from classifier.files import list_images
    from classifier.labels import match

    images = dict(list_images(root))
    labels, _, _ = match(list(images), labels)
    return [{"path": images[k], "key": Path(images[k]).relative_to(root).as_posix(), "label": label,
             "source": root.name} for k, label in labels.items() if label in CLASSES]


def discover_none(none_dirs) -> list[dict]:
    """``{"path", "key", "label": NONE, "source", "category"}`` for every photo under ``none_dirs``.

    ``key`` is ``none/`` + the path relative to its none folder (as split files name them). A category is the folder
    under the source; in ``imagenet_sample``, where each file is its own ImageNet class, the file.
    """
    items = []
    for root in map(Path, none_dirs):
        if not root.is_dir():
            raise ValueError(f"none folder {root} does not exist")
        files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
        nested = any(len(p.relative_to(root).parts) > 2 for p in files)  # DIR/<source>/<category>/<file>
        for path in files:
            parts = path.relative_to(root).parts
            source, rest = (parts[0], parts[1:]) if nested else (root.name, parts)
            category = "/".join(rest) if source == "imagenet_sample" or len(rest) == 1 else rest[0]
            items.append({"path": str(path), "key": "none/" + path.relative_to(root).as_posix(), "label": NONE,
                          "source": source, "category": f"{source}/{category}"})
    return items


def category_split(items: list[dict], fractions: dict[str, float], seed: int = 0) -> dict[str, str]:
    """Whole none categories to one split each (a seeded draw per source), so a split can hold kinds of things
    no other split has. Returns ``{key: split}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for source in sorted({it["source"] for it in items}):
        mine = [it for it in items if it["source"] == source]
        categories = sorted({it["category"] for it in mine})
        order = [categories[i] for i in rng.permutation(len(categories))]
        bounds = np.round(np.cumsum(list(fractions.values())) * len(order)).astype(int)
        chosen = {}
        for name, start, stop in zip(fractions, [0, *bounds[:-1]], bounds):
            chosen.update({c: name for c in order[start:stop]})
        out.update({it["key"]: chosen[it["category"]] for it in mine})
    return out


def _class_dirs(root):
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if any(to_class_id(d.name) not in (None, NONE) for d in subdirs):
        return [(d, root.name) for d in subdirs]
    return [(c, d.name) for d in subdirs for c in sorted(x for x in d.iterdir() if x.is_dir())]


def stratified_split(items: list[dict], fractions: dict[str, float], seed: int = 0,
                     exclude_sources=()) -> dict[str, str]:
    """Assign each item a split name, stratified by label: ``fractions`` maps split name -> share.

    Items from ``exclude_sources`` (e.g. photos the ImageNet backbone may have seen) go to the first split only.
    Returns ``{key: split}``.
    """
    names = list(fractions)
    rng = np.random.default_rng(seed)
    out = {it["key"]: names[0] for it in items if it["source"] in exclude_sources}
    for label in CLASSES:
        keys = sorted(it["key"] for it in items if it["label"] == label and it["source"] not in exclude_sources)
        keys = [keys[i] for i in rng.permutation(len(keys))]
        bounds = np.round(np.cumsum([fractions[n] for n in names]) * len(keys)).astype(int)
        for name, start, stop in zip(names, [0, *bounds[:-1]], bounds):
            out.update({k: name for k in keys[start:stop]})
    return out


def write_split(split: dict[str, str], path) -> None:
    """Write ``{key: split}`` as a CSV with columns ``path,split``."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "split"])
        writer.writerows(sorted(split.items()))


SPLITS = ("train", "val", "test")


def read_split(path) -> dict[str, str]:
    """Read a split CSV written by :func:`write_split`; returns ``{key: split}``.

    Raises ``ValueError`` for a file that is not one (missing columns, a split other than train/val/test).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "split"} <= set(reader.fieldnames or ()):
            raise ValueError(f"split file {path} needs the columns path,split (as a run's split.csv has); "
                             f"its header is {reader.fieldnames}")
        split = {row["path"]: row["split"] for row in reader}
    wrong = sorted({s for s in split.values() if s not in SPLITS})
    if wrong:
        raise ValueError(f"split file {path}: splits must be {', '.join(SPLITS)}, not {', '.join(map(str, wrong))}")
    return split


def read_keys(path) -> set[str]:
    """Keys (paths relative to the data folder) from a text file, one per line, or a CSV with a ``path`` column."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if lines and lines[0].split(",")[0] == "path":
        return {ln.split(",")[0] for ln in lines[1:]}
    return set(lines)
