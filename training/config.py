"""Every setting of a training run in one typed place: its default, its help and its checks.

``python -m training``'s flags are made from :class:`TrainConfig`'s fields, and the Train tab's fields take their
defaults from :data:`QUICK`, a named preset of the same config (fewer epochs, for a run watched in the browser), so a
default lives once. To change a default, change it here; to add a setting, add a field with ``help`` and the
pipeline takes the config itself; the Train tab's runs start ``python -m training`` with
:meth:`TrainConfig.to_argv`, so the flags are never spelled twice.
"""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from classifier.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.classes import CLASSES, to_class_id
from classifier.modelfile import model_meta

from . import layout
from .limits import check_counts


def setting(default, help, **flag):
    """A config field with its command-line help (``%(default)s`` works) and any extra argparse options."""
    factory = {"default_factory": default} if callable(default) else {"default": default}
    return field(**factory, metadata={"help": help, **flag})


@dataclass
class TrainConfig:
    """The settings of one training run (see ``python -m training --help``)."""

    data: list = setting(list, "folder of class folders (English, Italian or Chinese names), or of sources holding "
                               "class folders, as shared/data/animals/<source>/<class>/; repeatable",
                         action="append", required=True)
    none: list = setting(list, "folder of photos of none of the ten (<source>/<category>/ as shared/data/none, or "
                               "<category>/), learnt as outlier exposure: the ten outputs pushed towards uniform on "
                               "them; repeatable", action="append", metavar="DIR")
    none_weight: float = setting(0.5, "with --none: weight of a none photo against an animal photo of average class "
                                      "weight (default: %(default)s)")
    out: str = setting("", "run folder (created)", required=True)
    backbone: str = setting(DEFAULT_BACKBONE, "default: %(default)s", choices=BACKBONES)
    size: int = setting(None, "input size in pixels (EfficientNet-Lite; default: the backbone's own, 224 for Lite0, "
                              "260 for Lite2); a Lite2 probe gains 1.7 points of balanced accuracy from 260 to 384")
    head: str = setting("dense", "dense: the original head, trained, then fine-tuned with the backbone's last blocks; "
                                 "linear: a linear probe of the frozen backbone (logistic regression on cached "
                                 "features, C chosen by cross-validation, calibrated out of fold; --none photos are "
                                 "an 11th class; no phase 2) (default: %(default)s)", choices=("dense", "linear"))
    mirror: bool = setting(True, "linear head: no mirrored copy of each training photo among its cached views (by "
                                 "default one is: +0.006 balanced accuracy in nested cross-validation on Animals-10's "
                                 "photos, nothing at serving time)", flag="--no-mirror", action="store_false")
    epochs_head: int = setting(40, "phase-1 epochs at most (default: %(default)s)")
    epochs_finetune: int = setting(6, "phase-2 epochs at most; 0 skips phase 2 (default: %(default)s)")
    unfreeze_blocks: int = setting(3, "backbone blocks fine-tuned in phase 2 (default: %(default)s)")
    batch_size: int = setting(32, "default: %(default)s")
    lr_head: float = setting(1e-3, "phase-1 learning rate (default: %(default)s)")
    lr_finetune: float = setting(1e-5, "phase-2 learning rate (default: %(default)s)")
    val_split: float = setting(0.15, "validation share of a new stratified split (default: %(default)s)",
                               group="validation")
    val: str = setting(None, "a separate folder of validation photos", group="validation")
    split: str = setting(None, "CSV (path,split) pinning each photo to train/val/test across runs")
    exclude: str = setting(None, "photos never used (known-wrong labels): one path per line, or a CSV with a path "
                                 "column; paths relative to their data folder")
    test: str = setting(None, "a test folder, evaluated at the end into eval/test/")
    labels: str = setting(None, "results.json for --test (default: its class folders)")
    data_labels: str = setting(None, "JSON {key: label} labelling the --data folder instead of its own results.json "
                                     "or class folders (the reviewed labels the app writes, keys as results.json's)")
    class_weight: str = setting("balanced", "default: %(default)s", choices=("balanced", "none"))
    class_multipliers: dict = setting(dict, "multiply a class's weight, e.g. cat=2 as the original did (repeatable)",
                                      flag="--class-multiplier", action="append", metavar="CLASS=X")
    views: int = setting(2, "augmented views per photo cached for phase 1 (default: %(default)s)")
    augment: bool = setting(True, "no augmentation at all", flag="--no-augment", action="store_false")
    policies: dict = setting(None, "JSON file overriding the augmentation policies class by class, e.g. "
                                   "{\"sheep\": {\"crop_scale\": [0.35, 1.0]}}; left-out keys keep the built-in "
                                   "values (built in: stronger for cat and dog; see training/augment.py)")
    teachers: list = setting(list, "distil both phases from this model (.keras or .npz, e.g. an earlier run's "
                                   "model.keras); repeat for an ensemble, whose mean probabilities are used",
                             flag="--teacher", action="append", metavar="MODEL")
    distill_alpha: float = setting(0.7, "with --teacher: weight of the teachers' probabilities in the targets, "
                                        "the rest is the label (default: %(default)s)")
    strategy: str = setting("auto", "tf.distribute: mirrored = all GPUs of this machine; multiworker = the machines "
                                    "in TF_CONFIG (default: %(default)s)", choices=("auto", "mirrored", "multiworker"))
    seed: int = setting(0, "default: %(default)s")
    name: str = setting(None, "model name shown in the app (default: the run folder's name)")

    def check(self):
        """Raise ``ValueError`` naming the flag for a value no run could use; returns the config."""
        if not 0 <= self.distill_alpha <= 1:
            raise ValueError(f"--distill-alpha must be between 0 and 1, not {self.distill_alpha}")
        if self.none_weight < 0:
            raise ValueError(f"--none-weight must be 0 or more, not {self.none_weight}")
        if not (0 < self.val_split < 1 or (self.val_split == 0 and self.head == "linear")):
            raise ValueError(f"--val-split must be between 0 and 1 (0 only with --head linear, whose calibration "
                             f"comes from cross-validation), not {self.val_split}")
        if self.head == "linear" and self.teachers:
            raise ValueError("--teacher distils into the dense head; a linear head is fitted to the labels alone")
        if self.size is not None and not 96 <= self.size <= 640:
            raise ValueError(f"--size must be between 96 and 640 pixels, not {self.size}")
        check_counts(epochs_head=self.epochs_head, epochs_finetune=self.epochs_finetune,
                     unfreeze_blocks=self.unfreeze_blocks, views=self.views)
        if self.batch_size < 1 or self.lr_head <= 0 or self.lr_finetune <= 0:
            raise ValueError("--batch-size and the learning rates must be positive")
        return self

    def to_dict(self):
        """The settings as a dict (written into the run's config.json)."""
        return dataclasses.asdict(self)

    def to_argv(self) -> list[str]:
        """The ``python -m training`` flags that give this config back (what :func:`config_from` reads), for the
        settings that differ from the defaults; class multipliers and policies are not flags a run started from the
        app sets."""
        argv, default = [], TrainConfig()
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            flag = meta.get("flag", "--" + f.name.replace("_", "-"))
            if f.name in ("class_multipliers", "policies") or (value == getattr(default, f.name)
                                                              and not meta.get("required")):
                continue
            if meta.get("action") == "append":
                argv += [a for v in value for a in (flag, str(v))]
            elif meta.get("action") == "store_false":
                argv += [flag] if not value else []
            else:
                argv += [flag, str(value)]
        return argv


QUICK = dataclasses.replace(TrainConfig(), epochs_head=20, epochs_finetune=3)  # for a model with no recipe known
# what a run is given rather than how it trains: not part of a recipe (the class multipliers and policies are not
# flags a run started from the app sets: TrainConfig.to_argv)
GIVEN = ("data", "none", "out", "val", "split", "exclude", "test", "labels", "data_labels", "teachers", "name",
         "class_multipliers", "policies")


def recipe_of(model_path) -> TrainConfig:
    """How the model at ``model_path`` was trained, to start a new run on: the settings in the ``config.json`` its
    run wrote beside it (:data:`layout.CONFIG`; ``python -m training --compact`` copies it beside a compact model, as
    beside the default), less what a run is given (:data:`GIVEN`: its photos, folders, teachers, name). A model with
    none (a file brought from elsewhere) gets :data:`QUICK` with the backbone, head and input size its card names."""
    path = Path(model_path)
    try:
        written = json.loads(path.with_name(layout.CONFIG).read_text())
    except (OSError, ValueError):
        written = None
    if isinstance(written, dict):
        names = {f.name for f in dataclasses.fields(TrainConfig)} - set(GIVEN)
        return dataclasses.replace(TrainConfig(), **{k: v for k, v in written.items() if k in names})
    meta = model_meta(path) if path.exists() else {}
    backbone = meta.get("backbone") if meta.get("backbone") in BACKBONES else DEFAULT_BACKBONE
    return dataclasses.replace(QUICK, backbone=backbone, head=meta.get("head", "dense"), size=meta.get("size"))


def add_flags(parser):
    """Add one flag per :class:`TrainConfig` field to ``parser`` (``--epochs-head`` for ``epochs_head``...)."""
    groups = {}
    for f in dataclasses.fields(TrainConfig):
        meta = dict(f.metadata)
        name = meta.pop("flag", "--" + f.name.replace("_", "-"))
        group = meta.pop("group", None)
        if group and group not in groups:
            groups[group] = parser.add_mutually_exclusive_group()
        target = groups[group] if group else parser
        kwargs = {"dest": f.name, **meta}
        if kwargs.get("action") == "append":
            kwargs["default"] = []
        elif kwargs.get("action") != "store_false" and not kwargs.get("required"):
            kwargs["default"] = f.default if f.default is not dataclasses.MISSING else None
            if f.type in (int, float):
                kwargs["type"] = f.type
        target.add_argument(name, **kwargs)


def config_from(args):
    """A checked :class:`TrainConfig` from parsed flags (class multipliers and the policy file read here)."""
    from .augment import DEFAULT_POLICIES, load_policies

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    values["class_multipliers"] = _multipliers(values["class_multipliers"])
    values["policies"] = load_policies(values["policies"]) if values["policies"] else DEFAULT_POLICIES
    if not values["augment"]:
        values["views"] = 0
    return TrainConfig(**values).check()


def _multipliers(items):
    out = {}
    for item in items:
        name, _, factor = item.partition("=")
        try:
            factor = float(factor)
        except ValueError:
            factor = 0
        if to_class_id(name) not in CLASSES or not factor > 0:
            raise ValueError(f"--class-multiplier {item}: expected CLASS=X with one of the 10 classes and X > 0, "
                             "e.g. cat=2")
        out[to_class_id(name)] = factor
    return out


def parser():
    """The argument parser of ``python -m training``: the config's flags plus what happens after the run."""
    p = argparse.ArgumentParser(prog="python -m training", formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(p)
    p.add_argument("--compact", help="also save the model in compact .npz form (as assets/model/default.npz)")
    p.add_argument("--compact-dtype", choices=("float32", "float16"), default="float32",
                   help="float16 halves the compact file (fine-tuned blocks); default: %(default)s")
    p.add_argument("--keep", metavar="DIR", help="once done, copy the run folder to DIR/<run> as write-once files, "
                   "a .complete file last (a bucket mounted as a folder: the run outlives the host; the app passes "
                   "PERSIST_DIR/runs)")
    return p
