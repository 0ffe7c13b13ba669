"""The ASGI middlewares of the one server both apps share: the door every request passes before Gradio
(:class:`HttpDoor`: file inputs must be uploads, uploads need free disk) and the page that starts in the chosen
language (:class:`LanguagePage`)."""

import json
import shutil
import sys
from pathlib import Path

import anyio
from starlette.requests import Request

from i18n import COOKIE, language, say

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
      or without Gradio's ``meta``) only a file this process stored from a user (:func:`studio.given.allowed`) or an
      http(s) URL (fetched by Gradio, which refuses private addresses). Anything else is refused before the request
      joins a queue, with one message and one log line, and is never opened. This is the first line only: every
      handler takes its files through :func:`studio.given.given_file`, which holds the same rule by itself.
    - Gradio's upload route takes files from anyone: while the disk has less than ``min_free_mb`` free (plus the
      upload's size), uploads are refused, so they cannot fill the disk the label store writes to.
    """

    MAX_BODY = 8 * 2**20  # an event's JSON is small: files travel through the upload route

    def __init__(self, app, min_free_mb: int = 1024):
        from gradio.utils import get_upload_folder

        self.app, self.folder, self.floor = app, Path(get_upload_folder()).resolve(), min_free_mb * 2**20

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "POST" or "/gradio_api/" not in path:
            return await self.app(scope, receive, send)
        if path.endswith("/gradio_api/upload"):
            size = int(dict(scope["headers"]).get(b"content-length", b"0") or 0)
            self.folder.mkdir(parents=True, exist_ok=True)
            if shutil.disk_usage(self.folder).free - size < self.floor:
                print("refused: an upload while the disk is nearly full", file=sys.stderr, flush=True)
                return await _answer(send, 507, say(language(Request(scope)), "disk_low"))  # the viewer's words
            return await self.app(scope, receive, send)
        # every other POST may carry an event's data (/queue/join, /run/, /api/, /call/, /stream/, MCP): checked
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.MAX_BODY:
                return await _answer(send, 413, "This request is too large; upload files through the page.")
        # a large body is parsed off the event loop; an event's usual few hundred bytes at once (a thread hop costs
        # more than the parse, and waits behind the predictions the worker threads run)
        if len(body) > 2**16:
            bad = await anyio.to_thread.run_sync(self.foreign_file, body)
        else:
            bad = self.foreign_file(body)
        if bad is not None:
            print(f"refused: a file input that was not uploaded ({len(bad)} characters)", file=sys.stderr, flush=True)
            return await _answer(send, 403, "A file input must be a file uploaded through this app (or an https "
                                            "URL); server paths are not read.")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def foreign_file(self, body: bytes) -> str | None:
        """The first file path in an event's JSON ``body`` that is neither an http(s) URL nor a file this process
        stored from a user (:func:`studio.given.allowed`): any object with a ``path`` key counts, whatever else it
        holds or lacks (Gradio's ``meta`` marks a file, but a handler may read a path without it)."""
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return None  # not JSON: Gradio answers it
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, dict):
                path = node.get("path")
                if path is not None and not (isinstance(path, str) and path.startswith(("https://", "http://"))
                                             or given.allowed(path)):
                    return str(path)
                stack.extend(node.values())
        return None


async def _answer(send, status: int, detail: str):
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
