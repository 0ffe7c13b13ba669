"""Label files, for evaluation and the label store alike: the original ``results.json`` format, or class folders.

Every label becomes a class id, :data:`~classifier.classes.NONE` ("none of the 10"), or ``"other: <name>"`` for a
name that is no class (kept and counted, never dropped silently). The original file writes "none" as the string
``"null"``; JSON null works too.
"""

import json
from collections import Counter
from pathlib import Path

from i18n import Message

from .classes import OTHER, parse_label, to_class_id


class LabelFileError(Message):
    """A label file that cannot be used; the message names the file and the place."""


def labels_file(folder: str | Path) -> Path | None:
    """A data set folder's own label file, ``results.json`` inside it, or None where it has none (class folders)."""
    path = Path(folder) / "results.json"
    return path if path.exists() else None


def read_labels(path: str | Path, aliases: bool = True) -> dict[str, str]:
    """Read a ``results.json``-style file: a JSON object ``{image stem: label or null}``.

    Returns ``{key: parsed label}``. Raises :class:`LabelFileError` for malformed JSON, a non-object, duplicate
    keys or a value that is neither a string nor null, naming where.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelFileError("lf_unreadable", path=str(path), reason=str(e)) from None
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _no_duplicates(pairs, path))
    except json.JSONDecodeError as e:
        raise LabelFileError("lf_not_json", path=str(path), line=e.lineno, column=e.colno, reason=e.msg) from None
    except RecursionError:  # the parser recurses per level: a file nested 100,000 deep would crash it
        raise LabelFileError("lf_too_deep", path=str(path)) from None
    if not isinstance(data, dict):
        raise LabelFileError("lf_not_object", path=str(path), kind=type(data).__name__)
    for key, value in data.items():
        if value is not None and not isinstance(value, str):
            raise LabelFileError("lf_bad_label", path=str(path), key=repr(key), kind=type(value).__name__,
                                 value=repr(value))
    return {str(key): parse_label(value, aliases) for key, value in data.items()}


def _no_duplicates(pairs, path):
    seen = Counter(k for k, _ in pairs)
    dup = [k for k, n in seen.items() if n > 1]
    if dup:
        raise LabelFileError("lf_duplicate", path=str(path), key=repr(dup[0]), n=seen[dup[0]])
    return dict(pairs)


def folder_labels(keys: list[str]) -> dict[str, str]:
    """Labels from class folders: ``cat/001`` -> cat, ``none/car`` -> NONE, ``wolf/1`` -> ``other: wolf``; in the
    ``<source>/<class>/`` layout training reads, from the second folder: ``oxford_pets/cat/001`` -> cat.

    Keys without a folder get no label.
    """
    out = {}
    for key in keys:
        parts = key.split("/")
        if len(parts) > 1:
            folder = parts[1] if source_of(key) else parts[0]
            out[key] = parse_label(folder) if to_class_id(folder) else OTHER + folder
    return out


def source_of(key: str) -> str | None:
    """The source of a key in the ``<source>/<class>/...`` layout (``oxford_pets/cat/001`` -> ``oxford_pets``),
    else None."""
    parts = key.split("/")
    return parts[0] if len(parts) > 2 and not to_class_id(parts[0]) and to_class_id(parts[1]) else None


def match(keys: list[str], labels: dict[str, str]) -> tuple[dict[str, str], list[str], list[str]]:
    """Pair image keys with labels; also match a label keyed by the file's stem alone (``17`` for ``x/17``).

    Returns ``(labels by image key, label keys without an image, image keys without a label)``.
    """
    keyset, by_stem = set(keys), {}
    for key in keys:
        by_stem.setdefault(key.rsplit("/", 1)[-1], []).append(key)
    out, missing_images = {}, []
    for lkey, label in labels.items():
        if lkey in keyset:
            out[lkey] = label
        elif len(by_stem.get(lkey, ())) == 1:
            out[by_stem[lkey][0]] = label
        else:
            missing_images.append(lkey)
    return out, sorted(missing_images), sorted(k for k in keys if k not in out)


def labels_for(keys: list[str], labels_path: str | Path | None = None, labels: dict[str, str] | None = None,
               aliases: bool = True) -> tuple[dict[str, str], list[str], list[str]]:
    """The labels of image ``keys``: from ``labels`` (a ``{key: label}`` dict, e.g. the label store's), else
    from ``labels_path`` (a results.json), else from the class folders in the keys.

    Returns ``(labels by image key, label keys without an image, image keys without a label)``.
    """
    if labels is None and labels_path:
        labels = read_labels(labels_path, aliases)
    if labels is not None:
        return match(keys, labels)
    labels = folder_labels(keys)
    return labels, [], [k for k in keys if k not in labels]
