"""One training run's work once its data is read (:func:`training.record.run`): phase 1 on cached features, phase 2
fine-tuning, evaluation, outputs; or, with a linear head, the probe fitted on the cached features
(:mod:`training.probe`) instead of both phases.

What it writes lands in the run folder beside the record's (``status.json``, ``train.log``, ``history.csv``) and
the data's (``split.csv``): ``model.keras`` (+ ``model.json``), ``train_curves.png``, ``eval/val/`` and ``eval/test/``
(what ``python -m evaluation run`` writes), ``config.json``. Nothing outside the run folder is touched, so a failed or
cancelled run never changes the model the app serves.
"""

import json
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import precision_recall_fscore_support
from tqdm import tqdm

from classifier.backbones import input_size
from classifier.classes import CLASSES, NONE
from classifier.model import build_classifier
from classifier.modelfile import write_calibration, write_meta
from classifier.predictor import Classifier

from . import layout
from .augment import DEFAULT_POLICIES, Augmenter
from .config import TrainConfig
from .data import require_train_and_val
from .dataset import image_dataset
from .distill import Distiller, teacher_ensemble
from .finetune import compile_for, unfreeze_last_blocks
from .head import class_weights, extract_features, feature_model


def label_index(label):
    """A class's output index; -1 for a photo of none of the ten."""
    return -1 if label == NONE else CLASSES.index(label)


def soft_targets(y):
    """One-hot rows for class indices, uniform rows for none (-1): outlier exposure's target (Hendrycks et al.,
    2019), which with cross-entropy pushes the ten outputs towards uniform on things that are none of them."""
    targets = keras.utils.to_categorical(np.maximum(y, 0), len(CLASSES))
    targets[np.asarray(y) < 0] = 1 / len(CLASSES)
    return targets


def weight_table(weights, none_weight):
    """Per-photo weights indexed by label index + 1: none first, then the ten classes (1 without class weights)."""
    return np.array([none_weight, *((weights or {}).get(i, 1.0) for i in range(len(CLASSES)))], np.float32)


def validation_logs(probs, y, none_weight):
    """Validation loss (label cross-entropy, plus the outlier-exposure term on none photos), accuracy, per-class
    recall and precision among the ten, and, with none photos, how well the top probability tells them apart."""
    from evaluation.metrics import open_set_scores

    inset = y >= 0
    p_in, y_in, p_out = probs[inset], y[inset], probs[~inset]
    loss = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y_in, p_in)))
    if len(p_out):
        loss += none_weight * float(np.mean(-np.log(np.clip(p_out, 1e-7, 1)).mean(1)))
    pred = p_in.argmax(1)
    logs = {"val_loss": loss, "val_accuracy": float((pred == y_in).mean())}
    p, r, _, _ = precision_recall_fscore_support(y_in, pred, labels=range(len(CLASSES)), zero_division=0)
    for i, c in enumerate(CLASSES):
        logs[f"val_recall_{c}"], logs[f"val_precision_{c}"] = float(r[i]), float(p[i])
    if len(p_out):
        scores = open_set_scores(p_in.max(1), p_out.max(1))
        logs["val_none_auroc"], logs["val_none_accepted"] = scores["auroc"], scores["none_accepted"]
    return logs


class EpochMonitor(keras.callbacks.Callback):
    """Validation each epoch (loss, accuracy, per-class recall and precision, from one pass over the validation
    photos), progress into status.json, and cancellation.

    It must come first among the callbacks: early stopping, learning-rate decay and checkpoints read the
    ``val_loss`` it writes into the epoch's logs. (Keras' own validation would decode the photos a second time.)
    """

    def __init__(self, recorder, phase, epochs, val_predict, y_val, share, offset, stage, none_weight=0.0):
        super().__init__()
        self.recorder, self.phase, self.epochs, self.stage = recorder, phase, epochs, stage
        self.none_weight = none_weight
        self.val_predict, self.y_val, self.share, self.offset = val_predict, y_val, share, offset
        self.epoch, self.shown = 0, time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.recorder.update(phase=self.phase, epoch=epoch + 1, epochs=self.epochs, stage=self.stage)

    def on_train_batch_end(self, batch, logs=None):
        if self.recorder.cancel_requested:
            self.model.stop_training = True
        steps = self.params.get("steps")
        if steps and time.time() - self.shown > 2:  # a CPU epoch of phase 2 takes a minute: show it moving
            self.shown = time.time()
            done = (self.epoch + (batch + 1) / steps) / self.epochs
            self.recorder.update(progress=self.offset + self.share * done)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        self.recorder.update(stage="st_validating")  # seconds of decoding in phase 2
        # against the labels, also when distilling
        logs.update(validation_logs(np.asarray(self.val_predict()), self.y_val, self.none_weight))
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.recorder.add_epoch(self.phase, logs)
        self.recorder.update(phase=self.phase, epoch=epoch + 1, epochs=self.epochs,
                             progress=self.offset + self.share * (epoch + 1) / self.epochs)
        self.recorder.log.info(
            f"phase {self.phase} epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', 0):.4f} "
            f"val_loss {logs.get('val_loss', 0):.4f} val_acc {logs.get('val_accuracy', 0):.4f} "
            f"cat recall {logs['val_recall_cat']:.3f} precision {logs['val_precision_cat']:.3f}, "
            f"dog recall {logs['val_recall_dog']:.3f} precision {logs['val_precision_dog']:.3f}"
            + (f", none AUROC {logs['val_none_auroc']:.3f}" if "val_none_auroc" in logs else ""))
        if self.recorder.cancel_requested:
            self.model.stop_training = True


class CachingProgress:
    """Progress of phase 1's feature caching (a minute or more on a CPU) into status.json, every 2 seconds."""

    def __init__(self, recorder, total, share):
        self.recorder, self.total, self.share, self.done, self.shown = recorder, total, share, 0, 0.0
        recorder.update(phase=1, stage="st_caching", done=0, total=total)

    def add(self, n):
        self.recorder.stop_if_cancelled()
        self.done += n
        if time.time() - self.shown > 2 or self.done >= self.total:
            self.shown = time.time()
            self.recorder.update(progress=self.share * min(1.0, self.done / self.total), stage="st_caching",
                                 done=self.done)


def standard_callbacks(run_dir, phase, patience):
    """Early stopping and learning-rate decay on validation loss (explicit ``mode``), best weights kept."""
    return [
        keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", mode="min", factor=0.3, patience=max(1, patience // 2)),
        keras.callbacks.ModelCheckpoint(str(Path(run_dir) / "checkpoints" / f"phase{phase}.weights.h5"),
                                        monitor="val_loss", mode="min", save_best_only=True, save_weights_only=True),
    ]


def device_info():
    """``(description, is_gpu)``: the GPU's name, or the CPU."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"GPU: {', '.join(names)}", True
    return f"CPU ({os.cpu_count()} cores)", False


def make_strategy(name):
    """tf.distribute strategy: ``mirrored`` over all GPUs (or all logical CPUs when there is none),
    ``multiworker`` over the machines named in ``TF_CONFIG``; ``auto`` mirrors when there are several GPUs."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def cache_features(model, parts, augmenter, cfg, recorder, size, teacher=None):
    """Backbone features computed once: the clean training photos, ``views`` augmented views of each (for a linear
    head also its mirror image, unless ``--no-mirror``), and the validation photos. With a ``teacher``, its
    probabilities on each cached view are computed once too.

    Returns ``(x, y, photo, soft, (x_val, y_val), dropped)``: a row per view (clean rows first), its label index,
    its photo's index, the teacher's rows (or None) and the unreadable files left out."""
    extractor = feature_model(model)
    cached, dropped = {}, []
    # A linear head also learns each photo's mirror image (measured for it; served photos are not mirrored), computed
    # beside the photo's own features from the same decode.
    mirrored = cfg.mirror and cfg.head == "linear"
    work = len(parts["train"]) * (cfg.views + 1) + len(parts.get("val", []))
    caching = CachingProgress(recorder, work, share=0.15)
    for name in ("train", "val"):
        with tqdm(total=len(parts.get(name, [])), desc=f"{name} features", unit="img",
                  disable=not sys.stdout.isatty()) as bar:
            feats, ok, errors = extract_features(model, [it["path"] for it in parts.get(name, [])],
                                                 progress=lambda i, n: (bar.update(1), caching.add(1)),
                                                 mirror=mirrored and name == "train")
        for (path, message) in errors:
            recorder.log.info(f"unreadable, skipped: {path}: {message}")
        dropped += [p for p, _ in errors]
        parts[name] = [it for it, good in zip(parts.get(name, []), ok) if good]
        cached[name] = (feats, np.array([label_index(it["label"]) for it in parts[name]], int))
        if name == "train":  # each photo's own features: the model's index of its training photos (finish)
            np.savez(recorder.dir / layout.TRAIN_FEATURES, own=feats[:, : feats.shape[1] // (1 + mirrored)])
    require_train_and_val(parts, cfg)  # unreadable files may have emptied one
    x, y = cached["train"]
    if mirrored:  # the mirror images' rows after the photos' own
        x = np.concatenate(np.split(x, 2, axis=1))
    fast = Classifier.from_keras(extractor)
    paths = [it["path"] for it in parts["train"]]
    clean = (b for b, _ in image_dataset(paths, y, size, 32))
    soft = [] if teacher is None else [teacher_probabilities(teacher, clean)]
    for view in range(cfg.views):
        ds = image_dataset(paths, y, size, 32, augmenter, seed=cfg.seed + view)
        feats = []
        for b, _ in ds:  # the teacher sees exactly the augmented pixels the features come from
            feats.append(fast.predict_pixels(b.numpy()))
            caching.add(len(b))
            if teacher is not None:
                soft.append(teacher_probabilities(teacher, [b]))
        x = np.concatenate([x, *feats])
    copies = cfg.views + 1 + mirrored
    photo = np.tile(np.arange(len(y)), copies)
    return x, np.tile(y, copies), photo, (np.concatenate(soft) if soft else None), cached["val"], dropped


def phase1(model, parts, augmenter, cfg, recorder, size, teacher=None):
    """Train the dense head on cached backbone features (:func:`cache_features`); the teacher's probabilities, if
    any, are mixed into the targets."""
    x, y_train, _, soft, (x_val, y_val), dropped = cache_features(model, parts, augmenter, cfg, recorder, size,
                                                                  teacher)
    # Balanced class weights from the readable training photos, times the optional per-class multipliers.
    weights = class_weights(y_train[y_train >= 0], cfg.class_multipliers) if cfg.class_weight == "balanced" else None
    sample_weights = weight_table(weights, cfg.none_weight)[y_train + 1]
    targets = soft_targets(y_train)
    if teacher is not None:
        targets = cfg.distill_alpha * soft + (1 - cfg.distill_alpha) * targets
    recorder.log.info(f"phase 1: {len(y_train)} cached training features ({cfg.views} augmented views each; "
                      f"{int((y_train < 0).sum())} of none of the ten)"
                      + (", teacher probabilities mixed into the targets" if teacher is not None else ""))
    head = model.get_layer("head")
    compile_for(head, cfg.lr_head, soft=True)
    monitor = EpochMonitor(recorder, 1, cfg.epochs_head, lambda: head.predict(x_val, verbose=0), y_val,
                           0.15, 0.15, "st_head", cfg.none_weight)
    head.fit(x, targets, sample_weight=sample_weights,
             epochs=cfg.epochs_head, batch_size=cfg.batch_size, verbose=0, shuffle=True,
             callbacks=[monitor, *standard_callbacks(recorder.dir, 1, 8)])
    return dropped, weights


def fit_linear(model, parts, augmenter, cfg, recorder, size):
    """The linear head (:mod:`training.probe`): C by cross-validation on the cached features, the out-of-fold
    probabilities scored (per source, balanced accuracy first) and turned into the calibration, then one fit on every
    training row folded into the head's Dense layer. Returns ``(dropped, calibration)``."""
    from evaluation.metrics import evaluate, per_source
    from evaluation.plots import both, save_report_matrix

    from . import probe

    x, y, photo, _, _, dropped = cache_features(model, parts, augmenter, cfg, recorder, size)
    clean = np.arange(len(y)) < len(parts["train"])
    recorder.update(stage="st_head", phase=1)
    recorder.log.info(f"linear head: {len(parts['train'])} photos, {len(y)} cached rows ({cfg.views} augmented "
                      f"views{' and the mirror image' if cfg.mirror else ''} of each photo; "
                      f"{int((y[clean] < 0).sum())} photos of none of the ten as an 11th class)")
    c, oof = probe.cross_validate(x, y, photo, clean, seed=cfg.seed, log=recorder.log.info)
    calibration = probe.calibration(oof[clean], y[clean])
    fitted = probe.fit(c, x, np.where(y < 0, len(CLASSES), y))
    layer = model.get_layer("head").get_layer("probabilities_and_none")
    layer.set_weights(list(probe.head_weights(fitted, calibration["folded_temperature"], x.shape[1])))
    inset = [it for it in parts["train"] if it["label"] != NONE]
    ten = oof[clean][y[clean] >= 0, :len(CLASSES)]
    labels, predictions = [it["label"] for it in inset], [CLASSES[i] for i in ten.argmax(1)]
    report = {**evaluate(labels, predictions, ten / ten.sum(1, keepdims=True), n_boot=300), "probe_c": c,
              "per_source": per_source(labels, predictions, [it.get("source") for it in inset])}
    (recorder.dir / layout.OOF).write_text(json.dumps(report, indent=2, default=float))
    save_report_matrix(report, f"{cfg.name or recorder.dir.name} · {both('fig_out_of_fold')}",
                       recorder.dir / layout.OOF_MATRIX)
    recorder.log.info(f"out of fold: balanced accuracy {report['balanced_accuracy']:.4f}, accuracy "
                      f"{report['accuracy']:.4f} on {report['n_scored']} photos; "
                      + ", ".join(f"{s} {v['accuracy']:.3f}/{v['n_scored']}" for s, v in report["per_source"].items()))
    return dropped, calibration


def teacher_probabilities(teacher, batches):
    """The teacher's class probabilities for batches of pixels, as one array."""
    return np.concatenate([teacher.predict_on_batch(b) for b in batches])  # compiled once, unlike teacher(b)


def phase2(model, parts, augmenter, cfg, recorder, size, jit, weights, teacher=None):
    """Fine-tune the last K backbone blocks on augmented photos streamed through tf.data."""
    trainable = unfreeze_last_blocks(model, cfg.unfreeze_blocks)
    learner = model if teacher is None else Distiller(model, teacher, cfg.distill_alpha)  # training/distill.py
    compile_for(learner, cfg.lr_finetune, jit_compile=jit, soft=True)  # after changing trainable, always
    recorder.log.info(f"phase 2: {len(trainable)} backbone layers trainable (last {cfg.unfreeze_blocks} "
                      f"blocks, BatchNorm frozen); learning rate {cfg.lr_finetune}")
    y = [label_index(it["label"]) for it in parts["train"]]
    y_val = np.array([label_index(it["label"]) for it in parts["val"]], int)
    # the targets and weights of phase 1, as tables indexed by label index + 1 (row 0: none of the ten)
    targets = tf.constant(soft_targets(np.arange(-1, len(CLASSES))), tf.float32)
    table = tf.constant(weight_table(weights, cfg.none_weight))

    def with_targets(x, label):
        return x, tf.gather(targets, label + 1), tf.gather(table, label + 1)

    train = image_dataset([it["path"] for it in parts["train"]], y, size, cfg.batch_size, augmenter,
                          shuffle=True, seed=cfg.seed).map(with_targets)
    val = image_dataset([it["path"] for it in parts["val"]], y_val, size, cfg.batch_size)
    monitor = EpochMonitor(recorder, 2, cfg.epochs_finetune, lambda: model.predict(val, verbose=0), y_val,
                           0.6, 0.3, "st_finetune",
                           cfg.none_weight)
    learner.fit(train, epochs=cfg.epochs_finetune,
                shuffle=False, verbose=1 if sys.stdout.isatty() else 0,
                callbacks=[monitor, *standard_callbacks(recorder.dir, 2, 4)])


def train(cfg: TrainConfig, recorder, parts, facts):
    """Train one model as ``cfg`` says on the photos :func:`training.data.prepare_data` read (``parts``, ``facts``),
    into ``recorder``'s run folder; :func:`training.record.run` is the whole run."""
    recorder.stop_if_cancelled()  # asked while TensorFlow loaded
    device, is_gpu = device_info()
    if is_gpu:  # mixed float16 on GPU (the softmax layer stays float32); XLA only there, it is slower on CPU
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(cfg.seed)
    recorder.update(device=device)
    recorder.log.info(f"device: {device}; strategy: {cfg.strategy}")
    size = cfg.size or input_size(cfg.backbone)
    augmenter = Augmenter(cfg.policies, size, cfg.seed) if cfg.augment else None
    if cfg.head == "linear":  # a probe: nothing to distribute, no phase 2
        model = build_classifier(cfg.backbone, size=size, head="linear")
        dropped, calibration = fit_linear(model, parts, augmenter, cfg, recorder, size)
        write_config(cfg, None, facts, device, recorder.dir)
        return _finish_run(model, parts, cfg, recorder, dropped, calibration)
    strategy = make_strategy(cfg.strategy)
    with strategy.scope():
        model = build_classifier(cfg.backbone, size=size)
    with strategy.scope():
        teacher = None
        if cfg.teachers:  # the ensemble's answers join the labels as targets (training/distill.py)
            teacher = teacher_ensemble(cfg.teachers, size)
            recorder.log.info(f"distilling from {', '.join(map(str, cfg.teachers))} "
                              f"(alpha {cfg.distill_alpha})")
        dropped, weights = phase1(model, parts, augmenter, cfg, recorder, size, teacher)
        write_config(cfg, weights, facts, device, recorder.dir)
        recorder.stop_if_cancelled()
        if cfg.epochs_finetune > 0:
            phase2(model, parts, augmenter, cfg, recorder, size, jit=is_gpu, weights=weights, teacher=teacher)
    _finish_run(model, parts, cfg, recorder, dropped)


def _finish_run(model, parts, cfg, recorder, dropped, calibration=None):
    recorder.stop_if_cancelled()
    recorder.update(stage="st_evaluating", progress=0.9)
    meta = finish(model, parts, cfg, recorder, dropped, calibration)
    recorder.update(state=layout.DONE, stage="st_finished", ended=time.time(), progress=1.0,
                    accuracy=meta.get("accuracy"), balanced_accuracy=meta.get("balanced_accuracy"),
                    measured_on=meta["measured_on"])
    recorder.log.info(f"done: {recorder.dir / layout.MODEL}")


def finish(model, parts, cfg, recorder, dropped, calibration=None):
    """Save the model and evaluate it on the validation (and test) photos with the evaluation package. A linear
    head brings its ``calibration`` (out of fold); a dense one is calibrated on the validation photos."""
    from evaluation.run import evaluate_folder

    keras.mixed_precision.set_global_policy("float32")
    meta = {"name": cfg.name or recorder.dir.name, "backbone": cfg.backbone, "classes": list(CLASSES),
            "size": model.input_shape[1], "head": cfg.head, "run": str(recorder.dir), "unreadable_skipped": dropped,
            "trained_on": [str(Path(d).resolve()) for d in cfg.data]}  # modelfile.trained_on reads it
    if calibration is None:
        clf = calibrated(Classifier.from_keras(model, meta), parts["val"], recorder)
    else:
        write_calibration(recorder.dir / layout.MODEL, calibration)
        clf = Classifier(Classifier.from_keras(model, meta).engine, meta, calibration=calibration)
    reports = {}
    for name in ("val", "test"):
        if parts.get(name):
            items = [(it["key"], it["path"]) for it in parts[name]]
            reports[name] = evaluate_folder(None, layout.evaluation(recorder.dir, name), items=items, classifier=clf,
                                            labels={it["key"]: it["label"] for it in parts[name]})
    if cfg.test:
        reports["test"] = evaluate_folder(cfg.test, layout.evaluation(recorder.dir, "test"),
                                          labels_path=cfg.labels, classifier=clf)
    best = reports.get("test") or reports.get("val")
    if best is None:  # a linear head fitted on every photo: its cross-validated report, kept beside the model file
        best, meta["report"] = json.loads((recorder.dir / layout.OOF).read_text()), layout.OOF
    meta.update(accuracy=best["accuracy"], balanced_accuracy=best["balanced_accuracy"],
                balanced_accuracy_ci95=best["balanced_accuracy_ci95"], test_images=best["n_scored"],
                per_class_recall={c: m["recall"] for c, m in best["per_class"].items()},
                measured_on="test" if "test" in reports else "val" if "val" in reports else "out-of-fold")
    model.save(recorder.dir / layout.MODEL)
    write_meta(recorder.dir / layout.MODEL, meta)
    write_training_index(recorder.dir, parts["train"])
    return meta


def write_training_index(run_dir, train_items) -> None:
    """The saved model's index of the photos it learnt from (:mod:`evaluation.copies`: its leak check), beside it,
    from the features cached for training; the cached features themselves are then removed."""
    from evaluation.copies import build_index, embedding, index_path, save_index

    cached = Path(run_dir) / layout.TRAIN_FEATURES
    if not cached.exists():
        return
    own = np.load(cached)["own"]
    model = Path(run_dir) / layout.MODEL
    index = build_index(embedding(own), [it["key"] for it in train_items],
                        [it.get("source") or "" for it in train_items], [it["label"] for it in train_items], model)
    save_index(index, index_path(model))
    cached.unlink()


def calibrated(clf, val_items, recorder):
    """``clf`` with a temperature and a "none of the 10" threshold fitted on the validation photos of the ten (the
    threshold keeps :data:`evaluation.metrics.KEEP` of them), written beside model.keras (``modelfile``'s form)."""
    from classifier.predictor import apply_temperature
    from evaluation.calibration import calibrate
    from evaluation.metrics import open_set_scores

    probs, _unreadable = clf.predict_paths([it["path"] for it in val_items])
    kept = [it for it in val_items if it["path"] in probs]
    p = np.array([probs[it["path"]] for it in kept])
    y = np.array([label_index(it["label"]) for it in kept], int)
    result = calibrate(p[y >= 0], y[y >= 0])
    if (y < 0).any():
        top = apply_temperature(p, result["temperature"]).max(1)
        result["validation_open_set"] = open_set_scores(top[y >= 0], top[y < 0])
    write_calibration(recorder.dir / layout.MODEL, result)
    recorder.log.info(f"calibrated on {int((y >= 0).sum())} validation photos: temperature "
                      f"{result['temperature']:.3f}, threshold {result['threshold']:.3f} keeps "
                      f"{result['threshold_keeps']:.0%} of them"
                      + (f"; it accepts {result['validation_open_set']['none_accepted']:.1%} of the validation none "
                         "photos" if (y < 0).any() else ""))
    return Classifier(clf.engine, clf.meta, calibration=result)


def write_config(cfg, weights, facts, device, run_dir):
    import albumentations
    import sklearn

    versions = {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                "albumentations": albumentations.__version__, "scikit-learn": sklearn.__version__,
                "python": sys.version.split()[0]}
    config = {**cfg.to_dict(), "class_weight_values": {CLASSES[k]: v for k, v in (weights or {}).items()},
              "data_facts": facts, "device": device, "versions": versions}
    (Path(run_dir) / layout.CONFIG).write_text(json.dumps(config, indent=2, default=str))


__all__ = ["train", "DEFAULT_POLICIES", "make_strategy"]
