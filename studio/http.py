"""The ASGI middlewares of the one server both apps share: the door every request passes before Gradio
(:class:`HttpDoor`: file inputs must be uploads, uploads need free disk) and the page that starts in the chosen
language (:class:`LanguagePage`)."""

import json
import shutil
import sys
import traceback
from pathlib import Path

import anyio
from starlette.requests import Request

from i18n import COOKIE, language, public, say

from . import given


class LanguagePage:
    """ASGI middleware: the page itself (``GET /``), for a browser session that chose a language with the page's
    switch (the cookie :data:`i18n.COOKIE`), starts Gradio in that language. Gradio takes the browser's language
    when it boots, before any script of the app's ``head`` runs, so a script first in the page's ``<head>`` sets the
    language the page reads. Every other request passes untouched."""

    TAGS = {"en": "en", "zh": "zh-CN"}  # zh-CN: Gradio's own words (its menus) follow too

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] != "/" or \
                (chosen := Request(scope).cookies.get(COOKIE)) not in self.TAGS:
            return await self.app(scope, receive, send)
        tag = self.TAGS[chosen]
        script = (f'<script>for (const [k, v] of [["language", "{tag}"], ["languages", ["{tag}"]]]) '
                  'Object.defineProperty(navigator, k, {get: () => v});</script>').encode()
        start, parts = {}, []

        async def inject(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(parts)
            if (dict(start["headers"]).get(b"content-type", b"").startswith(b"text/html")
                    and not dict(start["headers"]).get(b"content-encoding")):
                body = body.replace(b"<head>", b"<head>" + script, 1)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, inject)


class HttpDoor:
    """ASGI middleware, the door every request passes before Gradio, in every mounted app:

    - A request that may run an event (every POST under ``/gradio_api/`` but the upload route: ``/queue/join``,
      ``/run/``, ``/api/``, ``/call/``, ``/stream/``, MCP) may name as a file (any JSON object with a ``path``, with
      or without Gradio's ``meta``) only a file this process stored from a user (:func:`studio.given.allowed`); a
      URL is not fetched (its size and host are the sender's to choose). Anything else is refused before the
      request joins a queue, with one message and one log line, and is never opened. This is the first line only:
      every handler takes its files through :func:`studio.given.given_file`, which holds the same rule by itself.
    - Gradio's upload route takes files from anyone: an upload must say its size (``Content-Length``), and while
      the disk has less than ``min_free_mb`` free (plus that size), uploads are refused, so they cannot fill the
      disk the label store writes to.
    - Every error reply is short: each text in it at most :data:`MAX_ERROR_TEXT` characters (Gradio's and its
      libraries' own errors quote the request's values whole), and an error the apps did not catch is one log
      line and a plain 500, not a traceback.
    - Gradio's monitoring routes are not served.
    """

    MAX_BODY = 8 * 2**20  # an event's JSON is small: files travel through the upload route

    def __init__(self, app, min_free_mb: int = 1024):
        from gradio.utils import get_upload_folder

        self.app, self.folder, self.floor = app, Path(get_upload_folder()).resolve(), min_free_mb * 2**20

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        send = short_errors(send)
        try:
            await self.checked(scope, receive, send)
        except Exception as e:  # noqa: BLE001 - what no app caught: one line, where it came from, and a plain 500
            where = traceback.extract_tb(e.__traceback__)[-1]
            print(f"error: {type(e).__name__} at {Path(where.filename).name}:{where.lineno} on {scope['method']} "
                  f"{public(scope.get('path', ''), 80)}", file=sys.stderr, flush=True)
            if not send.started:
                await answer(send, 500, "The server could not answer this request.")

    async def checked(self, scope, receive, send):
        path = scope.get("path", "")
        if "/monitoring" in path:  # Gradio's per-event figures, served even when monitoring is off
            return await answer(send, 404, "Not Found")
        if scope["method"] != "POST" or "/gradio_api/" not in path:
            return await self.app(scope, receive, send)
        if path.endswith("/gradio_api/upload"):
            size = dict(scope["headers"]).get(b"content-length")
            if not (size or b"").isdigit():  # a chunked body would say nothing and pass the disk check
                return await answer(send, 411, "An upload must say its size (Content-Length).")
            size = int(size)
            self.folder.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(self.folder).free - size < self.floor:
                print("refused: an upload while the disk is nearly full", file=sys.stderr, flush=True)
                return await answer(send, 507, say(language(Request(scope)), "disk_low"))  # the viewer's words
            return await self.app(scope, receive, send)
        # every other POST may carry an event's data (/queue/join, /run/, /api/, /call/, /stream/, MCP): checked
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.MAX_BODY:
                return await answer(send, 413, "This request is too large; upload files through the page.")
        # a large body is parsed off the event loop; an event's usual few hundred bytes at once (a thread hop costs
        # more than the parse, and waits behind the predictions the worker threads run)
        if len(body) > 2**16:
            bad = await anyio.to_thread.run_sync(self.foreign_file, body)
        else:
            bad = self.foreign_file(body)
        if bad is not None:
            print(f"refused: a file input that was not uploaded ({len(bad)} characters)", file=sys.stderr, flush=True)
            return await answer(send, 403, "A file input must be a file uploaded through this app; server paths "
                                            "and URLs are not read.")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def foreign_file(self, body: bytes) -> str | None:
        """The first file path in an event's JSON ``body`` that is not a file this process stored from a user
        (:func:`studio.given.allowed`): any object with a ``path`` key counts, whatever else it holds or lacks
        (Gradio's ``meta`` marks a file, but a handler may read a path without it)."""
        try:
            data = json.loads(body or b"null")
        except (ValueError, RecursionError):
            return None  # not JSON (or nested past any use): Gradio answers it
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                path = node.get("path")
                if path is not None and not given.allowed(path):
                    return str(path)
                stack.extend(node.values())
        return None


MAX_ERROR_TEXT = 320  # characters of one text in an error reply (a refusal's own words fit; an echoed value not)


def short_errors(send):
    """``send`` with every error reply (status 400 and up) cut short: each JSON string to :data:`MAX_ERROR_TEXT`
    characters, any other body to four times that. ``.started`` tells whether an answer has begun."""
    held = {"start": None, "parts": []}

    async def sending(message):
        if message["type"] == "http.response.start":
            sending.started = True
            if message["status"] < 400:
                return await send(message)
            held["start"] = message
            return None
        if held["start"] is None or message["type"] != "http.response.body":
            return await send(message)
        held["parts"].append(message.get("body", b""))
        if message.get("more_body"):
            return None
        body = _cut(b"".join(held["parts"]))
        headers = [(k, v) for k, v in held["start"]["headers"] if k.lower() != b"content-length"]
        await send({**held["start"], "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    sending.started = False
    return sending


def _cut(body: bytes) -> bytes:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body[: 4 * MAX_ERROR_TEXT]

    def cut(node):
        if isinstance(node, str):
            return public(node[: 4 * MAX_ERROR_TEXT], MAX_ERROR_TEXT)
        if isinstance(node, list):
            return [cut(v) for v in node[:20]]
        if isinstance(node, dict):
            return {cut(k): cut(v) for k, v in list(node.items())[:20]}
        return node
    return json.dumps(cut(data), ensure_ascii=False).encode()


async def answer(send, status: int, detail: str, headers=()):
    """Answer an ASGI request at once: ``status`` with ``{"detail": detail}`` as JSON (and ``headers``)."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
