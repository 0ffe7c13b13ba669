"""The app's words in English and Chinese (``assets/i18n.json``), without Gradio, so the jobs' modules can use them.

- :func:`say` gives one string in one language; :func:`language` reads a request's language (the page's
  switch, a cookie, first; then the browser's ``Accept-Language``).
- :class:`Message` is an error whose text is a key of the catalog: ``str()`` of it is English (the CLIs' and the
  logs' language), and the app shows it in the viewer's (``studio.common.shown``).

Static text in the browser goes through Gradio's ``I18n`` (``ui.T``).
"""

import json
from pathlib import Path

STRINGS = json.loads((Path(__file__).resolve().parent / "assets" / "i18n.json").read_text(encoding="utf-8"))
LANGUAGES = {"en": "English", "zh": "中文"}
COOKIE = "studio_lang"  # set by the page's language switch, for the browser session


def language(request) -> str:
    """``"zh"`` or ``"en"`` for a request (``gr.Request`` or None): the switch's cookie if set, else the first of
    Chinese or English that the browser asks for, else English."""
    if request is None:
        return "en"
    chosen = (getattr(request, "cookies", None) or {}).get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    header = (getattr(request, "headers", None) or {}).get("accept-language", "")
    for part in header.lower().split(","):
        tag = part.split(";")[0].strip()
        if tag.startswith(tuple(LANGUAGES)):
            return tag[:2]
    return "en"


def say(lang: str, key: str, /, **values) -> str:
    """The string ``key`` in ``lang``, formatted with ``values`` (a :class:`Message` among them is said in
    ``lang`` too)."""
    values = {k: v.said(lang) if isinstance(v, Message) else v for k, v in values.items()}
    return STRINGS[lang if lang in STRINGS else "en"][key].format(**values)


def column_names(columns, lang: str) -> list[str]:
    """A table's headers in ``lang``: each of ``columns`` is the name of the catalog key ``col_<name>``."""
    return [say(lang, f"col_{c}") for c in columns]


class Message(ValueError):
    """A request that cannot be done, with what to do, as a catalog key and its values. A ``key`` that is not in
    the catalog is shown as it is (a path or a library's own words)."""

    def __init__(self, key: str, /, **values):
        self.key, self.values = str(key), values
        super().__init__(self.said("en"))

    def said(self, lang: str) -> str:
        return say(lang, self.key, **self.values) if self.key in STRINGS["en"] else self.key

    def scrubbed(self, scrub) -> "Message":
        """The same message with ``scrub`` (which takes server paths out) applied to its text."""
        key = self.key if self.key in STRINGS["en"] else scrub(self.key)
        return Message(key, **{k: scrub(v) if isinstance(v, str) else v for k, v in self.values.items()})
