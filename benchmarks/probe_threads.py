"""How long the linear probe's C search takes (:func:`training.probe.cross_validate`: 5 values of C, 5 folds) with
its BLAS on one thread, as :func:`training.probe.fit` runs it, against the BLAS library's default (a thread per
core), side by side in one run.

    python benchmarks/probe_threads.py [--sizes 400 2000 5351] [--repeat 1]

The rows are real photos, with their labels: the default model's index of its 5,351 training photos
(``assets/model/default.training-index.npz``, Lite2 at 384 px). The index keeps each photo's embedding (square-rooted,
scaled per row, stored as 8-bit), not the raw pooled features the probe learns, and no mirror images: the default's
own run fits about 8,600 rows a fold, more than measured here, and the gain shrinks as the rows grow. Run it on quiet
cores.

Measured on this machine (2 cores, nothing else running; ``--sizes 400 2000 5351 --repeat 1``):

    photos   one thread   default threads   default / one
       400       1.0 s           14.9 s          14.9x
     2,000       3.0 s           21.0 s           7.0x
     5,351       9.2 s           26.1 s           2.8x

lbfgs multiplies small matrices, where two threads cost more in handing work over than they gain.
"""

import argparse
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
from threadpoolctl import threadpool_info

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.classes import CLASSES, NONE  # noqa: E402
from evaluation.copies import index_path  # noqa: E402
from training import probe  # noqa: E402


def rows(n: int, seed: int = 0):
    """``n`` photos of the default model's training index, drawn at random: features, labels (-1 for none)."""
    with np.load(index_path()) as index:
        x, labels = index["embeddings"].astype(np.float32), index["labels"]
    at = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[at], np.array([-1 if label == NONE else CLASSES.index(label) for label in labels[at]])


def seconds(x, y, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        probe.cross_validate(x, y, np.arange(len(y)), np.ones(len(y), bool), log=lambda _: None)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[400, 2000, 5351])
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    blas = [f"{i['internal_api']} {i['version']}, {i['num_threads']} threads" for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"BLAS: {'; '.join(blas)}")
    print("photos   one thread   default threads   default / one")
    for n in args.sizes:
        x, y = rows(n)
        one = seconds(x, y, args.repeat)  # cross_validate fits through probe.fit: one thread
        with mock.patch.object(probe, "fit", lambda c, x, y: probe.probe(c).fit(x, y)):  # the library's default
            default = seconds(x, y, args.repeat)
        print(f"{len(y):>6,}   {one:>8.1f} s   {default:>13.1f} s   {default / one:>11.1f}x", flush=True)


if __name__ == "__main__":
    main()
