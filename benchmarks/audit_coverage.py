"""Does "how many wrong labels are left?" cover the truth? The audit's 95% interval checked by simulation.

    python benchmarks/audit_coverage.py [--seeds 100] [--audit 60] [--reviewed 60]

The default model's held-out photos of its split (val and test of assets/model/split-a10.csv: it never trained on
them), with the model's real probabilities. Each seed makes about 10% of the labels wrong, either as GLM-4V got them
wrong (cat<->dog, sheep<->cow, some null, a few others: benchmarks/suspects_flips.py's flip) or at random, ranks them
with the review queue's own ranking, lets reviewers fix the first ``--reviewed`` photos of the queue, then draws an
audit of ``--audit`` unreviewed photos, labelled correctly (blind), and estimates the wrong labels left among the
rest (labeling.audit.estimate). Printed per error pattern and design: how often the 95% interval holds the true count
(goal: at least 93 of 100 seeds) and its median width, for the stratified audit (labeling.audit.stratify: the
classifier disagrees / agrees unsure / agrees sure; up to a fifth of the audit to the first) beside a plain random
audit of the same size.
"""

import argparse
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
from suspects_flips import flip  # noqa: E402

from classifier.classes import CLASSES, NONE, parse_label  # noqa: E402
from classifier.predictor import Classifier  # noqa: E402
from labeling.audit import draw, estimate, stratify  # noqa: E402
from labeling.suspects import rank  # noqa: E402
from training.data import discover, read_split  # noqa: E402


def random_flips(items, share, rng):
    """About ``share`` of the labels replaced by another class, uniformly."""
    chosen = rng.sample(items, round(share * len(items)))
    return {it["key"]: rng.choice([c for c in CLASSES if c != it["label"]]) for it in chosen}


def one_run(items, probs, flips, reviewed, audit, stratified, seed, threshold):
    truth = {it["key"]: it["label"] for it in items}
    labels = {k: parse_label(flips.get(k, v)) for k, v in truth.items()}
    rows = [{"id": i, "key": it["key"], "label": labels[it["key"]]} for i, it in enumerate(items)]
    ranked = rank(rows, {i: probs[i] for i in range(len(items))}, CLASSES, threshold)
    unreviewed = ranked[reviewed:]  # the queue's head was reviewed, and fixed
    groups = stratify(unreviewed) if stratified else [[r["id"] for r in unreviewed]]
    chosen = draw(groups, audit, seed)
    wrong = {i for i, it in enumerate(items) if labels[it["key"]] != truth[it["key"]]}
    per = {}
    for i, (h, _, sampled) in chosen.items():
        s = per.setdefault(h, [0, 0, 0])  # left, audited, wrong among the audited
        if sampled:
            s[1] += 1
            s[2] += i in wrong
        else:
            s[0] += 1
    true_left = sum(1 for i, (_, _, sampled) in chosen.items() if not sampled and i in wrong)
    est = estimate([tuple(v) for v in per.values()], draws=5000, seed=seed)
    return true_left, est


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--split", default=str(ROOT / "assets" / "model" / "split-a10.csv"))
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--audit", type=int, default=60)
    ap.add_argument("--reviewed", type=int, default=60)
    ap.add_argument("--share", type=float, default=0.10)
    args = ap.parse_args()
    split = read_split(args.split)
    items = [it for it in discover([args.data]) if split.get(it["key"]) in ("val", "test")]
    clf = Classifier.load()
    by_path, _ = clf.predict_paths([it["path"] for it in items])
    items = [it for it in items if it["path"] in by_path]
    probs = [by_path[it["path"]] for it in items]
    threshold = clf.none_threshold
    print(f"{len(items)} held-out photos; {args.seeds} seeds; about {args.share:.0%} wrong; the queue's first "
          f"{args.reviewed} reviewed; audits of {args.audit} photos\n")
    print("| errors | audit | interval holds the true count | median width | median true count left |")
    print("|---|---|---|---|---|")
    for pattern in ("GLM-like", "random"):
        for design, stratified in (("stratified (disagree / unsure / sure)", True), ("plain random", False)):
            hits, widths, lefts = 0, [], []
            for seed in range(args.seeds):
                rng = random.Random(seed)
                flips = flip(items, args.share, rng) if pattern == "GLM-like" else random_flips(items, args.share, rng)
                flips = {k: (NONE if v == "null" else v) for k, v in flips.items()}
                true_left, est = one_run(items, probs, flips, args.reviewed, args.audit, stratified, seed, threshold)
                hits += est["low"] <= true_left <= est["high"]
                widths.append(est["high"] - est["low"])
                lefts.append(true_left)
            print(f"| {pattern} | {design} | {hits} of {args.seeds} | {np.median(widths):.1f} | "
                  f"{np.median(lefts):.0f} |", flush=True)


if __name__ == "__main__":
    main()
