"""How long the map of a data set takes to draw (:func:`evaluation.curation.layout_2d`: PCA to 50 dimensions, then
t-SNE), for 1,000 and 8,000 photos and at the map's limit (:data:`evaluation.curation.MAP_LIMIT`).

    python benchmarks/map_speed.py [--features CACHE.npz ...] [--sizes 1000 3000 8000] [--repeat 1]

``--features``: feature caches (:func:`evaluation.copies.features`' ``.npz``, e.g. ``DATA_DIR/features/<model
hash>/<set>.npz`` or the cache of ``benchmarks/copies.py``): their rows are real photos' pooled features. Without
them, or where they hold fewer rows than a size, the rest are random 1280-wide non-negative features (said in the
output: t-SNE on random points is slower than on photos, whose neighbourhoods are clearer). The features' computing
is not timed: the Evaluate tab reads them from the cache the copies check made.

Measured on this machine (2 cores, shared with other jobs: load 1-2.5), with the real features of shared/data's
5,407 photos and 2,400 planted copies (the caches of benchmarks/copies.py), the map's t-SNE at 500 iterations:

    1,000 photos (real features):                    1.8 s   (goal: under 10 s)
    3,000 photos (real features):                    3.3 s
    5,000 photos (real features):                   17.9 s   (load 2.4)  the map's limit (MAP_LIMIT)
    8,000 photos (7,807 real + 193 random):         13.7 s   (load 0.9)  over the limit: a sample is offered
    1,000 / 8,000 photos (random features only):    10.5 s / 39.2 s

PCA alone to 2-D takes 0.1 s for 2,000 photos, but there a photo's 10 nearest points share its class (folder) 50%
of the time, against 90% on the t-SNE map (5-fold, 2,000 random photos of the same features): t-SNE is kept.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.copies import embedding  # noqa: E402
from evaluation.curation import MAP_LIMIT, layout_2d  # noqa: E402


def real_rows(paths) -> np.ndarray:
    """The own-view half of every row of the feature caches at ``paths``."""
    rows = []
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            feats = data["features"]
        rows.append(feats[:, :feats.shape[1] // 2] if feats.shape[1] > 1280 else feats)
    return np.concatenate(rows) if rows else np.zeros((0, 1280), np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", nargs="*", default=[], help="feature caches (.npz) of real photos")
    ap.add_argument("--sizes", nargs="*", type=int, default=[1000, MAP_LIMIT, 8000])
    ap.add_argument("--repeat", type=int, default=1, help="runs per size (the fastest is kept)")
    args = ap.parse_args()
    real = real_rows(args.features)
    rng = np.random.default_rng(0)
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {len(real)} real photos' features")
    for n in args.sizes:
        chosen = real[rng.permutation(len(real))[:n]]
        fake = n - len(chosen)
        rows = np.concatenate([chosen, np.sqrt(np.abs(rng.standard_normal((fake, real.shape[1] if len(real)
                                                                              else 1280))))]).astype(np.float32)
        best = np.inf
        for _ in range(args.repeat):
            start = time.perf_counter()
            xy, method = layout_2d(embedding(rows))
            best = min(best, time.perf_counter() - start)
        kind = "real" if not fake else "random" if fake == n else f"{n - fake} real + {fake} random"
        print(f"{n:>6} photos ({kind} features): {best:6.1f} s ({method}){'  over the map limit' * (n > MAP_LIMIT)}")


if __name__ == "__main__":
    main()
