"""Bounds on the training counts: the CLI checks its flags with them, and the Train tab its fields."""

import math

# (least, most): past these a run is a mistake or an attack (1e308 epochs), not a plan
LIMITS = {"epochs_head": (0, 500), "epochs_finetune": (0, 500), "unfreeze_blocks": (0, 40), "views": (0, 32)}


def check_counts(**counts) -> None:
    """Raise ``ValueError`` naming the flag for a count that is not a whole number within :data:`LIMITS`."""
    for name, value in counts.items():
        low, high = LIMITS[name]
        ok = isinstance(value, (int, float)) and math.isfinite(value) and value == int(value) and low <= value <= high
        if not ok:
            raise ValueError(f"--{name.replace('_', '-')} must be a whole number from {low} to {high}, not {value}")
