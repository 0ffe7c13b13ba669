"""Labels for evaluation: the original ``results.json`` format, or class folders.

Every label becomes a class id, :data:`~classifier.classes.NONE` ("none of the 10"), or ``"other: <name>"`` for a
name that is no class (kept and counted, never dropped silently). The original file writes "none" as the string
``"null"``; JSON null works too.
"""

import json
from collections import Counter
from pathlib import Path

from classifier.classes import CLASSES, NONE, to_class_id

OTHER = "other: "
# The original project's class list: English names, but "ragno" for spider. Its predict script scored only
# labels spelled exactly like these.
ORIGINAL_VOCABULARY = {("ragno" if c == "spider" else c): c for c in CLASSES}


class LabelFileError(ValueError):
    """A label file that cannot be used; the message names the file and the place."""


def parse_label(value, aliases=True):
    """One raw label -> class id, NONE, or ``"other: <name>"``.

    With ``aliases=False`` only the original project's spellings count as classes (``spider`` becomes
    ``"other: spider"``, as its predict script effectively did).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "null"):
        return NONE
    text = str(value).strip()
    if aliases:
        class_id = to_class_id(text)
        if class_id:
            return class_id
    elif text in ORIGINAL_VOCABULARY:
        return ORIGINAL_VOCABULARY[text]
    return OTHER + text


def read_labels(path, aliases=True):
    """Read a ``results.json``-style file: a JSON object ``{image stem: label or null}``.

    Returns ``{key: parsed label}``. Raises :class:`LabelFileError` for malformed JSON, a non-object, duplicate
    keys or a value that is neither a string nor null, naming where.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelFileError(f"{path}: cannot be read ({e})") from None
    try:
        data = json.loads(text, object_pairs_hook=lambda pairs: _no_duplicates(pairs, path))
    except json.JSONDecodeError as e:
        raise LabelFileError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:  # the parser recurses per level: a file nested 100,000 deep would crash it
        raise LabelFileError(f"{path}: JSON nested too deep; expected a flat object {{image name: label}}") from None
    if not isinstance(data, dict):
        raise LabelFileError(f"{path}: expected a JSON object {{image name: label}}, got {type(data).__name__}")
    for key, value in data.items():
        if value is not None and not isinstance(value, str):
            raise LabelFileError(f"{path}: the label of {key!r} is {type(value).__name__} {value!r}; "
                                 "expected a class name or null")
    return {str(key): parse_label(value, aliases) for key, value in data.items()}


def _no_duplicates(pairs, path):
    seen = Counter(k for k, _ in pairs)
    dup = [k for k, n in seen.items() if n > 1]
    if dup:
        raise LabelFileError(f"{path}: key {dup[0]!r} appears {seen[dup[0]]} times; each image needs one label")
    return dict(pairs)


def folder_labels(keys):
    """Labels from class folders: ``cat/001`` -> cat, ``none/car`` -> NONE, ``wolf/1`` -> ``other: wolf``.

    Keys without a folder get no label.
    """
    out = {}
    for key in keys:
        if "/" in key:
            folder = key.split("/", 1)[0]
            out[key] = parse_label(folder) if to_class_id(folder) else OTHER + folder
    return out


def match(keys, labels):
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
