"""The UI's English and Chinese strings (assets/i18n.json): static text through Gradio's ``I18n`` (translated in
the browser), and text made by handlers through :meth:`Strings.say` (translated on the server from the request's
``Accept-Language``)."""

import json

import gradio as gr

from classifier import ASSETS

STRINGS = json.loads((ASSETS / "i18n.json").read_text(encoding="utf-8"))


class Strings(gr.I18n):
    """``T("title")`` for a component's static text; ``T.say(request, "answer", name=..)`` for a handler's (``request``
    None: English)."""

    @staticmethod
    def language(request) -> str:
        """``"zh"`` when the request's browser prefers Chinese to English, else ``"en"``."""
        header = (getattr(request, "headers", None) or {}).get("accept-language", "") if request else ""
        for part in header.lower().split(","):
            tag = part.split(";")[0].strip()
            if tag.startswith(("zh", "en")):
                return tag[:2]
        return "en"

    def say(self, request, key: str, **values) -> str:
        return STRINGS[self.language(request)][key].format(**values)

    def say_to(self, request):
        """``say(key, **values)`` for one request: what handlers that know nothing of requests are given."""
        return lambda key, **values: self.say(request, key, **values)


T = Strings(**STRINGS)
