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

    - A request that runs an event (``/queue/join``, ``/run/...``, ``/call/...``) may name as file inputs only files
      that were uploaded through Gradio's upload route (its upload folder), or http(s) URLs (fetched by Gradio, which
      refuses private addresses). A server path (``/etc/hostname``, a photo under ``DATA_DIR``, the label database,
      ``/dev/zero``) is refused before the request joins a queue, with a clear message and one log line, and is never
      opened. Gradio has the same check, but only for a launched app, and its refusal names the absolute path.
    - Gradio's upload route takes files from anyone: while the disk has less than ``min_free_mb`` free (plus the
      upload's size), uploads are refused, so they cannot fill the disk the label store writes to.
    """

    ROUTES = ("/queue/join", "/run/", "/call/")
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
        if not any(r in path for r in self.ROUTES):
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.MAX_BODY:
                return await _answer(send, 413, "This request is too large; upload files through the page.")
        if (bad := await anyio.to_thread.run_sync(self.foreign_file, body)) is not None:  # off the event loop
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
        """The first file path in an event's JSON ``body`` that is neither in the upload folder nor a URL."""
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
                meta = node.get("meta")
                if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData" and "path" in node:
                    if not self.uploaded(str(node["path"])):
                        return str(node["path"])
                else:
                    stack.extend(node.values())
        return None

    def uploaded(self, path: str) -> bool:
        if path.startswith(("https://", "http://")):
            return True
        try:
            real = Path(path).resolve()
        except (OSError, ValueError):
            return False
        return real.is_relative_to(self.folder) and real != self.folder


async def _answer(send, status: int, detail: str):
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
