"""The UI's English and Chinese strings (assets/i18n.json) as one Gradio ``I18n`` object."""

import json
from pathlib import Path

import gradio as gr

STRINGS = json.loads((Path(__file__).resolve().parent / "assets" / "i18n.json").read_text(encoding="utf-8"))
T = gr.I18n(**STRINGS)
