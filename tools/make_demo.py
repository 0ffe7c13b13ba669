"""Make the demo set shipped in assets/demo/: 100 photos named like the original project's test set (``<n>.jpg``)
with a ``results.json`` labelled the way an LLM labels, about 10% of it wrong the way GLM-4V was wrong.

    python tools/make_demo.py [--animals ../shared/data/animals] [--seed 0]

Photos come from permissively licensed sources where they have the class (Oxford-IIIT Pet: cat, dog; Caltech-101:
butterfly, dog, elephant), else from the Animals-10 source's **test** half (``assets/model/split-a10.csv``).
``sources.csv`` says where each came from, its true class and licence (``assets/examples/sources.csv``: where the
Classify examples came from). Every shipped photo (these and the Classify examples) outside that test half is added
to ``assets/model/exclude.txt``, so no model trains or validates on it.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from training.data import read_keys, read_split  # noqa: E402

DEMO = ROOT / "assets" / "demo"
SPLIT = ROOT / "assets" / "model" / "split-a10.csv"
EXCLUDE = ROOT / "assets" / "model" / "exclude.txt"
ANIMALS10 = "baidu140388_test_sample"
LICENCES = {"oxford_pets_sample": "CC BY-SA 4.0 (Oxford-IIIT Pet)", "caltech101_subset": "CC BY 4.0 (Caltech-101)",
            ANIMALS10: "web-scraped Animals-10; no licence stated upstream"}
# (class, source, how many); 10 photos a class
PLAN = [("cat", "oxford_pets_sample", 10), ("dog", "oxford_pets_sample", 5), ("dog", "caltech101_subset", 5),
        ("butterfly", "caltech101_subset", 10), ("elephant", "caltech101_subset", 10),
        *((c, ANIMALS10, 10) for c in ("chicken", "cow", "horse", "sheep", "spider", "squirrel"))]
# how the LLM got 10 of them wrong: (true class, what it said, how many); dogs called cats most, as GLM-4V did
MISTAKES = [("dog", "cat", 3), ("cat", "dog", 1), ("sheep", "cow", 2), ("cow", "sheep", 1), ("horse", "null", 1),
            ("squirrel", "null", 1), ("chicken", "quail", 1)]
# the Classify examples (assets/examples/<class>.jpg; assets/ATTRIBUTION.md credits them)
EXAMPLE_ORIGINS = {
    "butterfly": "caltech101_subset/butterfly/image_0033.jpg", "elephant": "caltech101_subset/elephant/image_0034.jpg",
    "cat": "oxford_pets_sample/cat/Abyssinian_12.jpg", "dog": "oxford_pets_sample/dog/havanese_14.jpg",
    **{c: f"{ANIMALS10}/{c}/{name}" for c, name in (("chicken", "f88fc9ea-2c8b-41a4-a63d-902d7b04870a.jpeg"),
                                                    ("cow", "f8ab3eaf-cd75-4279-8744-07d529301c5e.jpeg"),
                                                    ("horse", "f70780fc-8d9f-4635-aefc-312c2b33b0ec.jpeg"),
                                                    ("sheep", "ee6548d2-4528-499a-a03b-bc6b3ba5fab2.jpeg"),
                                                    ("spider", "ef873ef8-55aa-4c34-aedb-a3ce1e1a05d7.jpeg"),
                                                    ("squirrel", "f443da9b-a154-4139-84c5-e0a96816908b.jpeg"))}}
EXAMPLES = list(EXAMPLE_ORIGINS.values())


def choose(animals, split, rng):
    """``[(key, class)]`` per :data:`PLAN`: Animals-10 photos from its test half only, never a Classify example."""
    chosen = []
    for label, source, n in PLAN:
        folder = animals / source / label
        keys = sorted(f"{source}/{label}/{p.name}" for p in folder.iterdir() if p.is_file())
        keys = [k for k in keys if k not in EXAMPLES and (source != ANIMALS10 or split.get(k) == "test")]
        chosen += [(keys[i], label) for i in sorted(rng.choice(len(keys), n, replace=False))]
    return chosen


def llm_labels(truth, rng):
    """GLM-style labels: the true class (spider as Animals-10's ``ragno``, as the original's labels mostly were),
    and :data:`MISTAKES` on randomly chosen photos of each class."""
    labels = ["ragno" if t == "spider" else t for t in truth]
    for true, said, n in MISTAKES:
        idx = [i for i, t in enumerate(truth) if t == true and labels[i] in (true, "ragno")]
        for i in rng.choice(idx, n, replace=False):
            labels[i] = said
    return labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--animals", type=Path, default=ROOT.parent / "shared" / "data" / "animals")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    split = read_split(SPLIT)
    chosen = choose(args.animals, split, rng)
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]  # mixed, as an unlabelled test set is
    labels = llm_labels([c for _, c in chosen], rng)
    DEMO.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, ((key, label), said) in enumerate(zip(chosen, labels)):
        im = ImageOps.exif_transpose(Image.open(args.animals / key)).convert("RGB")
        im.thumbnail((384, 384))
        im.save(DEMO / f"{n}.jpg", quality=85)
        rows.append({"file": f"{n}.jpg", "origin": key, "class": label, "llm_label": said,
                     "licence": LICENCES[key.split("/")[0]]})
    (DEMO / "results.json").write_text(json.dumps({str(n): s for n, s in enumerate(labels)}, indent=1))
    with open(DEMO / "sources.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(ROOT / "assets" / "examples" / "sources.csv", "w", newline="") as f:
        csv.writer(f).writerows([("file", "origin"), *((f"{c}.jpg", k) for c, k in EXAMPLE_ORIGINS.items())])
    shipped = [k for k in EXAMPLES + [r["origin"] for r in rows] if split.get(k) != "test"]
    new = [k for k in shipped if k not in read_keys(EXCLUDE)]
    if new:
        with open(EXCLUDE, "a") as f:
            f.write("# Shipped in assets/ (Classify examples, demo set): never trained or validated on\n")
            f.writelines(k + "\n" for k in new)
    wrong = sum(r["class"] != r["llm_label"] and not (r["class"] == "spider" and r["llm_label"] == "ragno")
                for r in rows)
    print(f"{len(rows)} photos -> {DEMO} ({wrong} LLM labels wrong); {len(new)} keys added to {EXCLUDE}")


if __name__ == "__main__":
    main()
