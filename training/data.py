"""Find labelled photos in class folders and split them reproducibly; :func:`prepare_data` reads and checks a run's
photos (split, exact duplicates, what is left to train on) before TensorFlow is imported.

A data folder holds class folders named in English, Italian (Animals-10) or Chinese, either directly
(``DIR/cat/``) or one level down (``DIR/<source>/cat/``, as in ``shared/data/animals``). A none folder holds photos
of none of the ten in ``DIR/<source>/<category>/`` (as ``shared/data/none``) or ``DIR/<category>/``.
"""

import csv
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from classifier.classes import CLASSES, NONE, to_class_id
from classifier.images import is_image_file

from . import layout

UNSEEN_SOURCES = ("imagenet_sample",)  # the ImageNet backbone may have seen these: training only


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


def prepare_data(cfg, recorder):
    """Discover, exclude, split; count duplicates. Returns ``{split: [item]}`` and facts for config.json."""
    labels = json.loads(Path(cfg.data_labels).read_text()) if cfg.data_labels else None  # reviewed, if given
    items = discover(cfg.data, labels)
    nones = discover_none(cfg.none or [])
    if not items:
        raise ValueError(f"no photos found under {', '.join(map(str, cfg.data))}: expected class folders "
                         "(cat/, dog/, ... or Animals-10's gatto/, cane/, ...), directly or one level down")
    excluded = read_keys(cfg.exclude) if cfg.exclude else set()
    items = [it for it in items + nones if it["key"] not in excluded]
    if cfg.split:
        split = read_split(cfg.split)
        missing = [it["key"] for it in items if it["key"] not in split]
        if missing:
            raise ValueError(f"{len(missing)} photos are not in {cfg.split}, e.g. {missing[0]}: a split file "
                             "fits the data folder it was made for; for other photos make a new split (no --split)")
    else:
        fractions = {"train": 1 - cfg.val_split, "val": cfg.val_split}
        split = stratified_split(items, fractions, cfg.seed, exclude_sources=UNSEEN_SOURCES)
        split.update(category_split([it for it in items if it["label"] == NONE], fractions, cfg.seed))
    if cfg.val:
        for it in discover([cfg.val]):
            it["key"] = "val:" + it["key"]
            items.append(it)
            split[it["key"]] = "val"
    write_split({it["key"]: split[it["key"]] for it in items}, recorder.dir / layout.SPLIT)
    parts = defaultdict(list)
    for it in items:
        it["sha256"] = hashlib.sha256(Path(it["path"]).read_bytes()).hexdigest()
        parts[split[it["key"]]].append(it)
    by_hash = defaultdict(list)
    for it in items:
        by_hash[it["sha256"]].append(it)
    dup_groups = [g for g in by_hash.values() if len(g) > 1]
    leaks = [[it["key"] for it in g] for g in dup_groups if len({split[it["key"]] for it in g}) > 1]
    facts = {
        "counts": {s: dict(Counter(it["label"] for it in parts[s])) for s in parts},
        "excluded": len(excluded), "duplicate_files": sum(len(g) - 1 for g in dup_groups),
        "duplicates_across_splits": leaks,
        "data_hash": hashlib.sha256("".join(sorted(it["sha256"] + it["key"] for it in items)).encode()).hexdigest(),
    }
    recorder.log.info(f"data: {len(items)} photos; {facts['counts']}; {facts['duplicate_files']} exact duplicate "
                      f"files; {len(leaks)} duplicate groups across splits {leaks[:5]}")
    require_train_and_val(parts, cfg)
    absent = [c for c in CLASSES if c not in facts["counts"].get("train", {})]
    if absent:
        recorder.log.info(f"warning: no training photos of {', '.join(absent)}: the model will not learn them")
    return parts, facts


def require_train_and_val(parts, cfg):
    """Stop with what to do when a split is empty (Keras' own errors about it say nothing useful). A linear head
    needs no validation photos: it is calibrated out of fold."""
    for name in ("train", "val") if cfg.head == "dense" else ("train",):
        if not parts.get(name):
            sizes = Counter(it["label"] for items in parts.values() for it in items)
            need = (f"A class needs about {int(np.ceil(0.5 / cfg.val_split))} photos to give one to validation at "
                    f"--val-split {cfg.val_split}: add photos, raise --val-split, or pass --val DIR (or --split FILE)"
                    if cfg.val_split > 0 else "Add readable photos, or exclude fewer (--exclude)")
            raise ValueError(f"no {'validation' if name == 'val' else 'training'} photos left (readable photos per "
                             f"class: {dict(sizes) or 'none'}). {need}")
