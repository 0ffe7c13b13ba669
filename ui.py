"""What every tab shares: the doors (who may do what, how much at once, what text leaves the server), the
admin password field, the data-set list, progress bars and how a job's own errors reach the user.

- With ``ADMIN_PASSWORD`` set, whatever writes (labels, imports, runs, models served), exports the store or costs
  minutes of CPU (evaluate, auto-label, train) needs it, checked on the server; read-only views stay open.
- Costly events also pass a bounded wait list at the door: a Gradio validator runs when a request *joins* the
  queue, so a flood of them is refused at once and never fills the queue that ``/classify`` shares.
- Text shown to users passes :meth:`Guard.scrub` (no absolute server path); where people or an LLM wrote it, the
  review shows it as plain text (``escaping.plain``, one helper for every name shown).

The jobs' own modules (``labeling/review.py``, ``training/runs.py``, ``evaluation/run.py``) know nothing of Gradio:
they raise ``ValueError`` subclasses with a message for the user, and :func:`shown` turns those into refusals.
"""

import collections
import functools
import inspect
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import anyio
import gradio as gr
from starlette.requests import Request

from escaping import plain
from i18n import COOKIE, STRINGS, Message, column_names, language, say

ROOT = Path(__file__).resolve().parent
T = gr.I18n(**STRINGS)  # static text, translated in the browser
COSTLY = ("evaluate", "import", "autolabel", "export", "train")  # their events' concurrency ids
MAX_COSTLY = 4  # costly requests in at once (waiting or running), all kinds together; more are refused at once
JOIN_WINDOW = 600.0  # seconds an admitted request that never started (its client left) counts as waiting
MAX_NAME = 100  # characters of a reviewer's name


def refuse(message: str) -> gr.Error:
    """The error a refused request gets: the message for the user, one line in the log (no traceback)."""
    return gr.Error(message, print_exception=False)


def shown(fn):
    """Wrap an event handler so that a job's own errors (``ValueError`` and its subclasses: ``ReviewError``,
    ``RunError``, ``PathNotAllowed``, ``LabelFileError``...) reach the user as a refusal with their message, in the
    user's language (a :class:`i18n.Message` is said in it). A handler with a ``lang`` parameter is given the
    request's language (Gradio passes the request to the wrapper, which declares it)."""
    signature = inspect.signature(fn)
    takes = {"lang", "request"} & set(signature.parameters)
    # where the handler has them among its positional parameters (Gradio passes the others in their order)
    places = sorted((i, p.name) for i, p in enumerate(signature.parameters.values())
                    if p.name in takes and p.kind is p.POSITIONAL_OR_KEYWORD)

    def call(request, args, kwargs):
        given = {"lang": language(request), "request": request}
        args, named = list(args), {k: given[k] for k in takes}
        for i, name in places:
            if i <= len(args):
                args.insert(i, named.pop(name))
        return fn(*args, **kwargs, **named)

    def refusal(request, e):
        lang = language(request)
        return refuse(e.said(lang) if isinstance(e, Message) else str(e))

    if inspect.isgeneratorfunction(fn):  # a streaming handler: Gradio must still see a generator
        @functools.wraps(fn)
        def handler(request: gr.Request, *args, **kwargs):
            try:
                yield from call(request, args, kwargs)
            except ValueError as e:
                raise refusal(request, e) from None
    else:
        @functools.wraps(fn)
        def handler(request: gr.Request, *args, **kwargs):
            try:
                return call(request, args, kwargs)
            except ValueError as e:
                raise refusal(request, e) from None
    # what Gradio reads to fill the arguments: the request first, then the handler's own, less those given here
    own = [p for p in signature.parameters.values() if p.name not in takes]
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)
    handler.__signature__ = signature.replace(parameters=[request, *own])
    handler.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k not in takes}, "request": gr.Request}
    return handler


def fill_at_load(fn, outputs):
    """Fill ``outputs`` with ``fn(lang)`` each time a page loads: text a handler makes, in the viewer's language.
    Call it while building the app (inside its ``gr.Blocks``)."""
    def load(request: gr.Request):
        return fn(language(request))
    gr.context.Context.root_block.load(load, None, outputs, api_visibility="private")


def headed(columns, lang: str):
    """An empty table headed by ``columns`` (:func:`i18n.column_names`) in ``lang``."""
    import pandas as pd

    return pd.DataFrame(columns=column_names(columns, lang))


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
                return await _answer(send, 507, say("en", "disk_low"))
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


def dataset_dropdown(settings, label: str, **kwargs) -> gr.Dropdown:
    """A dropdown of the data sets under the data roots (by name), listed again each time it is opened."""
    dropdown = gr.Dropdown(settings.datasets(), label=label, **kwargs)
    dropdown.focus(lambda: gr.Dropdown(choices=settings.datasets()), None, dropdown, api_visibility="private",
                   queue=False)
    return dropdown


def upload_box(label: str, elem_id: str | None = None) -> gr.File:
    """Where a user drops a data set: one archive (.zip, .tar, .tar.gz) or photos with an optional results.json."""
    return gr.File(label=label, file_count="multiple", height=130, elem_id=elem_id,
                   file_types=[".zip", ".tar", ".gz", ".tgz", ".json", "image"])


def receive_upload(settings, files, progress: gr.Progress, lang: str = "en",
                   importer: str | None = None) -> tuple[dict, str]:
    """Unpack an upload into a new data set (:func:`uploads.add_dataset`; with ``importer``, listed only once its
    import is done); returns its facts and a line for the user in ``lang``. Refusals (:class:`uploads.UploadError`)
    pass through as ``ValueError`` for :func:`shown`."""
    from uploads import add_dataset

    paths = [f.get("path") if isinstance(f, dict) else getattr(f, "name", f) for f in (files or [])]
    facts = add_dataset(paths, settings.uploads_dir, settings.max_dataset_mb,
                        lambda done, total: progress(done / total if total else None,
                                                     desc=say(lang, "up_unpacking", n=done)), importer)
    bad = facts["unreadable"]
    labels = say(lang, "up_labels", n=facts["labels"]) if facts["labels"] is not None else ""
    unreadable = say(lang, "up_unreadable", n=len(bad),
                     names=plain(", ".join(bad[:10])) + (" …" if len(bad) > 10 else ""))  # names from a file: text
    line = say(lang, "up_line", name=facts["name"], uploaded=facts["uploaded"], images=facts["images"],
               labels=labels, unreadable=unreadable if bad else "")
    return facts, line


def upload_event(upload, settings, guard, password, message, dropdown, api_name: str):
    """Wire an upload box that only adds a data set (Evaluate, Train): its line goes to ``message`` and the
    new set becomes ``dropdown``'s choice; a costly event at the door, needing the password when one is set."""
    @shown
    def on_upload(pw, files, lang, progress=gr.Progress()):
        guard.start(pw, "do_upload")
        facts, line = receive_upload(settings, files, progress, lang)
        return line, dataset_choice(settings, facts), None

    inputs = [password, upload]
    upload.upload(on_upload, inputs, [message, dropdown, upload], api_name=api_name,
                  concurrency_id="import", validator=guard.door(inputs, password, "do_upload", costly=True))


def dataset_choice(settings, facts) -> gr.Dropdown:
    """The data-set dropdown listed again, with the new upload chosen."""
    names = settings.datasets()
    chosen = next((n for n in names if settings.dataset_path(n) == Path(facts["path"]).resolve()), None)
    return gr.Dropdown(choices=names, value=chosen)


def progress_bar(progress: gr.Progress, lang: str, key: str):
    """A ``progress(done, total)`` callback for the jobs, drawing Gradio's progress bar with the catalog's ``key``
    (its ``{done}`` and ``{total}`` filled in) in ``lang``."""
    return lambda done, total: progress(done / max(total, 1), desc=say(lang, key, done=done, total=total))


def _needs_password(what: str) -> Message:
    return Message("needs_password", what=Message(what))


class Guard:
    """The admin rule and the wait list, for one app."""

    def __init__(self, settings):
        self.settings = settings
        self.blocks = None  # the app, once built: its queue tells how many costly requests wait
        self._lock, self._admitted = threading.Lock(), collections.deque()
        roots = [(Path(r).resolve(), Path(r).name) for r in settings.data_roots]
        # longest first, so a root inside DATA_DIR is named as the root
        self._names = sorted([(settings.data_dir.resolve(), "DATA_DIR"), *roots, (ROOT, ".")],
                             key=lambda p: -len(str(p[0])))

    @property
    def open(self) -> bool:
        return not self.settings.admin_password

    def require(self, password: str | None, what: str = "do_this") -> None:
        """Refuse (a :class:`i18n.Message`, for :func:`shown`) unless the admin password is right or none is set;
        ``what`` is the key of what needs it."""
        if not self.settings.admin_ok(password):
            raise _needs_password(what)

    def door(self, inputs: list, password=None, what: str = "do_this", costly: bool = False):
        """A validator for an event (``validator=guard.door(inputs, password, ...)``), run by Gradio when a request
        *joins* the queue, before it takes a place there: without the admin password (``password``, one of the
        event's ``inputs``; when one is set) the request is refused at once, so a flood of requests that need it
        never fills the queue ``/classify`` shares. A ``costly`` event is also refused while :data:`MAX_COSTLY`
        costly requests wait or run (all kinds together; see :meth:`admit`)."""
        at = inputs.index(password) if password is not None else None

        def validate(request: gr.Request, *values):
            message = None
            if at is not None and not self.settings.admin_ok(values[at]):
                message = _needs_password(what)
            elif costly and (waiting := self.admit()) is not None:
                message = Message("busy", n=waiting)
            if message:  # one line in the log
                print(f"refused at the door: {message}", file=sys.stderr, flush=True)
            text = message.said(language(request)) if message else ""
            marks = [gr.validate(message is None or i != (at or 0), text) for i in range(len(values))]
            return marks[0] if len(marks) == 1 else marks  # Gradio takes one input's mark as a value, not a list
        return validate

    def admit(self) -> int | None:
        """Count one more costly request in, or return how many are in (refused). In = running (Gradio's count per
        concurrency id) plus waiting: admitted here and not yet started (:meth:`start`), or, if more, the costly
        requests in the queue now (one whose client left before it started counts until :data:`JOIN_WINDOW` has
        passed). One lock: concurrent joins are counted one after the other, so no burst lets more than
        :data:`MAX_COSTLY` in."""
        with self._lock:
            now = time.monotonic()
            while self._admitted and now - self._admitted[0] > JOIN_WINDOW:
                self._admitted.popleft()
            queued, running = self.waiting()
            inside = max(queued, len(self._admitted)) + running
            if inside >= MAX_COSTLY:
                return inside
            self._admitted.append(now)
            return None

    def start(self, password: str | None, what: str = "do_this") -> None:
        """The first step of a costly handler: :meth:`require` the password, and count one admitted request as
        started (it no longer waits)."""
        self.require(password, what)
        with self._lock:
            if self._admitted:
                self._admitted.popleft()

    def waiting(self) -> tuple[int, int]:
        """Costly requests in the queue now, not yet started, and those running."""
        queues = getattr(getattr(self.blocks, "_queue", None), "event_queue_per_concurrency_id", {})
        mine = [queues[c] for c in COSTLY if c in queues]
        return sum(len(q.queue) for q in mine), sum(q.current_concurrency for q in mine)

    def password_box(self) -> gr.Textbox:
        """The admin password field, shown only when a password is set."""
        return gr.Textbox(label=T("admin_password"), type="password", visible=not self.open)

    def notice(self) -> str:
        """The key of the UI string (assets/i18n.json) that says plainly what is open to anyone."""
        return "access_open" if self.open else "access_locked"

    def scrub(self, text) -> str:
        """``text`` with every absolute server path of the app's folders replaced by a short name."""
        text = str(text)
        for path, name in self._names:
            text = text.replace(str(path), name)
        return text

    def check_name(self, name: str | None) -> str:
        """A reviewer's name, trimmed; refused when empty or longer than ``MAX_NAME``."""
        name = " ".join(str(name or "").split())
        if not name:
            raise Message("name_missing")
        if len(name) > MAX_NAME:
            raise Message("name_long", n=len(name), limit=MAX_NAME)
        return name
