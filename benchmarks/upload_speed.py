"""Importing an upload the size of the original test set: 8,150 small JPEGs and a results.json in one zip.

    python benchmarks/upload_speed.py [--images 8150]

Prints the time to unpack and check it (``uploads.add_dataset``) and to import it into a fresh label store, and the
peak of the memory Python allocated meanwhile (tracemalloc): the archive is streamed entry by entry, so memory stays
bounded by one entry and the file list, not by the archive's size.
"""

import argparse
import io
import json
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labeling.store import LabelStore  # noqa: E402
from uploads import add_dataset  # noqa: E402

WORDS = ["cat", "dog", "horse", "ragno", "cow", "sheep", "chicken", "elephant", "butterfly", "squirrel", "null"]


def make_archive(path, n, seed=0):
    """``n`` 128x96 JPEGs (noise, about 10 kB each, as testdata/<i>.jpg) and their results.json."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (96, 128, 3), np.uint8)).save(buf, "JPEG", quality=80)
            zf.writestr(f"testdata/{i}.jpg", buf.getvalue())
        zf.writestr("results.json", json.dumps({str(i): WORDS[i % len(WORDS)] for i in range(n)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8150)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        archive = tmp / "testdata.zip"
        make_archive(archive, args.images)
        size = archive.stat().st_size / 2**20
        t0 = time.perf_counter()
        facts = add_dataset([archive], tmp / "datasets", max_mb=2000)
        t1 = time.perf_counter()
        result = LabelStore(tmp / "labels.db").import_folder(facts["path"], facts["path"] / "results.json")
        t2 = time.perf_counter()
        tracemalloc.start()  # a second upload, traced (tracing slows Python: the times above are untraced)
        again = add_dataset([archive], tmp / "datasets", max_mb=2000)
        LabelStore(tmp / "labels2.db").import_folder(again["path"], again["path"] / "results.json")
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        print(f"archive: {args.images} JPEGs + results.json, {size:.0f} MB")
        print(f"unpack and check: {t1 - t0:.1f} s ({args.images / (t1 - t0):.0f} images/s); "
              f"{facts['images']} photos, {len(facts['unreadable'])} unreadable, {facts['labels']} labels")
        print(f"import into the label store: {t2 - t1:.1f} s ({result['images']} images, "
              f"{result['labels_added']} labels)")
        print(f"peak memory allocated meanwhile: {peak:.1f} MB (the archive: {size:.0f} MB)")


if __name__ == "__main__":
    main()
