"""The app's words in English and Chinese (``assets/i18n.json``), without Gradio, so the jobs' modules can use them.

- :func:`say` gives one string in one language; :func:`language` reads a request's language (the page's
  switch, a cookie, first; then the browser's ``Accept-Language``).
- :class:`Message` is an error whose text is a key of the catalog: ``str()`` of it is English (the CLIs' and the
  logs' language), and the app shows it in the viewer's (``studio.common.shown``).
- :func:`public` is the one rule for text that leaves the server: no absolute server path (the app's folders by a
  short name, :func:`name_places`; any other by its last part) and at most :data:`LONGEST` characters of a value
  (cut with an ellipsis). Every value of a :class:`Message` passes it, so every refusal does.

Static text in the browser goes through Gradio's ``I18n`` (``ui.T``).
"""

import json
import numbers
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STRINGS = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))
LANGUAGES = {"en": "English", "zh": "中文"}
COOKIE = "studio_lang"  # set by the page's language switch, for the browser session
LONGEST = 80  # characters of a value (a name, a label, a library's reason) in a reply: a 100 KB label is not echoed
LONGEST_TEXT = 4 * LONGEST  # a text not of the catalog (a library's own sentence) is kept a little longer
_PLACES: dict[str, str] = {str(ROOT): "."}  # the app's folders, by the name a reply gives them (name_places)
try:  # a path is the server's when its first folder is one of this machine's (not "/tools/gradio_api/mcp/")
    _TOP = frozenset(os.listdir("/"))
except OSError:
    _TOP = frozenset()
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])/([^\s/'\"`<>|,;()\[\]{}]+)((?:/[^\s/'\"`<>|,;()\[\]{}]*)*)")


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


def name_places(places: dict) -> None:
    """Have replies name these folders (``{absolute path: short name}``, e.g. ``DATA_DIR``) instead of their path;
    the app's guard (``studio.guard.Guard``) gives its own at start."""
    _PLACES.update({str(Path(path).resolve()): name for path, name in places.items()})


def unpathed(text) -> str:
    """``text`` with no absolute server path: one under a named folder (:func:`name_places`) by that name and the
    rest of its path, any other by ``…/`` and its last part (a file's name says what went wrong; where it lies on
    this machine is not the user's business)."""
    text = str(text)
    for path, name in sorted(_PLACES.items(), key=lambda p: -len(p[0])):  # longest first: a root inside DATA_DIR
        text = re.sub(re.escape(path) + r"(?![^/\s'\"`<>|,;:)\]}])", lambda _, name=name: name, text)

    def short(m):
        if m.group(1) not in _TOP:
            return m.group(0)
        parts = [p for p in (m.group(1) + m.group(2)).split("/") if p]
        return "…/" + parts[-1] if len(parts) > 1 else m.group(0)
    return _ABSOLUTE.sub(short, text)


def public(value, limit: int = LONGEST) -> str:
    """``value`` as text that may leave the server: :func:`unpathed`, and cut to ``limit`` characters with an
    ellipsis (a user's 100 KB label is not sent back, nor written whole to the log)."""
    try:
        text = unpathed(value)
    except ValueError:  # an integer past Python's 4,300 digits has no text
        text = type(value).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


class Message(ValueError):
    """A request that cannot be done, with what to do, as a catalog key and its values. A ``key`` that is not in
    the catalog is shown as it is (a path or a library's own words). Either way it is said through :func:`public`:
    each value (a number aside) at most :data:`LONGEST` characters, a text not of the catalog at most
    :data:`LONGEST_TEXT`, and no absolute server path in either."""

    def __init__(self, key: str, /, **values):
        self.key, self.values = str(key), values
        super().__init__(self.said("en"))

    def said(self, lang: str) -> str:
        if self.key not in STRINGS["en"]:
            return public(self.key, LONGEST_TEXT)
        return say(lang, self.key, **{k: _value(v) for k, v in self.values.items()})

    def scrubbed(self, scrub) -> "Message":
        """The same message with ``scrub`` (which takes server paths out) applied to its text."""
        key = self.key if self.key in STRINGS["en"] else scrub(self.key)
        return Message(key, **{k: scrub(v) if isinstance(v, str) else v for k, v in self.values.items()})


def _value(v):
    """A value of a :class:`Message` as it is said: a number as it is (the catalog formats it: ``{mp:.0f}``) unless
    it is an integer too long to show (a user's ``1e308`` as a whole number: 309 digits), anything else
    :func:`public`."""
    if isinstance(v, int) and v.bit_length() > 256:
        return _Shown(public(v))
    return v if isinstance(v, Message | numbers.Number) else public(v)


class _Shown(str):
    """Text in a number's place: the catalog's format for the number (``{n:,}``) does not apply to it."""

    def __format__(self, spec):
        return str(self)
