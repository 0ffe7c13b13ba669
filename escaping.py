"""Text that came from people, files or an LLM (file, folder, data-set and source names, reviewer names, labels, LLM
replies), made safe for where it goes: Markdown on the page (:func:`plain`) and spreadsheet cells (:func:`cell`)."""

import html
import re


def plain(text) -> str:
    """``text`` as plain text inside Markdown: HTML and Markdown syntax are shown, not rendered (so an
    ``<img src=...>`` or ``![](...)`` in a file name or an LLM reply loads nothing), and a bare URL is not made a
    link (a zero-width space after its scheme or ``www``: the text reads the same)."""
    text = html.escape(str(text), quote=False)
    text = re.sub(r"([\\`*_{}\[\]()#+!|~>-])", r"\\\1", text)
    return re.sub(r"(?i)(://|\bwww)(?=\S)", "\\1\u200b", text)


FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    """A value for a CSV that people open in a spreadsheet: text starting with ``= + - @``, a tab or a carriage return
    gets a leading ``'`` so that it is shown, never run as a formula (OWASP's rule for CSV injection). Numbers and
    empty values pass unchanged. Files the app reads back (split files, ``per_image.csv``) do not use this."""
    if isinstance(value, str) and value.startswith(FORMULA):
        return "'" + value
    return value
