"""Wrong labels found first: planted flips ranked by cleanlab and by ours, side by side, in a test set and in a
training set; and what retraining with the flips fixed gains on held-out photos.

    python benchmarks/suspects_flips.py [--data ../shared/data/animals] [--none ../shared/data/none]
        [--split assets/model/split-a10.csv] [--seeds 10] [--train-seeds 3] [--cs 0.1] [--cache /tmp/curation]

Photos and split: ``split-a10.csv`` (Animals-10's own photos half test). Features: the default's backbone at
384 px, each photo and its mirror image, cached under --cache (10 minutes for the 5,407 photos on two busy cores,
then seconds). Flips are made the way an LLM gets labels wrong: about 10% of the animal photos, 60% of those
cat<->dog and sheep<->cow (the GLM's pattern), the rest half to "none", half to a random other class.

- **Test set**: the 285 Animals-10 test photos, scored by a probe fitted with the recipe (training/probe.py) on the
  split's train and validation photos (animals and none): a served model that never saw them. ``--seeds`` draws.
- **Training set**: the split's train and validation photos (4,473: animals and none), the 11 popular_animals photos
  that ``exclude.txt`` leaves out (a dog with the cat; wild cats) put back as real label errors; probabilities out
  of fold, with the flipped labels, by the recipe's own cross-validation (:func:`training.out_of_fold.out_of_fold`;
  C among --cs: the default's own choice, 0.1, keeps a pass to 2-3 minutes). ``--train-seeds`` draws. Then the
  probe trained on the flipped labels, on them with the flips a reviewer meets in the first 1.5 x N of a ranking
  fixed, and on the true labels, each scored on the held-out Animals-10 test photos.

Rankings (N = the number of flips): **cleanlab self-confidence** (``cleanlab.rank.get_label_quality_scores`` on the
model's probabilities: what the review queue orders by today), **cleanlab Datalab** (its label issue type on the
same probabilities and embeddings: flagged first, then by its score), **ours, one pass** (the model's
probabilities, its mirror view's and the neighbours' labels, :func:`labeling.quality.label_quality_scores`),
**ours** (:func:`labeling.quality.review_scores`: that, with the set's own probe, in two passes) and **ours + LLM**
(with a second opinion simulated as GLM-like: right 94.6% of the time, as often as it agreed with the original
project's model, its mistakes cat<->dog and sheep<->cow where it can, else a random class; independent of the
flips; test set only, as it costs two more passes on the training set). Printed: precision at N and the share of
flips within the first 1.5 x N; on the training set also counting as right the photos whose label was found wrong
or unusable by eye among both rankings' first N (:data:`BY_EYE`).

Measured (10 test draws of 28 flips, 3 training draws of 320; 7 minutes on two cores shared with a test run, the
features cached; precision at N, then flips within the first 1.5 x N). Ours scores a label by its margin over the
likeliest other class on the views' mean probabilities (``normalized_margin``; with the label's mean probability
alone, the earlier rule, ours got 97.5% and 86.3% (91.7%)):

| ranking | test set | training set (counting labels found wrong by eye) |
|---|---|---|
| cleanlab self-confidence | 90.7%, 99.6% | 72.2% (77.6%), 86.0% |
| cleanlab Datalab label issues | 78.6%, 99.6% | 72.2% (77.4%), 85.6% |
| ours, one pass | 95.7%, 100% | 85.3% (90.1%), 95.8% |
| ours | **98.2%** (lowest draw 96.4%), 100% | **90.7%** (lowest 90.3%) **(93.9%)**, **99.2%** |
| ours + LLM | 99.6%, 100% | not run |

The test set's misses are photos the served model gets confidently wrong with a right label (an elephant drawn as
a mammoth, elephants in silhouette, a goat-like sheep); the set's own probe rescues most. The training set's are
mostly photos labelled none that show an animal-like thing (goats, a shower curtain with a cat) and the squirrel
source's strays. Retraining (balanced accuracy on the 285 held-out photos, mean of 3 draws): 0.921 with the flips,
0.972 with those in our first 1.5 x N fixed (0.970 with cleanlab's), 0.973 with the true labels.

Benchmark-only dependency: cleanlab (``pip install cleanlab``, AGPL; not in requirements).
"""

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from classifier.classes import CLASSES, NONE  # noqa: E402
from evaluation.copies import embedding, features  # noqa: E402
from labeling.quality import label_quality_scores, neighbour_label_probabilities, review_scores, suspects_first  # noqa: E402
from training import probe  # noqa: E402
from training.data import discover, discover_none, read_keys, read_split  # noqa: E402
from training.out_of_fold import out_of_fold  # noqa: E402

SWAP = {"cat": "dog", "dog": "cat", "sheep": "cow", "cow": "sheep"}
LABELS = (*CLASSES, NONE)  # column 10: none of the ten
LLM_ACCURACY = 0.946  # the GLM's agreement with the original project's model (shared/data/README.md)
ONE_PASS, OURS, CLEANLAB = "ours, one pass (model + mirror + neighbours)", "ours", "cleanlab self-confidence"
# Training photos whose label is wrong or unusable, found by eye among the first N of cleanlab's and of our ranking
# (draw 0, unflipped photos); the reason each would be left out (issue #32's reasons)
BY_EYE = {
    "popular_animals/dog/dog (46).png": "a giraffe", "popular_animals/dog/dog (40).png": "a fox",
    "squirrelnet/squirrel/sq_3737.jpg": "a deer", "squirrelnet/squirrel/sq_284.jpg": "seals",
    "squirrelnet/squirrel/sq_2766.jpg": "not a squirrel", "cow_sheep_photos/cow/Image_62.jpg": "a moose",
    "popular_animals/cat/cat (67).png": "a wild cat",
    "none/livestock_thumbnails/goat/35703558584_d64f4fc4aa_t.jpg": "a sheep",
    "none/imagenet_sample/objects/n04209239_shower_curtain.jpg": "a cat",
    "none/imagenet_sample/objects/n13133613_ear.jpg": "a dog", "none/imagenet_sample/objects/n04254680_soccer_ball.jpg":
        "a dog with the ball", "none/imagenet_sample/objects/n04275548_spider_web.jpg": "a spider in its web",
    "popular_animals/dog/dog (72).png": "a cat and a dog", "cow_sheep_photos/sheep/Image_75.jpg": "no sheep to see",
    "cow_sheep_photos/cow/Image_84.jpg": "a rendering", "cow_sheep_photos/cow/Image_96.jpg": "a cartoon",
    "cow_sheep_photos/cow/Image_93.jpg": "a drawing", "cow_sheep_photos/sheep/Image_77.jpg": "plush toys",
    "popular_animals/dog/dog (15).png": "an advertisement",
    "baidu140388_test_sample/dog/fcc276c8-7710-45fa-a8ed-b84d940c3cbc.jpeg": "a 3D rendering",
    "caltech101_subset/butterfly/image_0009.jpg": "a drawing", "caltech101_subset/chicken/image_0037.jpg":
        "a painted plate", "caltech101_subset/dog/image_0057.jpg": "a painted plate",
}


def flip(items, share, rng, keep=()):
    """``{index: wrong label}`` for about ``share`` of the animal ``items`` (not those whose key is in ``keep``),
    LLM-style: 60% cat<->dog and sheep<->cow where there are such photos, the rest half none, half a random other
    class."""
    animals = [i for i, it in enumerate(items) if it["label"] != NONE and it["key"] not in keep]
    n = round(share * len(animals))
    swappable = [i for i in animals if items[i]["label"] in SWAP]
    rng.shuffle(swappable)
    chosen = swappable[: int(n * 0.6)]
    rest = [i for i in animals if i not in set(chosen)]
    rng.shuffle(rest)
    flips = {i: SWAP[items[i]["label"]] for i in chosen}
    for k, i in enumerate(rest[: n - len(chosen)]):
        flips[i] = NONE if k % 2 == 0 else rng.choice([c for c in CLASSES if c != items[i]["label"]])
    return flips


def simulated_llm(items, rng):
    """A GLM-like second opinion per photo (an index into LABELS), right LLM_ACCURACY of the time."""
    out = []
    for it in items:
        label = it["label"]
        if rng.random() < LLM_ACCURACY:
            out.append(LABELS.index(label))
        else:
            out.append(LABELS.index(SWAP.get(label) or rng.choice([c for c in LABELS if c != label])))
    return np.array(out)


def measure(order, truth, also=frozenset()):
    """Precision at N (N = len(truth)) and the share of ``truth`` within the first 1.5 x N; with ``also``, the
    precision at N counting those rows as right too."""
    n = len(truth)
    first = set(order[:n].tolist())
    return len(truth & first) / n, len(truth & set(order[: int(1.5 * n)].tolist())) / n, \
        len((truth | also) & first) / n


def cleanlab_orders(y, probs, own):
    """cleanlab's two rankings on the same probabilities (and embeddings), most suspect first."""
    from cleanlab import Datalab
    from cleanlab.rank import get_label_quality_scores

    p = probs / probs.sum(1, keepdims=True)
    lab = Datalab({"label": y}, label_name="label", verbosity=0)
    lab.find_issues(pred_probs=p, features=own, issue_types={"label": {}})
    issues = lab.get_issues("label")
    return {CLEANLAB: suspects_first(get_label_quality_scores(y, p)),
            "cleanlab Datalab label issues": np.lexsort((issues["label_score"].to_numpy(),
                                                         ~issues["is_label_issue"].to_numpy()))}


def balanced(model, x, y):
    from sklearn.metrics import balanced_accuracy_score

    pred = probe.probabilities(model, x)[:, :len(CLASSES)].argmax(1)
    return balanced_accuracy_score(y, pred), float((pred == y).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--none", default=str(ROOT.parent / "shared" / "data" / "none"))
    ap.add_argument("--split", default=str(ROOT / "assets" / "model" / "split-a10.csv"))
    ap.add_argument("--exclude", default=str(ROOT / "assets" / "model" / "exclude.txt"))
    ap.add_argument("--share", type=float, default=0.10)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--train-seeds", type=int, default=3)
    ap.add_argument("--cs", type=float, nargs="+", default=[0.1])
    ap.add_argument("--cache", default="/tmp/curation")
    args = ap.parse_args()
    split = read_split(args.split)
    excluded = read_keys(args.exclude)
    real_errors = {k for k in excluded if k.startswith("popular_animals/cat/")}  # wrong or ambiguous, by eye
    items = [it for it in discover([args.data]) + discover_none([args.none])
             if it["key"] in split and (it["key"] not in excluded or it["key"] in real_errors)]
    t = time.time()
    x, _, paths, errors = features([it["path"] for it in items], cache=Path(args.cache) / "features.npz")
    by_path = {it["path"]: it for it in items}
    items = [by_path[p] for p in paths]
    d = x.shape[1] // 2
    own, mirror = x[:, :d], x[:, d:]
    emb = embedding(own)
    y = np.array([LABELS.index(it["label"]) for it in items])
    part = np.array([split[it["key"]] for it in items])
    print(f"features of {len(items)} photos ({time.time() - t:.0f} s; {len(errors)} unreadable)")

    fit_at = np.flatnonzero((part != "test") & ~np.isin([it["key"] for it in items], list(real_errors)))
    test_at = np.flatnonzero((part == "test") & (y < len(CLASSES)))
    rows = np.concatenate([own[fit_at], mirror[fit_at]])
    c, _ = probe.cross_validate(rows, np.where(np.tile(y[fit_at], 2) == 10, -1, np.tile(y[fit_at], 2)),
                                np.tile(np.arange(len(fit_at)), 2), np.ones(len(rows), bool), args.cs, log=print)
    served = probe.probe(c).fit(rows, np.tile(y[fit_at], 2))
    print(f"\n## Test set: the {len(test_at)} Animals-10 test photos, a probe fitted on the {len(fit_at)} train and "
          f"validation photos scoring them; {args.seeds} draws of flips\n")
    test_items = [items[i] for i in test_at]
    p_own, p_mirror = probe.probabilities(served, own[test_at]), probe.probabilities(served, mirror[test_at])
    table = {}
    for seed in range(args.seeds):
        flips = flip(test_items, args.share, random.Random(seed))
        yf = np.array([LABELS.index(flips.get(i, it["label"])) for i, it in enumerate(test_items)])
        llm = simulated_llm(test_items, random.Random(1000 + seed))
        near = neighbour_label_probabilities(emb[test_at], yf, len(LABELS))
        orders = {**cleanlab_orders(yf, p_own, emb[test_at]),
                  ONE_PASS: suspects_first(label_quality_scores(yf, p_own, p_mirror, neighbours=near)),
                  OURS: suspects_first(review_scores(own[test_at], mirror[test_at], yf, p_own, p_mirror,
                                                     cs=args.cs)),
                  "ours + LLM": suspects_first(review_scores(own[test_at], mirror[test_at], yf, p_own, p_mirror,
                                                             llm, cs=args.cs))}
        for name, order in orders.items():
            table.setdefault(name, []).append(measure(order, set(flips)))
    print_table(table, f"{len(flips)} flips a draw")

    train_at = np.concatenate([fit_at, [i for i, it in enumerate(items) if it["key"] in real_errors]])
    train_items = [items[i] for i in train_at]
    real = {k for k, it in enumerate(train_items) if it["key"] in real_errors}
    seen = {k for k, it in enumerate(train_items) if it["key"] in BY_EYE}
    print(f"\n## Training set: {len(train_at)} photos (train and validation, with the {len(real)} known-wrong "
          f"popular_animals cats put back), out-of-fold probabilities; {args.train_seeds} draws of flips\n")
    table, found_real, gains = {}, [], []
    for seed in range(args.train_seeds):
        flips = flip(train_items, args.share, random.Random(seed), keep=real_errors)
        yf = np.array([LABELS.index(flips.get(i, it["label"])) for i, it in enumerate(train_items)])
        t = time.time()
        _, oof, oof_mirror = out_of_fold(own[train_at], np.where(yf == 10, -1, yf), mirror[train_at], cs=args.cs)
        near = neighbour_label_probabilities(emb[train_at], yf, len(LABELS))
        orders = {**cleanlab_orders(yf, oof, emb[train_at]),
                  ONE_PASS: suspects_first(label_quality_scores(yf, oof, oof_mirror, neighbours=near)),
                  OURS: suspects_first(review_scores(own[train_at], mirror[train_at], yf, cs=args.cs))}
        print(f"draw {seed}: {len(flips)} flips; {time.time() - t:.0f} s")
        for name, order in orders.items():
            table.setdefault(name, []).append(measure(order, set(flips), (real | seen) - set(flips)))
        found_real.append({name: len(real & set(order[:len(flips)].tolist())) for name, order in orders.items()})
        gains.append(retrain(own, mirror, train_at, test_at, y, yf, flips, orders, c))
    print_table(table, f"{len(flips)} flips a draw", by_eye=True)
    print(f"\nthe {len(real)} known-wrong popular_animals cats (exclude.txt) within the first N (mean over draws): "
          + ", ".join(f"{k}: {np.mean([f[k] for f in found_real]):.1f}" for k in found_real[0]))
    print(f"\n## Retraining on the training set, scored on the {len(test_at)} held-out Animals-10 test photos "
          "(mean over draws)\n")
    print("| training labels | balanced accuracy | accuracy |")
    print("|---|---|---|")
    for name in gains[0]:
        print(f"| {name} | {np.mean([g[name][0] for g in gains]):.4f} | {np.mean([g[name][1] for g in gains]):.4f} |")


def retrain(own, mirror, train_at, test_at, y, yf, flips, orders, c):
    """Held-out scores of probes trained on the flipped labels, on them with the flips a reviewer meets in the
    first 1.5 x N of a ranking fixed, and on the true labels."""
    rows = np.concatenate([own[train_at], mirror[train_at]])
    true = y[train_at]
    labels = {"with the flips": yf}
    for name in (CLEANLAB, OURS):
        fixed = yf.copy()
        found = sorted(set(orders[name][: int(1.5 * len(flips))].tolist()) & set(flips))
        fixed[found] = true[found]
        labels[f"flips in {name}'s first 1.5 x N fixed"] = fixed
    labels["true labels"] = true
    return {name: balanced(probe.probe(c).fit(rows, np.tile(lab, 2)), own[test_at], y[test_at])
            for name, lab in labels.items()}


def print_table(table, note, by_eye=False):
    extra = " | precision at N, also counting labels found wrong by eye" if by_eye else ""
    print(f"| ranking ({note}) | precision at N | flips within the first 1.5 x N{extra} |")
    print("|---|---|---|" + ("---|" if by_eye else ""))
    for name, values in table.items():
        p, r, e = np.mean(values, 0)
        print(f"| {name} | {p:.1%} (lowest {min(v[0] for v in values):.1%}) | {r:.1%}"
              + (f" | {e:.1%}" if by_eye else "") + " |")


if __name__ == "__main__":
    main()
