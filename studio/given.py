"""The one way a handler gets a file a user gave it: :func:`given_file`, used by every handler with a file input in
both apps (Classify, its heatmap, the data-set uploads, the tools app).

The rule is an allow-list checked where the file is used, whatever JSON surrounded it on the way in: a handler
opens only a regular file that this process stored from what a user sent, and nothing else.

- *Uploads*: the files Gradio's upload route stored (each Blocks keeps them in ``upload_file_set``);
- *decoded*: the files Gradio stored from a data URL a user sent (an MCP agent's ``data:image/...``), recorded by
  :func:`install` as Gradio writes them (a URL is not fetched: its size and its host would be the sender's);
- *examples*: the cached copies of the app's own example photos (:func:`allow`).

Anything else, a server path, a link, a device, a file that expired from the cache, gets one refusal in the same
words whether or not it exists, so the reply is no oracle for what the server holds.
"""

import functools
import inspect
import os
import stat
import threading

import gradio as gr
from gradio import processing_utils

from i18n import Message, say

MAX_PATH = 4096  # characters of a path to resolve (Linux's own limit)
_lock = threading.Lock()
_blocks: list = []  # the apps served, whose upload route's files are allowed
_stored: set[str] = set()  # the real paths of the files allowed: uploads, fetched for a user, examples' copies
_seen: set[str] = set()  # the upload route's paths as Gradio recorded them, already resolved into _stored


def install(blocks) -> None:
    """Allow the files ``blocks``' upload route stores, and record what Gradio fetches for a user from now on."""
    with _lock:
        if blocks not in _blocks:
            _blocks.append(blocks)
        if getattr(processing_utils, "_given_recorded", False):
            return
        processing_utils.save_base64_to_cache = _recording(processing_utils.save_base64_to_cache)
        for name in ("ssrf_protected_download", "save_url_to_cache", "async_ssrf_protected_download"):
            setattr(processing_utils, name, _not_fetched(getattr(processing_utils, name)))
        processing_utils._given_recorded = True


def allow(paths) -> None:
    """Allow these files of the app's own (the examples' cached copies)."""
    with _lock:
        _stored.update(os.path.realpath(p) for p in paths)


def _recording(fn):
    """``fn`` (a Gradio function that stores a user's URL or data URL in its cache), recording what it stored."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            return _record(await fn(*args, **kwargs))
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return _record(fn(*args, **kwargs))
    return wrapper


def _not_fetched(fn):
    """``fn`` (a Gradio function that downloads a URL a user sent into its cache), refusing instead: Gradio reads
    the whole answer, whatever its size, from whatever host the sender names. An agent sends a photo as a data URL
    (bounded by the request's size), a browser or client uploads it."""
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def refused(*args, **kwargs):
            raise gr.Error(str(Message("url_not_fetched")), print_exception=False)
    else:
        @functools.wraps(fn)
        def refused(*args, **kwargs):
            raise gr.Error(str(Message("url_not_fetched")), print_exception=False)
    return refused


def _record(path):
    if isinstance(path, str | os.PathLike):
        with _lock:
            _stored.add(os.path.realpath(path))
    return path


def allowed(path) -> bool:
    """Whether ``path`` (as a request named it) is a file this process stored from what a user sent: its real path
    is an upload's, a fetched file's or an example's. Only set lookups: nothing is opened."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or "\x00" in path:
        return False  # resolving a long path costs its length squared: past any real one, refused unresolved
    try:
        real = os.path.realpath(path)
    except (ValueError, OSError):  # a lone surrogate, a loop of links: not a file anyone uploaded
        return False
    with _lock:
        for blocks in _blocks:  # the uploads since the last look, resolved once
            for p in set(blocks.upload_file_set) - _seen:
                _seen.add(p)
                _stored.add(os.path.realpath(p))
        return real in _stored


def given_file(value, lang: str = "en", max_mb: float | None = None) -> str:
    """The real path of the file in a file input's raw ``value`` (Gradio's ``{"path": ...}``, or a path), when it
    is a regular file that this process stored from what a user sent (see the module's docstring); else
    ``gr.Error`` in ``lang``, the same words for a missing and an existing path. Nothing is opened before the
    allow-list has passed it; a link, a device, a FIFO or a socket is refused before it is opened; over ``max_mb``
    it is refused by its size."""
    if not value:
        raise gr.Error(say(lang, "no_photo"), print_exception=False)
    path = value.get("path") if isinstance(value, dict) else value
    path = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not allowed(path) or os.path.islink(path):
        raise _refused(lang)
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        raise _refused(lang) from None  # an upload the cache has dropped since: upload it again
    if not stat.S_ISREG(info.st_mode):
        raise _refused(lang)
    if max_mb is not None and info.st_size > max_mb * 2**20:
        raise gr.Error(say(lang, "too_large", mb=info.st_size / 2**20, limit=max_mb),
                       title=say(lang, "too_large_title"), print_exception=False)
    return os.path.realpath(path)


def given_files(values, lang: str = "en") -> list[str]:
    """:func:`given_file` for each of a multi-file input's values (an upload box); empty for none."""
    return [given_file(v, lang) for v in (values or [])]


def _refused(lang: str) -> gr.Error:
    return gr.Error(say(lang, "not_uploaded"), print_exception=False)  # logged in one line as it leaves
