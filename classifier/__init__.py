"""The inference core every other package imports: classes, image decoding, backbones and the model.

It imports nothing else of this project, so tabs and CLIs can depend on it without cycles.
"""

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"  # default model, example photos, UI strings, hotkeys
