"""A fine-tuned finalist given folds: the backbone's last layer (its 1x1 head convolution, BatchNorm frozen) and a
linear head started from the probe's solution, trained on cached inputs to that layer, judged by the same outer
folds over Animals-10's own photos as ``linear_probe.py --folds 5 --none-class`` and paired against it.

    python benchmarks/linear_probe.py --backbone efficientnet_lite2 --size 384 --folds 5 --none-class \
        --save /tmp/probe-oof.npz        # the probe it is judged against (and the cached features it starts from)
    python benchmarks/top_finetune.py --against /tmp/probe-oof.npz [--epochs 4] [--lr 3e-5]

Why the last layer only: everything before it is frozen, so its input (12x12x352 at 384 px for Lite2) is computed
once per photo and view, and an epoch runs one 1x1 convolution per photo instead of the whole network; a CPU can
give such a recipe five folds. The head starts at the probe's weights (C 1, fitted on the fold's training photos),
so training begins where the probe ends and can only move as far as the learning rate and epochs let it.
The photos' mirror images are a second training view. Nothing here chose the recipe from the test folds: epochs
and learning rate are fixed in advance.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
from linear_probe import ANIMALS10, against, data_arguments, fmt  # noqa: E402

from classifier.classes import CLASSES  # noqa: E402
from training.data import discover, read_keys, read_split  # noqa: E402

BACKBONE, SIZE = "efficientnet_lite2", 384


def top_inputs(paths, cache, mirror=False):
    """The input to the backbone's head convolution for each photo (float16, cached in ``cache``)."""
    if Path(cache).exists():
        data = np.load(cache)
        if list(data["paths"]) == list(paths):
            return data["x"]
    import keras

    from classifier.backbones import build_backbone
    from classifier.images import decode

    base = build_backbone(BACKBONE, size=SIZE)
    cut = keras.Model(base.input, base.get_layer("top_conv").input)
    out = []
    for start in range(0, len(paths), 32):
        batch = np.stack([decode(p, SIZE) for p in paths[start:start + 32]])
        out.append(cut.predict(np.ascontiguousarray(batch[:, :, ::-1] if mirror else batch), verbose=0)
                   .astype(np.float16))
    x = np.concatenate(out)
    np.savez(cache, x=x, paths=np.array(paths))
    return x


def top_model(probe_kernel, probe_bias):
    """Head convolution (trainable; BatchNorm frozen, in inference mode) + pooling + the linear head over the ten
    and none, started from the probe's folded weights."""
    import keras
    from keras import layers

    from classifier.backbones import build_backbone

    base = build_backbone(BACKBONE, size=SIZE)
    conv, bn = base.get_layer("top_conv"), base.get_layer("top_bn")
    inputs = keras.Input(conv.input.shape[1:])
    x = conv(inputs)
    bn.trainable = False
    x = bn(x, training=False)
    x = layers.ReLU(6.0)(x)
    x = layers.GlobalAveragePooling2D()(x)
    head = layers.Dense(len(CLASSES) + 1, activation="softmax")
    model = keras.Model(inputs, head(x))
    head.set_weights([probe_kernel, probe_bias])
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data_arguments(ap)
    ap.add_argument("--cache", default="/tmp/top_finetune")
    ap.add_argument("--features", default="/tmp/linear_probe_features-efficientnet_lite2-384",
                    help="linear_probe.py's cached pooled features at 384 px (the probe the head starts from)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--against", action="append", default=[], metavar="NPZ",
                    help="a saved linear_probe.py --folds run (--save) to compare with, paired")
    ap.add_argument("--save", default="/tmp/top_finetune-oof.npz", help="where its out-of-fold probabilities go")
    args = ap.parse_args()

    import keras
    from sklearn.model_selection import StratifiedKFold

    from evaluation.metrics import evaluate
    from training.probe import head_weights, probe

    excluded, split = read_keys(args.exclude), read_split(args.split)
    items = [it for it in discover([args.animals]) if it["key"] not in excluded]
    nones = sorted(p for p in Path(args.none).rglob("*") if p.is_file())
    pooled, pooled_none = np.load(f"{args.features}-animals.npz"), np.load(f"{args.features}-none.npz")
    items = [it for it, good in zip(items, pooled["ok"]) if good]
    nones = [p for p, good in zip(nones, pooled_none["ok"]) if good]
    none_train = np.array([split.get(f"none/{p.relative_to(args.none).as_posix()}") != "test" for p in nones])
    paths = [it["path"] for it in items] + [str(p) for p, t in zip(nones, none_train) if t]
    y = np.r_[[CLASSES.index(it["label"]) for it in items], np.full(int(none_train.sum()), len(CLASSES))]
    f = np.r_[pooled["x"], pooled_none["x"][none_train]]
    own = np.r_[[it["source"] == ANIMALS10 for it in items], np.zeros(int(none_train.sum()), bool)]
    maps = [top_inputs(paths, f"{args.cache}-{name}.npz", name == "mirror") for name in ("clean", "mirror")]
    print(f"{len(paths)} photos ({int(own.sum())} of Animals-10), cached inputs {maps[0].shape[1:]}", flush=True)

    idx_own, idx_other = np.flatnonzero(own), np.flatnonzero(~own)
    oof, oof_tta = np.zeros((len(idx_own), len(CLASSES))), np.zeros((len(idx_own), len(CLASSES)))
    outer = StratifiedKFold(args.folds, shuffle=True, random_state=0)  # the folds of linear_probe.py's nested_cv
    for fold, (fit_at, test_at) in enumerate(outer.split(idx_own, y[idx_own]), 1):
        train, test = np.r_[idx_other, idx_own[fit_at]], idx_own[test_at]
        fitted = probe(1.0).fit(f[train], y[train])
        model = top_model(*head_weights(fitted, 1.0, f.shape[1]))
        counts = np.bincount(y[train], minlength=len(CLASSES) + 1)
        weight = (len(train) / (len(counts) * counts))[y[train]]  # class-balanced, as the probe
        model.compile(keras.optimizers.AdamW(args.lr, weight_decay=1e-4), "sparse_categorical_crossentropy")
        x_train = np.concatenate([m[train] for m in maps])
        model.fit(x_train, np.tile(y[train], 2), sample_weight=np.tile(weight, 2), epochs=args.epochs,
                  batch_size=64, shuffle=True, verbose=0)
        p = [model.predict(m[test], batch_size=128, verbose=0)[:, :len(CLASSES)] for m in maps]
        oof[test_at], oof_tta[test_at] = p[0], (p[0] + p[1]) / 2
        start = fitted.predict_proba(f[test])[:, :len(CLASSES)].argmax(1)
        right = [np.mean(q.argmax(1) == y[test]) for q in (p[0], oof_tta[test_at])]
        print(f"  fold {fold}: accuracy {np.mean(start == y[test]):.3f} at the probe's start, fine-tuned "
              f"{right[0]:.3f}, with mirror {right[1]:.3f}", flush=True)
        keras.backend.clear_session()

    y_own = y[idx_own]
    keys = np.array([it["key"] for it in items if it["source"] == ANIMALS10])
    np.savez(args.save, oof=oof, y=y_own, keys=keys)
    for name, probs in (("fine-tuned head conv", oof), ("fine-tuned head conv, mirror at test", oof_tta)):
        report = evaluate([CLASSES[i] for i in y_own], [CLASSES[i] for i in probs.argmax(1)], probs)
        pc = report["per_class"]
        print(f"\n{name}: balanced accuracy {report['balanced_accuracy']:.3f} "
              f"{fmt(report['balanced_accuracy_ci95'])}, accuracy {report['accuracy']:.3f}")
        print("  recall: " + ", ".join(f"{c} {m['recall']:.3f}" for c, m in pc.items()))
        print(f"  precision: dog {pc['dog']['precision']:.3f}, cow {pc['cow']['precision']:.3f}")
        against(args.against, keys, y_own, probs)


if __name__ == "__main__":
    main()
