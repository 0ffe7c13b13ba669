"""Spend the LLM where it helps: how many calls "only where the classifier is unsure" saves, and how many wrong
labels still get caught, against asking the LLM about every photo.

    python benchmarks/llm_budget.py [--data ../shared/data/animals] [--below 0.9] [--weak cat,dog] [--seeds 3]

The photos are the default model's held-out Animals-10 test photos (``split-a10.csv``; it never trained on them).
A local OpenAI-compatible server (``tests/fake_openai.py``, real HTTP) answers like an LLM with errors: about 10%
of its answers are wrong the way GLM-4V was wrong, made as ``benchmarks/suspects_flips.py`` makes them (cat<->dog,
sheep<->cow, some "none", a few other classes). Two ways to label the set, through the app's own ``autolabel``:

- **all**: the LLM labels every photo (what auto-label did before);
- **unsure**: the LLM labels only the photos the classifier is unsure about (top probability under ``--below``, or
  a top class among ``--weak``); the others take the classifier's answer.

A wrong label is **caught** when the review queue (``labeling.suspects.rank``, the served model against the label)
puts it among its first 1.5 x (wrong labels) images, as a reviewer working down the queue would meet it.
"""

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from fake_openai import FakeGLM, ok  # noqa: E402
from suspects_flips import flip  # noqa: E402

from classifier.predictor import Classifier  # noqa: E402
from labeling.glm import GLMLabeler  # noqa: E402
from labeling.llm import autolabel, encode_image  # noqa: E402
from labeling.store import LabelStore  # noqa: E402
from labeling.suspects import label_sure, model_key, predict_store, rank, sure  # noqa: E402
from training.data import discover, read_split  # noqa: E402


def run(items, answers, clf, mode, below, weak, folder):
    """Label the set one way; returns (LLM calls, wrong labels, wrong labels caught, labels flagged in all)."""
    server = FakeGLM()
    store = LabelStore(folder / f"labels-{mode}.db")
    store.import_folder(folder / "testdata")
    by_key = {r["key"]: r for r in store.state()}
    for it in items:
        server.script(encode_image(by_key[it["key"]]["file"]), ok(answers[it["key"]]))
    probs = predict_store(store, clf)
    skip = sure(store.cached_predictions(model_key(clf)), clf.classes, below, weak) if mode == "unsure" else set()
    label_sure(store, clf, skip)  # where the LLM is not asked, the classifier's answer is the label
    try:
        summary = autolabel(store, GLMLabeler("sk-local", server.url, "fake-llm", backoff=0.01), concurrency=4,
                            skip=skip)
    finally:
        server.stop()
    truth = {it["key"]: it["label"] for it in items}
    rows = rank(store.state(), probs, clf.classes, clf.none_threshold)
    wrong = {r["key"] for r in rows if r["label"] != truth[r["key"]]}
    top = {r["key"] for r in rows[: int(1.5 * len(wrong))]}
    return summary["total"], len(wrong), len(wrong & top), sum(r["disagree"] for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--split", default=str(ROOT / "assets" / "model" / "split-a10.csv"))
    ap.add_argument("--below", type=float, default=0.9)
    ap.add_argument("--weak", default="cat,dog")
    ap.add_argument("--share", type=float, default=0.10, help="share of the LLM's answers that are wrong")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    split = read_split(args.split)
    items = [it for it in discover([args.data]) if split.get(it["key"]) == "test"]
    clf = Classifier.load()
    weak = [w for w in args.weak.split(",") if w]
    table = []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "testdata").mkdir()
            seeded = [dict(it, key=str(i)) for i, it in enumerate(items)]
            for it in seeded:
                os.symlink(os.path.abspath(it["path"]), folder / "testdata" / f"{it['key']}{Path(it['path']).suffix}")
            flips = flip(seeded, args.share, random.Random(seed))
            answers = {it["key"]: flips.get(it["key"], it["label"]).replace("null", "none of these") for it in seeded}
            for mode in ("all", "unsure"):
                table.append((seed, mode, *run(seeded, answers, clf, mode, args.below, weak, folder)))
    print(f"\nmodel: {clf.name}; {len(items)} held-out Animals-10 test photos; LLM wrong on {args.share:.0%}; "
          f"unsure: top probability < {args.below} or a top class in {weak}\n")
    print("| seed | mode | LLM calls | wrong labels | caught in the queue's first 1.5 x | flagged (disagree) |")
    print("|---|---|---|---|---|---|")
    for seed, mode, calls, wrong, caught, flagged in table:
        print(f"| {seed} | {mode} | {calls} | {wrong} | {caught} ({caught / max(wrong, 1):.0%}) | {flagged} |")
    for mode in ("all", "unsure"):
        rows = [r for r in table if r[1] == mode]
        calls, wrong, caught = (sum(r[i] for r in rows) for i in (2, 3, 4))
        print(f"\n{mode}: {calls / len(rows):.0f} calls a run; {caught} of {wrong} wrong labels caught "
              f"({caught / max(wrong, 1):.0%}); {wrong - caught} missed")
    print(json.dumps({"below": args.below, "weak": weak}))


if __name__ == "__main__":
    main()
