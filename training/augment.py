"""Albumentations for training images only, with one policy per class (the original idea: stronger, different
augmentation for cats and dogs, the classes the original model mixed up).

A policy is plain data, so it is written into the run's config.json and can be changed from the command line.
"""

import albumentations as A
import numpy as np

DEFAULT_POLICIES = {
    "default": {"flip": 0.5, "crop_scale": [0.7, 1.0], "rotate": 10, "color": 0.2, "blur": 0.0},
    "cat": {"flip": 0.5, "crop_scale": [0.45, 1.0], "rotate": 20, "color": 0.35, "blur": 0.2},
    "dog": {"flip": 0.5, "crop_scale": [0.45, 1.0], "rotate": 20, "color": 0.35, "blur": 0.2},
}


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
