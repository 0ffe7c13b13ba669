"""The floor every recipe is compared to: a linear probe (frozen ImageNet EfficientNet-Lite features at a chosen
input size + scikit-learn logistic regression, class-balanced) on the pinned split, beside the shipped default model,
on the same photos.

    python benchmarks/linear_probe.py [--backbone efficientnet_lite2] [--size 384] [--folds 5]
                                      [--animals ../shared/data/animals] [--none ../shared/data/none]
                                      [--split assets/model/split-a10.csv] [--exclude assets/model/exclude.txt]

With ``--folds K``, also a figure no choice saw: nested cross-validation over Animals-10's own photos (K stratified
outer folds; the other sources always in training; C chosen inside each outer fold by an inner 3-fold split of its
Animals-10 photos), balanced accuracy first with its 95% bootstrap interval, every class's recall and the dog and cow
precision, from the out-of-fold probabilities. The recipe can change in the nested procedure alone: ``--views K``
(augmented views of each training photo, in its photo's fold), ``--mirror train|test|both`` (a mirrored copy as a
training view, averaged in at test, or both), ``--none-weight W`` (the none class's weight), ``--leave-out SOURCE``
(a source out of training); ``--save`` keeps the out-of-fold probabilities and ``--against`` compares them with a
saved run's on the same photos (paired bootstrap of balanced accuracy).

Trained on the split's train photos (the ten classes), its C chosen on the validation photos; reported on the test
photos per source and, for Animals-10's own test half, per class with 95% bootstrap intervals; the open-set figures
use the held-out none categories (test) against the Animals-10 test photos: AUROC of the top probability, and the
share of none photos accepted at the threshold that keeps 95% of the in-set ones. The shipped model is trained on
this split (its test photos are new to it), as are the runs passed with ``--model``.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from classifier.classes import CLASSES  # noqa: E402
from classifier.predictor import Classifier  # noqa: E402
from evaluation.metrics import KEEP, evaluate, open_set_scores, per_source  # noqa: E402
from training.data import discover, read_keys, read_split  # noqa: E402
from training.probe import CS, probe  # noqa: E402  (the recipe the shipped default is made with)

ANIMALS10 = "baidu140388_test_sample"


def features(paths, cache, backbone="efficientnet_lite0", size=None):
    """Pooled ImageNet features of ``backbone`` at input ``size`` for ``paths`` (cached in ``cache``, an .npz, between
    runs)."""
    if Path(cache).exists():
        data = np.load(cache)
        if list(data["paths"]) == list(paths):
            return data["x"], data["ok"]
    from classifier.model import build_classifier
    from training.head import extract_features

    x, ok, _ = extract_features(build_classifier(backbone, weights="imagenet", size=size), paths, 32)
    np.savez(cache, x=x, ok=ok, paths=np.array(paths))
    return x, ok


def view_features(paths, labels, cache, backbone, size, view, seed=0):
    """Features of one transformed copy of each photo (cached like :func:`features`): ``view`` is "mirror" (the
    photo mirrored left to right) or "augment" (the training recipe's default augmentation, its random draws seeded
    by ``seed``). Every path must be readable (pass the ones :func:`features` kept)."""
    if Path(cache).exists():
        data = np.load(cache)
        if list(data["paths"]) == list(paths):
            return data["x"]
    from classifier.images import decode
    from classifier.model import build_classifier
    from training.augment import Augmenter
    from training.head import feature_model

    model = build_classifier(backbone, weights="imagenet", size=size)
    extractor = Classifier.from_keras(feature_model(model))
    size = model.input.shape[1]
    augment = Augmenter(size=size, seed=seed)
    out = []
    for start in range(0, len(paths), 32):
        batch = [decode(p, size) for p in paths[start:start + 32]]
        if view == "mirror":
            batch = [b[:, ::-1] for b in batch]
        else:
            batch = [augment(b, label) for b, label in zip(batch, labels[start:start + 32])]
        out.append(extractor.predict_pixels(np.ascontiguousarray(np.stack(batch))))
    x = np.concatenate(out)
    np.savez(cache, x=x, paths=np.array(paths))
    return x


def paired(y, pred_a, pred_b, n_boot=2000, seed=0):
    """Paired bootstrap over the same photos: the 95% interval of balanced accuracy(b) - balanced accuracy(a), and the
    share of resamples where b is better. A recipe counts as better than the probe only where the interval is above
    zero."""
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        diffs.append(balanced_accuracy_score(y[i], pred_b[i]) - balanced_accuracy_score(y[i], pred_a[i]))
    diffs = np.array(diffs)
    return np.percentile(diffs, [2.5, 97.5]), float((diffs > 0).mean())


def ten(probs):
    """The ten classes' probabilities (an 11th, none-of-the-ten column, folded away: dropped, not renormalised, so a
    photo of none of them keeps a low top probability)."""
    return probs[:, :len(CLASSES)]


def balanced(y, pred):
    from sklearn.metrics import balanced_accuracy_score

    return balanced_accuracy_score(y, pred)


def nested_cv(x, y, own, folds, cs, views=(), tta=(), weight=None, seed=0):
    """Out-of-fold probabilities for the photos where ``own`` (Animals-10's), each predicted by a probe trained on
    every other photo, its C chosen by an inner 3-fold split of the training fold's own photos (balanced accuracy);
    returns ``(probabilities of the own photos over the ten, chosen C per fold)``. Rows of ``x`` whose ``y`` is 10
    (none of the ten, with ``--none-class``) are always in training: an 11th class whose column is dropped.

    ``views``: arrays aligned with ``x``, transformed copies of each photo added to training wherever the photo is
    in training; ``tta``: arrays aligned with ``x`` whose probabilities are averaged with the photo's own at test;
    ``weight``: a sample weight per row (its views share it)."""
    from sklearn.model_selection import StratifiedKFold

    def fit(c, rows):
        fit_kw = {} if weight is None else {"logisticregression__sample_weight": np.tile(weight[rows], len(views) + 1)}
        return probe(c).fit(np.concatenate([x[rows], *(v[rows] for v in views)]),
                            np.tile(y[rows], len(views) + 1), **fit_kw)

    def predict(fitted, rows):
        return ten(np.mean([fitted.predict_proba(a[rows]) for a in (x, *tta)], axis=0))

    idx_own, idx_other = np.flatnonzero(own), np.flatnonzero(~own)
    oof, chosen = np.zeros((len(idx_own), len(CLASSES))), []
    outer = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_at, test_at in outer.split(idx_own, y[idx_own]):
        fit_own = idx_own[fit_at]
        inner = StratifiedKFold(3, shuffle=True, random_state=seed)
        score = {c: [] for c in cs}
        for a, b in inner.split(fit_own, y[fit_own]):
            train = np.r_[idx_other, fit_own[a]]
            for c in cs:
                score[c].append(balanced(y[fit_own[b]], predict(fit(c, train), fit_own[b]).argmax(1)))
        c = max(cs, key=lambda c: np.mean(score[c]))
        chosen.append(c)
        oof[test_at] = predict(fit(c, np.r_[idx_other, fit_own]), idx_own[test_at])
        print(f"  fold {len(chosen)}: C={c} (inner balanced accuracy "
              + ", ".join(f"{k}: {np.mean(v):.3f}" for k, v in score.items()) + ")", flush=True)
    return oof, chosen


def open_set(p_in, p_none, keep=KEEP):
    """AUROC of the top probability (in-set against none), the share of none accepted at ``keep`` coverage, and
    that threshold."""
    scores = open_set_scores(p_in.max(1), p_none.max(1), keep)
    return scores["auroc"], scores["none_accepted"], scores["threshold"]


def row(name, labels, probs, sources):
    preds = [CLASSES[i] for i in probs.argmax(1)]
    report = evaluate(labels, preds, probs)
    a10 = [i for i, s in enumerate(sources) if s == ANIMALS10]
    own = evaluate([labels[i] for i in a10], [preds[i] for i in a10], probs[a10])
    return {"name": name, "all": report, "a10": own, "per_source": per_source(labels, preds, sources)}


def cv_report(x, y, items, xn, none_test, none_sources, views, args):
    """Print the nested cross-validation's figures on Animals-10's own photos (see the module's docstring) for the
    recipe the options name, save its out-of-fold probabilities, and with ``--against`` compare them, paired, with
    a saved run of the procedure. ``views``: name -> (rows aligned with ``x``, rows aligned with ``xn``)."""
    own = np.array([it["source"] == ANIMALS10 for it in items])
    keep = np.array([it["source"] not in args.leave_out for it in items])
    train_views = [v for k, v in views.items() if k.startswith("augment") or args.mirror in ("train", "both")]
    tta = [views["mirror"]] if args.mirror in ("test", "both") else []
    x, y, own = x[keep], y[keep], own[keep]
    train_views, tta = ([(a[keep], b) for a, b in vs] for vs in (train_views, tta))
    if args.none_class:  # the none photos not held out for the open-set figures: an 11th class in training
        train = ~none_test & ~np.isin(none_sources, args.leave_out)
        x, y = np.r_[x, xn[train]], np.r_[y, np.full(int(train.sum()), len(CLASSES))]
        own = np.r_[own, np.zeros(int(train.sum()), bool)]
        train_views, tta = ([(np.r_[a, b[train]], b) for a, b in vs] for vs in (train_views, tta))
    weight = np.where(y == len(CLASSES), args.none_weight, 1.0) if args.none_weight != 1 else None
    print(f"nested {args.folds}-fold cross-validation, {args.backbone} at {args.size or 'its own'} px: "
          f"{int(own.sum())} Animals-10 photos, {int((~own).sum())} others always in training"
          + (f" ({int((y == len(CLASSES)).sum())} of none as an 11th class, weight {args.none_weight})"
             if args.none_class else "")
          + (f"; left out: {', '.join(args.leave_out)}" if args.leave_out else "")
          + f"; {len(train_views)} training views, {len(tta)} test-time views", flush=True)
    oof, chosen = nested_cv(x, y, own, args.folds, CS, [a for a, _ in train_views], [a for a, _ in tta], weight)
    labels = [CLASSES[i] for i in y[own]]
    report = evaluate(labels, [CLASSES[i] for i in oof.argmax(1)], oof)
    pc = report["per_class"]
    print(f"\nout of fold: balanced accuracy {report['balanced_accuracy']:.3f} {fmt(report['balanced_accuracy_ci95'])}"
          f", accuracy {report['accuracy']:.3f} {fmt(report['accuracy_ci95'])}, n {report['n_scored']}, C {chosen}")
    print("  recall: " + ", ".join(f"{c} {m['recall']:.3f} {fmt(m['recall_ci95'])}" for c, m in pc.items()))
    print(f"  precision: dog {pc['dog']['precision']:.3f} {fmt(pc['dog']['precision_ci95'])}, cow "
          f"{pc['cow']['precision']:.3f} {fmt(pc['cow']['precision_ci95'])}")
    # The held-out none photos' scores, from a probe on every training photo (the folds' median C).
    fit_kw = {} if weight is None else {"logisticregression__sample_weight": np.tile(weight, len(train_views) + 1)}
    full = probe(float(np.median(chosen))).fit(np.concatenate([x, *(a for a, _ in train_views)]),
                                               np.tile(y, len(train_views) + 1), **fit_kw)
    p_none = ten(np.mean([full.predict_proba(b[none_test]) for b in (xn, *(b for _, b in tta))], axis=0))
    auroc, accepted, threshold = open_set(oof, p_none)
    answered = oof.max(1) >= threshold
    right = (oof.argmax(1) == y[own])[answered].mean()
    print(f"  open set: AUROC {auroc:.3f}; the threshold keeping 95% of them ({threshold:.3f}) accepts "
          f"{accepted:.1%} of the held-out none photos and is right on {right:.3f} of the animals it answers")
    keys = np.array([it["key"] for it, k in zip(items, keep) if k and it["source"] == ANIMALS10])
    np.savez(args.save or f"{args.cache}-{args.backbone}-{args.size or 'own'}{'-none' if args.none_class else ''}"
             "-oof.npz", oof=oof, y=y[own], keys=keys)
    against(args.against, keys, y[own], oof)


def against(saved_runs, keys, y, probs):
    """Print a paired bootstrap of balanced accuracy (:func:`paired`) of ``probs`` against each saved run of the
    nested procedure (``--save``: out-of-fold probabilities by photo key), on the photos ``keys``."""
    for other in saved_runs:
        saved = np.load(other)
        at = {k: i for i, k in enumerate(saved["keys"])}
        base = saved["oof"][[at[k] for k in keys]].argmax(1)
        (low, high), better = paired(y, base, probs.argmax(1))
        print(f"  paired bootstrap against {Path(other).name} ({balanced(y, base):.3f}): balanced accuracy "
              f"{low:+.3f} to {high:+.3f} (95%); better in {better:.0%} of resamples")


def data_arguments(ap):
    """The photos a benchmark reads: the animals, the none photos, the pinned split and the exclusions."""
    ap.add_argument("--animals", default=str(ROOT.parent / "shared" / "data" / "animals"))
    ap.add_argument("--none", default=str(ROOT.parent / "shared" / "data" / "none"))
    ap.add_argument("--split", default=str(ROOT / "assets" / "model" / "split-a10.csv"))
    ap.add_argument("--exclude", default=str(ROOT / "assets" / "model" / "exclude.txt"))


def fmt(ci):
    return f"({ci[0]:.3f}-{ci[1]:.3f})" if ci else "(-)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_arguments(ap)
    ap.add_argument("--cache", default="/tmp/linear_probe_features")
    ap.add_argument("--backbone", default="efficientnet_lite0", choices=("efficientnet_lite0", "efficientnet_lite2"))
    ap.add_argument("--size", type=int, default=None, help="input size in pixels (default: the backbone's own)")
    ap.add_argument("--folds", type=int, default=0, help="also nested cross-validation over Animals-10's photos")
    ap.add_argument("--features-only", action="store_true", help="compute and cache the features, then stop")
    ap.add_argument("--none-class", action="store_true",
                    help="with --folds: the split's non-test none photos as an 11th class in training (folded away)")
    ap.add_argument("--views", type=int, default=0,
                    help="with --folds: this many augmented views of each training photo, kept in its photo's fold")
    ap.add_argument("--mirror", choices=("train", "test", "both"),
                    help="with --folds: a mirrored copy of each photo as a training view, as test-time "
                         "augmentation (probabilities averaged), or both")
    ap.add_argument("--none-weight", type=float, default=1.0,
                    help="with --none-class: the none class's weight against one animal class's (default 1)")
    ap.add_argument("--leave-out", action="append", default=[], metavar="SOURCE",
                    help="with --folds: leave this source's photos out of training (repeatable)")
    ap.add_argument("--save", help="with --folds: where to save the out-of-fold probabilities (.npz)")
    ap.add_argument("--against", action="append", default=[], metavar="NPZ",
                    help="with --folds: paired bootstrap against a saved run's out-of-fold probabilities")
    ap.add_argument("--model", action="append", default=[],
                    help="also a trained run's model on the same photos (repeatable), e.g. runs/a10-v2/model.keras")
    args = ap.parse_args()
    split, excluded = read_split(args.split), read_keys(args.exclude)
    items = [it for it in discover([args.animals]) if it["key"] not in excluded]
    nones = sorted(p for p in Path(args.none).rglob("*") if p.is_file())
    none_keys = [f"none/{p.relative_to(args.none).as_posix()}" for p in nones]
    tag = f"{args.cache}-{args.backbone}-{args.size or 'own'}"
    x, ok = features([it["path"] for it in items], f"{tag}-animals.npz", args.backbone, args.size)
    xn, okn = features([str(p) for p in nones], f"{tag}-none.npz", args.backbone, args.size)
    kept = [it for it, good in zip(items, ok) if good]
    kept_none = [str(p) for p, good in zip(nones, okn) if good]
    views = {}  # name -> (animal rows, none rows), aligned with x and xn
    for name in (["mirror"] if args.mirror else []) + [f"augment{i}" for i in range(args.views)]:
        kind, seed = ("mirror", 0) if name == "mirror" else ("augment", int(name[7:]))
        views[name] = tuple(view_features(paths, labels, f"{tag}-{part}-{name}.npz", args.backbone, args.size,
                                          kind, seed)
                            for part, paths, labels in (("animals", [it["path"] for it in kept],
                                                         [it["label"] for it in kept]),
                                                        ("none", kept_none, ["none"] * len(kept_none))))
    if args.features_only:
        return
    items = [it for it, good in zip(items, ok) if good]
    y = np.array([CLASSES.index(it["label"]) for it in items])
    part = np.array([split[it["key"]] for it in items])
    none_test = np.array([split.get(k) == "test" for k, good in zip(none_keys, okn) if good])
    if args.folds:
        none_sources = np.array([k.split("/")[1] for k, good in zip(none_keys, okn) if good])
        cv_report(x, y, items, xn, none_test, none_sources, views, args)

    best = None
    for c in CS:
        fitted = probe(c).fit(x[part == "train"], y[part == "train"])
        val = (fitted.predict(x[part == "val"]) == y[part == "val"]).mean()
        print(f"C={c}: validation accuracy {val:.4f}")
        if best is None or val > best[0]:
            best = (val, c, fitted)
    val_acc, c, fitted = best
    test = part == "test"
    labels = [CLASSES[i] for i in y[test]]
    sources = [it["source"] for it, t in zip(items, test) if t]
    p_probe = fitted.predict_proba(x[test])
    rows = [row(f"linear probe (C={c}, val {val_acc:.3f})", labels, p_probe, sources)]
    a10_test = np.array([s == ANIMALS10 for s in sources])
    opens = [("linear probe", open_set(p_probe[a10_test], fitted.predict_proba(xn[none_test])))]
    paths = [it["path"] for it, t in zip(items, test) if t]
    none_paths = [str(p) for p, good, t in zip(nones, okn, [split.get(k) == "test" for k in none_keys]) if good and t]
    models = list(args.model)
    shipped = Classifier.load()
    if shipped.meta.get("measured_on") == "test":  # trained on this split's training photos: its test is new to it
        models.insert(0, None)
    else:
        print(f"the shipped default ({shipped.name}) trained on every photo: its figure is the nested "
              "cross-validation (--folds), not this split's test")
    y_a10 = y[test][a10_test]
    for model in models:  # runs trained on this split: every test photo is new to them
        clf = shipped if model is None else Classifier.load(model)
        name = "shipped default model" if model is None else f"run {Path(model).parent.name}"
        probs, _ = clf.predict_paths(paths)
        p_run = np.stack([probs[p] for p in paths])
        rows.append(row(name, labels, p_run, sources))
        pn, _ = clf.predict_paths(none_paths)
        p_none = np.stack([pn[p] for p in none_paths])
        opens.append((name, open_set(p_run[a10_test], p_none)))
        (low, high), better = paired(y_a10, p_probe[a10_test].argmax(1), p_run[a10_test].argmax(1))
        print(f"paired bootstrap on Animals-10's test photos, {name} minus the probe: balanced accuracy "
              f"{low:+.3f} to {high:+.3f} (95%); better in {better:.0%} of resamples")

    print(f"\ntest photos: {int(test.sum())} ({int(a10_test.sum())} from Animals-10); held-out none categories: "
          f"{int(none_test.sum())} photos\n")
    print("| model | Animals-10 test accuracy (95% CI) | n | cat recall | dog precision | sheep recall | all test "
          "sources |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        a = r["a10"]
        ci = a["accuracy_ci95"]
        pc = a["per_class"]
        print(f"| {r['name']} | {a['accuracy']:.3f} ({ci[0]:.3f}-{ci[1]:.3f}) | {a['n_scored']} | "
              f"{pc['cat']['recall']:.3f} | {pc['dog']['precision']:.3f} | {pc['sheep']['recall']:.3f} | "
              f"{r['all']['accuracy']:.3f} |")
    print("\ngoals on Animals-10's test photos (top-1 among the ten, threshold off; 95% bootstrap intervals):")
    for r in rows:
        a, pc = r["a10"], r["a10"]["per_class"]
        worst = min(pc, key=lambda c: pc[c]["recall"])
        print(f"  {r['name']}: accuracy {a['accuracy']:.3f} {fmt(a['accuracy_ci95'])} (goal >= 0.97); lowest recall "
              f"{worst} {pc[worst]['recall']:.2f} (>= 0.90); cat recall {pc['cat']['recall']:.3f} "
              f"{fmt(pc['cat']['recall_ci95'])} of {pc['cat']['support']} (>= 0.97); dog precision "
              f"{pc['dog']['precision']:.3f} {fmt(pc['dog']['precision_ci95'])} (>= 0.97)")
    print("\nper class on Animals-10's test photos (recall, support):")
    for r in rows:
        print(f"  {r['name']}: " + ", ".join(f"{c} {m['recall']:.2f}/{m['support']}"
                                             for c, m in r["a10"]["per_class"].items()))
    print("\nper source (test):")
    for r in rows:
        print(f"  {r['name']}: " + ", ".join(f"{s} {v['accuracy']:.3f}/{v['n_scored']}"
                                             for s, v in r["per_source"].items()))
    for name, (auroc, accepted, threshold) in opens:
        print(f"open set, {name}: AUROC {auroc:.3f}; at the threshold keeping 95% of Animals-10 test photos "
              f"({threshold:.3f}) it accepts {accepted:.1%} of the held-out none photos")


if __name__ == "__main__":
    main()
