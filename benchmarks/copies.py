"""Near-copies from the backbone's own features: planted copies found, distinct photos left alone, and the leak check
against the default model's training index.

    python benchmarks/copies.py [--data ../shared/data/animals] [--none ../shared/data/none] [--originals 300]
        [--cache /tmp/curation] [--out /tmp/curation/copies]

Every photo of --data and --none counts as distinct (5,407: shared/data's README says near-copies were dropped
from the last four sources, but Animals-10 itself holds some, so the pre-existing pairs flagged are drawn in
``<out>/flagged_pairs.png`` to be checked by eye). Copies of --originals photos (two thirds from
baidu140388_test_sample, Animals-10 itself, the rest from the other animal sources; seeded) are planted, one of each
kind in :data:`KINDS`: resized (longest side times 0.5-2), cropped (3-10% off each side's length, anywhere),
re-encoded as JPEG (quality 30-90), mirrored, and combinations. All photos and copies form one set, as a user's
upload would.

Prints, for thresholds around :data:`evaluation.copies.THRESHOLD`: the share of planted copies paired with their
original (recall; goal >= 95%), per kind; the pairs flagged between different photos, as a share of all such pairs
(goal <= 1%) and as the share of distinct photos given a wrong partner; the same figures for
cleanlab Datalab's near_duplicate check on the same embeddings (its own threshold, and ours).
Then the leak check: planted copies against the training index of assets/model (found: the original is the nearest
flagged training photo), the same copies against the index without their originals (false leaks), and the 110
photos shipped in assets/ against it (exclude.txt keeps 45 of them out of training; the rest are Animals-10 test-half
photos, which the default, trained with ``--val-split 0`` on every photo, learnt from).

Features are cached under --cache (computing them takes about 10 minutes on 2 busy cores; the copies 5 more).
cleanlab (``pip install cleanlab``, AGPL) is a benchmark-only dependency; without it that row is skipped.

Measured (5,407 photos, 2,400 copies of 300 originals): at 0.10, 97.7% of the copies found (resize 99.7%, crop
100%, JPEG 98.3%, mirror 100%, two transforms 95.3-99.3%, all four 91.7%); 377 pairs of different photos flagged,
0.0012% of all such pairs; 4.6% of the photos given a partner that is not their copy (an upper bound: a third of
those pairs are real copies by eye), 1.2% of Animals-10's own photos (by eye, 3 false pairs of 5) but 31% of
sheep_breeds' studio photos and 9% of wild_and_farm's (zebras; darkened copies). Without mirror views: 97.1% and
4.2%. Datalab near_duplicate at its default (0.13 x the median nearest-neighbour distance, 0.021 here): 33.6%
found; at our threshold: 97.1%, 4.2%. Leak check: 97.1% of the copies of training photos found in the index, 2.9%
of them paired with a training photo they do not copy once their original is removed; 68 of the 110 shipped photos
are near-copies of training photos.
"""

import argparse
import io
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.neighbors import NearestNeighbors

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageOps  # noqa: E402

from evaluation.copies import THRESHOLD, copy_pairs, embed, leaks, load_index  # noqa: E402
from training.data import discover, discover_none  # noqa: E402

A10 = "baidu140388_test_sample"
SWEEP = (0.06, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13, 0.14, 0.16, 0.18, 0.20)


def resize(img, rng):
    s = rng.uniform(0.5, 2.0)
    return img.resize((max(8, round(img.width * s)), max(8, round(img.height * s))), Image.BICUBIC)


def crop(img, rng):
    """Up to 10% off the width and off the height, the cut shared between the two sides at random."""
    w, h = img.size
    cw, ch = round(w * (1 - rng.uniform(0.03, 0.10))), round(h * (1 - rng.uniform(0.03, 0.10)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def jpeg(img, rng):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(30, 90))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def mirror(img, rng):
    return ImageOps.mirror(img)


KINDS = {"resize": (resize,), "crop": (crop,), "jpeg": (jpeg,), "mirror": (mirror,), "crop+resize": (crop, resize),
         "crop+jpeg": (crop, jpeg), "resize+jpeg": (resize, jpeg), "mirror+crop+resize+jpeg": (mirror, crop, resize,
                                                                                             jpeg)}


def plant(originals, out, seed=0):
    """Write one copy of each kind of each original under ``out``; returns ``[(copy path, original index, kind)]``."""
    out.mkdir(parents=True, exist_ok=True)
    planted = []
    for i, it in enumerate(originals):
        img = None
        for kind, steps in KINDS.items():
            path = out / f"{i:04d}-{kind}.png"
            if not path.exists():
                if img is None:
                    img = Image.open(it["path"])
                    img = ImageOps.exif_transpose(img).convert("RGB")
                rng = random.Random(f"{seed}-{i}-{kind}")
                copy = img
                for step in steps:
                    copy = step(copy, rng)
                copy.save(path)  # PNG: lossless, so only the JPEG step re-encodes
            planted.append((str(path), i, kind))
    return planted


def pick_originals(items, n, seed=0):
    rng = random.Random(seed)
    a10 = [it for it in items if it["source"] == A10]
    rest = [it for it in items if it["source"] != A10 and not it["key"].startswith("none/")]
    return rng.sample(a10, min(len(a10), 2 * n // 3)) + rng.sample(rest, n - min(len(a10), 2 * n // 3))


def score(pairs, origin, n_distinct, planted, threshold):
    """Recall of planted copies per kind, false pairs and distinct photos with a false partner at ``threshold``."""
    flagged = {(i, j) for i, j, d in pairs if d <= threshold}
    found = defaultdict(list)
    for row, (original, kind) in planted:
        found[kind].append((min(row, original), max(row, original)) in flagged)
    false = [(i, j) for i, j in flagged if origin[i] != origin[j]]
    wrong = {k for pair in false for k in pair if k < n_distinct}
    return {k: float(np.mean(v)) for k, v in found.items()}, float(np.mean(sum(found.values(), []))), false, wrong


def sheet(pairs, paths, path, limit=40):
    """A contact sheet of pairs (two 160 px thumbnails and the distance), to check by eye."""
    from PIL import ImageDraw

    pairs = pairs[:limit]
    if not pairs:
        return
    cols, w = 2, 340
    canvas = Image.new("RGB", (cols * w, ((len(pairs) + cols - 1) // cols) * 180), "white")
    for k, (i, j, d) in enumerate(pairs):
        x, y = (k % cols) * w, (k // cols) * 180
        for m, p in enumerate((paths[i], paths[j])):
            canvas.paste(ImageOps.pad(Image.open(p).convert("RGB"), (160, 160)), (x + m * 165, y))
        ImageDraw.Draw(canvas).text((x + 2, y + 162), f"{k + 1}: {d:.3f}", fill="black")
    canvas.save(path)


def datalab_pairs(own, threshold=None):
    """cleanlab Datalab's near_duplicate sets on the same embeddings (cosine): its pairs, or None without cleanlab."""
    try:
        from cleanlab import Datalab
    except ImportError:
        return None
    lab = Datalab({"y": np.zeros(len(own), int)}, label_name="y", verbosity=0)
    kwargs = {} if threshold is None else {"threshold": threshold}
    lab.find_issues(features=own, issue_types={"near_duplicate": {"metric": "cosine", **kwargs}})
    sets = lab.get_issues("near_duplicate")["near_duplicate_sets"]
    return {(min(i, int(j)), max(i, int(j))) for i, s in enumerate(sets) for j in s}, \
        lab.get_info("near_duplicate")["threshold"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--none", default=str(ROOT.parent / "shared" / "data" / "none"))
    ap.add_argument("--originals", type=int, default=300)
    ap.add_argument("--cache", default="/tmp/curation")
    ap.add_argument("--out", default="/tmp/curation/copies")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    items = discover([args.data]) + discover_none([args.none])
    originals = pick_originals(items, args.originals, args.seed)
    planted_files = plant(originals, out / "planted", args.seed)
    t = time.time()
    emb = embed([it["path"] for it in items], cache=cache / "features.npz")
    copies = embed([p for p, _, _ in planted_files], cache=cache / "copies-features.npz")
    print(f"embeddings: {len(emb.paths)} photos, {len(copies.paths)} copies ({time.time() - t:.0f} s; "
          f"unreadable: {len(emb.errors) + len(copies.errors)})")
    row_of = {p: i for i, p in enumerate(emb.paths)}
    n = len(emb.paths)
    own, mirrored = np.concatenate([emb.own, copies.own]), np.concatenate([emb.mirror, copies.mirror])
    paths = emb.paths + copies.paths
    copy_row = {p: n + i for i, p in enumerate(copies.paths)}
    planted = [(copy_row[p], (row_of[originals[i]["path"]], kind)) for p, i, kind in planted_files if p in copy_row]
    origin = np.arange(len(own))
    for row, (original, _) in planted:
        origin[row] = original
    t = time.time()
    pairs = copy_pairs(own, mirrored, threshold=max(SWEEP))
    same_origin = sum(c * (c - 1) // 2 for c in np.bincount(origin))
    distinct = len(own) * (len(own) - 1) // 2 - same_origin
    print(f"set: {n} distinct photos + {len(planted)} planted copies of {len(originals)} originals "
          f"({sum(it['source'] == A10 for it in originals)} of them Animals-10's); all pairs searched in "
          f"{time.time() - t:.1f} s\n")
    plain = copy_pairs(own, threshold=max(SWEEP))  # without the mirror views: what they add
    print("| threshold | recall of planted copies | " + " | ".join(KINDS) + " | false pairs (share of "
          f"{distinct:,} distinct pairs) | distinct photos given a false partner | without mirror views: recall, "
          "photos given a false partner |")
    print("|---" * (5 + len(KINDS)) + "|")
    for th in SWEEP:
        per_kind, recall, false, wrong = score(pairs, origin, n, planted, th)
        _, recall_plain, _, wrong_plain = score(plain, origin, n, planted, th)
        mark = " **(chosen)**" if abs(th - THRESHOLD) < 1e-9 else ""
        print(f"| {th:.2f}{mark} | {recall:.1%} | " + " | ".join(f"{per_kind[k]:.1%}" for k in KINDS)
              + f" | {len(false)} ({len(false) / distinct:.4%}) | {len(wrong)} ({len(wrong) / n:.2%}) | "
              f"{recall_plain:.1%}, {len(wrong_plain) / n:.2%} |")
    _, recall, false, wrong = score(pairs, origin, n, planted, THRESHOLD)
    source = [Path(p).relative_to(Path(args.data).parent).parts[1] for p in emb.paths]
    sizes = {s: source.count(s) for s in dict.fromkeys(source)}
    print(f"\ndistinct photos given a false partner at {THRESHOLD}, per source (upper bounds: some pairs are real "
          "copies): " + ", ".join(f"{s} {sum(source[k] == s for k in wrong) / c:.1%} of {c}"
                                   for s, c in sizes.items()))
    pre = sorted((p for p in pairs if p[2] <= THRESHOLD and p[0] < n and p[1] < n), key=lambda p: p[2])
    sheet(pre, paths, out / "flagged_pairs.png", limit=60)
    print(f"\nat {THRESHOLD}: {len(pre)} pairs among the distinct photos flagged (drawn nearest first in "
          f"{out / 'flagged_pairs.png'}; {len(false) - len(pre)} more between a copy and another photo)")
    for i, j, d in pre[:60]:
        print(f"  {d:.3f} {Path(paths[i]).relative_to(Path(args.data).parent)}  "
              f"{Path(paths[j]).relative_to(Path(args.data).parent)}")

    truth = {(min(r, o), max(r, o)) for r, (o, _) in planted}
    median = float(np.median(NearestNeighbors(n_neighbors=1, metric="cosine").fit(own).kneighbors()[0]))
    for label, relative in (("its default threshold", None), (f"threshold matched to our {THRESHOLD}",
                                                                THRESHOLD / median)):
        found = datalab_pairs(own, relative)
        if found is None:
            print("\ncleanlab is not installed: no Datalab row")
            break
        dl_pairs, dl_threshold = found
        hit = len(truth & dl_pairs) / len(truth)
        false_dl = [p for p in dl_pairs if origin[p[0]] != origin[p[1]]]
        wrong_dl = {k for p in false_dl for k in p if k < n}
        print(f"\ncleanlab Datalab near_duplicate, {label} ({dl_threshold:.3f} x the median nearest-neighbour "
              f"distance {median:.3f} = {dl_threshold * median:.3f}; cosine, the same embeddings, no mirror views): "
              f"recall {hit:.1%}, false pairs {len(false_dl)} ({len(false_dl) / distinct:.4%}), distinct photos "
              f"given a false partner {len(wrong_dl)} ({len(wrong_dl) / n:.2%})")

    leak_check(emb, copies, planted, originals, row_of, args, out)


def leak_check(emb, copies, planted, originals, row_of, args, out):
    """Planted copies against the default's training index: found, false leaks, and the shipped photos."""
    index = load_index()
    if index is None:
        print("\nno training index beside assets/model/default.npz (tools/make_training_index.py builds it): "
              "leak check unavailable")
        return
    key_of = {it["path"]: it["key"] for it in discover([args.data]) + discover_none([args.none])}
    n = len(emb.paths)
    copy_rows = [row - n for row, _ in planted]
    copy_own, copy_mirror = copies.own[copy_rows], copies.mirror[copy_rows]
    original_key = [key_of[emb.paths[o]] for _, (o, _) in planted]
    trained = set(index.keys)
    in_index = np.array([k in trained for k in original_key])
    found = leaks(copy_own, copy_mirror, index, THRESHOLD)
    hit = {f["row"] for f in found if f["key"] == original_key[f["row"]]}
    print(f"\nleak check against {len(index)} training photos of the default (index "
          f"{os.path.getsize(index_path_of()) / 1e6:.2f} MB): {len(hit)} of {int(in_index.sum())} planted copies "
          f"of training photos found ({len(hit) / max(1, in_index.sum()):.1%}); "
          f"{sum(f['row'] not in hit for f in found)} flagged with another training photo as nearest")
    # the same copies against the index without their originals: whatever is flagged is a false leak (or a copy
    # the data already held)
    keep = np.array([k not in set(original_key) for k in index.keys])
    pruned = type(index)(index.embeddings[keep], [k for k, m in zip(index.keys, keep) if m],
                         [s for s, m in zip(index.sources, keep) if m], [x for x, m in zip(index.labels, keep) if m])
    false = leaks(copy_own, copy_mirror, pruned, THRESHOLD)
    print(f"the same copies against the index without their {int(in_index.sum())} originals: {len(false)} "
          f"flagged ({len(false) / len(copy_rows):.1%}), i.e. paired with a training photo they do not copy")
    shipped = sorted(p for d in ("examples", "demo") for p in (ROOT / "assets" / d).rglob("*")
                     if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    ship = embed(shipped, cache=Path(args.cache) / "shipped-features.npz")
    flagged = leaks(ship.own, ship.mirror, index, THRESHOLD)
    print(f"the {len(ship.paths)} photos shipped in assets/ (exclude.txt keeps 45 of them out of training): "
          f"{len(flagged)} near-copies of training photos")
    for f in flagged:
        print(f"  {f['distance']:.3f} {Path(ship.paths[f['row']]).relative_to(ROOT)} ~ {f['key']}")


def index_path_of():
    from evaluation.copies import index_path

    return index_path()


if __name__ == "__main__":
    main()
