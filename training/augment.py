"""Albumentations for training images only, with one policy per class (the original idea: stronger, different
augmentation for cats and dogs, the classes the original model mixed up).

A policy is plain data, so it is written into the run's config.json and can be changed from the command line.
"""

import json
from pathlib import Path

import albumentations as A
import numpy as np

from classifier.classes import CLASSES, to_class_id

DEFAULT_POLICIES = {
    "default": {"flip": 0.5, "crop_scale": [0.7, 1.0], "rotate": 10, "color": 0.2, "blur": 0.0},
    "cat": {"flip": 0.5, "crop_scale": [0.45, 1.0], "rotate": 20, "color": 0.35, "blur": 0.2},
    "dog": {"flip": 0.5, "crop_scale": [0.45, 1.0], "rotate": 20, "color": 0.35, "blur": 0.2},
}


def load_policies(path):
    """The built-in policies overridden class by class from a JSON file (``{"sheep": {"crop_scale": [0.35, 1]}}``);
    keys a policy leaves out keep their built-in value (the ``default`` policy's for a class without one).

    Raises ``ValueError`` saying what is wrong: bad JSON, a name that is no class, an unknown key, a bad value.
    """
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"--policies {path}: {e}") from None
    if not isinstance(given, dict) or not all(isinstance(p, dict) for p in given.values()):
        raise ValueError(f"--policies {path}: expected an object of policies, e.g. {{\"cat\": {{\"rotate\": 20}}}}")
    policies = {name: dict(p) for name, p in DEFAULT_POLICIES.items()}
    for name, policy in given.items():
        key = "default" if name == "default" else to_class_id(name)
        if key not in ("default", *CLASSES):
            raise ValueError(f"--policies {path}: {name!r} is not one of the 10 classes nor 'default'")
        unknown = set(policy) - set(DEFAULT_POLICIES["default"])
        if unknown:
            raise ValueError(f"--policies {path}: unknown {sorted(unknown)} in {name!r}; a policy has "
                             f"{sorted(DEFAULT_POLICIES['default'])}")
        policies[key] = {**policies.get(key, policies["default"]), **policy}
        _check(policies[key], f"--policies {path}: {name!r}")
    return policies


def _check(policy, where):
    try:
        low, high = policy["crop_scale"]
        good = (all(0 <= policy[k] <= 1 for k in ("flip", "color", "blur")) and 0 < low <= high <= 1
                and 0 <= policy["rotate"] <= 180)
    except (TypeError, ValueError):  # a string, or a crop_scale that is not two numbers
        good = False
    if not good:
        raise ValueError(f"{where}: flip, color and blur must be 0-1, crop_scale [low, high] within (0, 1], "
                         f"rotate 0-180 degrees; got {policy}")


def build_pipeline(policy, size, seed=None):
    """An Albumentations pipeline for one policy: flip, random resized crop, rotation, colour jitter, blur."""
    return A.Compose([
        A.HorizontalFlip(p=policy["flip"]),
        A.RandomResizedCrop(size=(size, size), scale=tuple(policy["crop_scale"]), p=1.0),
        A.Affine(rotate=(-policy["rotate"], policy["rotate"]), p=0.5 if policy["rotate"] else 0.0),
        A.ColorJitter(brightness=policy["color"], contrast=policy["color"], saturation=policy["color"], hue=0.02,
                      p=0.8 if policy["color"] else 0.0),
        A.GaussianBlur(blur_limit=(3, 5), p=policy["blur"]),
    ], seed=seed)


class Augmenter:
    """Augments a decoded image (float32 0-255) with the policy of its class, else the ``default`` policy."""

    def __init__(self, policies=None, size=224, seed=0):
        self.policies = policies or DEFAULT_POLICIES
        self.pipelines = {name: build_pipeline(p, size, seed + i) for i, (name, p) in enumerate(self.policies.items())}

    def __call__(self, pixels, label):
        pipeline = self.pipelines.get(label, self.pipelines["default"])
        out = pipeline(image=np.clip(pixels, 0, 255).astype(np.uint8))["image"]
        return out.astype(np.float32)
