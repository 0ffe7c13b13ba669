"""The UI's English and Chinese strings (assets/i18n.json) as one Gradio ``I18n`` object."""

import json

import gradio as gr

from classifier import ASSETS

STRINGS = json.loads((ASSETS / "i18n.json").read_text(encoding="utf-8"))
T = gr.I18n(**STRINGS)
