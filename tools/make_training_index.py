"""Build the index of a model's training photos that the leak check reads (:mod:`evaluation.copies`).

    python tools/make_training_index.py [--model assets/model/default.npz] [--data ../shared/data/animals]
        [--none ../shared/data/none] [--exclude assets/model/exclude.txt] [--split FILE] [--cache FILE]

The photos are those the model was trained on, as its card says: for the shipped default (docs/model-card.md),
every photo of ``shared/data/animals`` but ``exclude.txt`` (3,485) and every photo of ``shared/data/none``
(1,866), the recipe's ``--val-split 0``. With ``--split``, only the photos that file puts in ``train`` (and
``val``: a run calibrates on them too). The count is checked against the card's (``out_of_fold.json``'s
``n_images`` and the calibration's ``n_none``) where it has them. The index lands beside the model
(:func:`evaluation.copies.index_path`). ``--cache``: an ``.npz`` of features computed before (``embed``'s cache), so
a second build costs seconds, not the 10 minutes of 5,351 photos at 384 px on two cores.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.modelfile import DEFAULT_MODEL, read_calibration  # noqa: E402
from evaluation.copies import build_index, embed, index_path, save_index  # noqa: E402
from training.data import discover, discover_none, read_keys, read_split  # noqa: E402


def training_photos(data, none, exclude=None, split=None) -> list[dict]:
    """The items (``discover``'s dicts) a model trained on: ``data`` and ``none`` photos less ``exclude``'s keys,
    and, with a ``split`` file, only its train and validation photos."""
    items = discover([data]) + (discover_none([none]) if none else [])
    left_out = read_keys(exclude) if exclude else set()
    chosen = read_split(split) if split else None
    return [it for it in items if it["key"] not in left_out
            and (chosen is None or chosen.get(it["key"]) in ("train", "val"))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--none", default=str(ROOT.parent / "shared" / "data" / "none"))
    ap.add_argument("--exclude", default=str(ROOT / "assets" / "model" / "exclude.txt"))
    ap.add_argument("--split", help="only the photos this split file puts in train or val")
    ap.add_argument("--cache", help="an .npz of features computed before, read and extended")
    ap.add_argument("--out", help="default: beside the model, <stem>.training-index.npz")
    args = ap.parse_args()
    items = training_photos(args.data, args.none, args.exclude, args.split)
    animals = sum(not it["key"].startswith("none/") for it in items)
    card = Path(args.model).with_name("out_of_fold.json")
    expected = json.loads(card.read_text()).get("n_images") if card.exists() and not args.split else None
    none_expected = ((read_calibration(args.model) or {}).get("out_of_fold_open_set") or {}).get("n_none")
    if expected is not None and (animals, len(items) - animals) != (expected, none_expected):
        sys.exit(f"{animals} animal and {len(items) - animals} none photos, but the model's card says it trained on "
                 f"{expected} and {none_expected}: check --data, --none and --exclude")
    emb = embed([it["path"] for it in items], model=args.model, cache=args.cache,
                progress=lambda i, n: print(f"\r{i}/{n}", end="", file=sys.stderr) if i % 50 == 0 else None)
    if emb.errors:
        print(f"\nunreadable, left out: {emb.errors}", file=sys.stderr)
    by_path = {it["path"]: it for it in items}
    kept = [by_path[p] for p in emb.paths]
    index = build_index(emb.own, [it["key"] for it in kept], [it["source"] for it in kept],
                        [it["label"] for it in kept], args.model)
    out = save_index(index, args.out or index_path(args.model))
    print(f"\n{out}: {len(index)} photos ({animals} animal, {len(items) - animals} none), "
          f"{out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
