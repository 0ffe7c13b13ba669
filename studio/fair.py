"""Fair shares under floods: one client cannot fill the queue or the server's threads (:class:`FairShare`).

A *client* is a browser session (the ``session_hash`` every request of a page carries), or, on a Hugging Face Space,
whose proxy says who is calling, the address the proxy saw (:func:`client_of`): there a client cannot escape its
share by making up session ids. Sessions are free to make anywhere else, so the events that only redraw the page
also share small concurrency groups (``view``, ``heatmap``), whoever sends them.
"""

import asyncio
import collections
import json
import os
import sys

import anyio
from starlette.requests import Request

from i18n import language, say

from .http import answer

MAX_PENDING = 16  # queued events of one client, waiting or running (a page load fires none: its loads skip the queue)
MAX_JOINING = 64  # joins of one client waiting their turn (a script's burst); more are refused at once
# joins of one client decided at once: under MAX_PENDING, so joins the door refuses (no password) never count a
# client over its share; one at a time, a burst of 60 (gradio_client's) waited past its 5 s timeout on a busy CPU
JOINS_AT_ONCE = 8
MAX_RUNNING = 16  # direct (/run/) requests of one client in flight: a page load sends 11 at once
MAX_BODY = 8 * 2**20  # an event's JSON is small: a larger body is left to the door (HttpDoor), which refuses it
SWEEP_EVERY = 1024  # requests between two passes that forget clients with nothing pending
# the answers a user waits for: the last RESERVE places of a queue are theirs, so that clients making up a session
# per join (anyone can, off a Space) fill the queue with anything else only up to its max_size - RESERVE
RESERVED, RESERVE = ("classify", "top_k"), 64


def route_of(scope) -> str | None:
    """``"join"`` for a request that puts an event in a queue (``/queue/join``, ``/call/...``), ``"run"`` for one
    that runs it at once (``/run/...``, ``/api/...``), else None (pages, uploads, files, streams: not counted)."""
    path = scope.get("path", "")
    if scope["type"] != "http" or scope["method"] != "POST" or "/gradio_api/" not in path:
        return None
    route = path.split("/gradio_api/", 1)[1]
    if route == "queue/join" or route.startswith("call/"):
        return "join"
    if route.startswith(("run/", "api/")):
        return "run"
    return None


def client_of(scope, session: str | None, trust_forwarded: bool) -> str:
    """Who sent a request: on a Space (``trust_forwarded``), the address its proxy appended last to
    ``X-Forwarded-For`` (what a caller writes there itself comes before it, and is not read); elsewhere the
    request's session, else the address it came from."""
    headers = dict(scope.get("headers") or [])
    if trust_forwarded and (forwarded := headers.get(b"x-forwarded-for", b"").decode("latin-1").strip()):
        return "address " + forwarded.split(",")[-1].strip()
    if session:
        return "session " + session
    return "address " + str((scope.get("client") or ("unknown",))[0])


def session_of(body: bytes) -> str | None:
    """The ``session_hash`` of an event's JSON body, or None (none given, or not JSON: Gradio answers that)."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, RecursionError):  # not JSON, or nested past any use: Gradio answers it
        return None
    session = data.get("session_hash") if isinstance(data, dict) else None
    return session if isinstance(session, str) and 0 < len(session) <= 256 else None


async def read_body(receive) -> tuple[bytes | None, list]:
    """The request's body (None when larger than :data:`MAX_BODY`), and the messages read, to replay."""
    messages, size, more = [], 0, True
    while more:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        more = message.get("more_body", False) and message["type"] == "http.request"
        if size > MAX_BODY:
            return None, messages
    return b"".join(m.get("body", b"") for m in messages), messages


def replaying(messages: list, receive):
    """A ``receive`` that gives ``messages`` again, then goes on with the request's own."""
    messages = list(messages)

    async def replay():
        return messages.pop(0) if messages else await receive()
    return replay


class FairShare:
    """ASGI middleware, first in line: per client (:func:`client_of`), at most :data:`MAX_PENDING` events in the
    apps' queues (``apps``: the mounted ``gr.Blocks`` by mount path, whose queues count them) and
    :data:`MAX_RUNNING` direct requests in flight; more are refused at once with HTTP 429 and "too many requests"
    in the viewer's language; and the last :data:`RESERVE` places of a queue are kept for :data:`RESERVED`.

    The count of a client's queued events is Gradio's own (``Queue.pending_event_ids_session``: an event from its
    join until its result reaches the client), plus its joins let in and not answered yet (:meth:`join`)."""

    def __init__(self, app, apps: dict | None = None, trust_forwarded: bool | None = None):
        # apps: the mounted ``gr.Blocks`` by the path each is mounted at ("" for the root), longest first
        self.mounts = sorted((apps or {}).items(), key=lambda m: -len(m[0]))
        self.app, self.apps = app, [blocks for _, blocks in self.mounts]
        # a Space's proxy sets X-Forwarded-For; elsewhere anyone could write it
        self.trust_forwarded = bool(os.environ.get("SPACE_ID")) if trust_forwarded is None else trust_forwarded
        self.turns: dict[str, asyncio.Semaphore] = {}  # a client's joins being decided, JOINS_AT_ONCE at most
        self.joining = collections.Counter()  # a client's joins waiting for their turn or being decided
        self.deciding = collections.Counter()  # a client's joins let in that Gradio has not answered yet
        self.running = collections.Counter()  # a client's direct requests in flight
        self.sessions = collections.defaultdict(set)  # the Gradio sessions a client's queued events are under
        self.refused = collections.Counter()
        self.requests = 0

    async def __call__(self, scope, receive, send):
        if (route := route_of(scope)) is None:
            return await self.app(scope, receive, send)
        body, messages = await read_body(receive)
        receive = replaying(messages, receive)
        if body is None:  # too large to be an event: the door answers it
            return await self.app(scope, receive, send)
        session = session_of(body) if len(body) < 2**16 else await anyio.to_thread.run_sync(session_of, body)
        client = client_of(scope, session, self.trust_forwarded)
        if route == "run":
            return await self.run(client, scope, body, receive, send)
        if self.crowded(scope, body):
            return await self.refuse("the queue", RESERVE, scope, send)
        return await self.join(client, session, scope, receive, send)

    def crowded(self, scope, body: bytes) -> bool:
        """Whether a join must wait for room: its app's queue has only its last :data:`RESERVE` places left and
        the event is not one of :data:`RESERVED`."""
        app = self.mounted(scope["path"])
        queue = getattr(app, "_queue", None)
        if queue is None or queue.max_size is None or len(queue) < queue.max_size - min(RESERVE, queue.max_size // 4):
            return False
        return getattr(event_of(app, scope["path"], body), "api_name", None) not in RESERVED

    def mounted(self, path: str):
        """The mounted app (``gr.Blocks``) a request to ``path`` goes to, or None."""
        return next((a for prefix, a in self.mounts if path.startswith(prefix + "/gradio_api/")), None)

    async def run(self, client, scope, body, receive, send):
        """A direct request: in if its event is not one of the queue's (those run only through the queue, within
        their concurrency limits) and its client has fewer than :data:`MAX_RUNNING` in flight."""
        if getattr(event_of(self.mounted(scope["path"]), scope["path"], body), "queue", False):
            return await answer(send, 405, "This event runs through the queue (/gradio_api/queue/join, or "
                                           "/gradio_api/call/<name> then its result).")
        if self.running[client] >= MAX_RUNNING:
            return await self.refuse(client, self.running[client], scope, send)
        self.running[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.running[client] -= 1
            if not self.running[client]:
                del self.running[client]
            self.sweep()

    async def join(self, client, session, scope, receive, send):
        """A join: in if the client's events in the queues, with its joins being decided, are fewer than
        :data:`MAX_PENDING`. At most :data:`JOINS_AT_ONCE` of a client's joins are decided at once, so that count is
        exact; the others wait their turn (at most :data:`MAX_JOINING`; more are refused at once)."""
        if self.joining[client] >= MAX_JOINING:
            return await self.refuse(client, self.joining[client], scope, send)
        self.joining[client] += 1
        turn = self.turns.setdefault(client, asyncio.Semaphore(JOINS_AT_ONCE))
        try:
            async with turn:
                if (pending := self.pending(client) + self.deciding[client]) >= MAX_PENDING:
                    return await self.refuse(client, pending, scope, send)
                if session:
                    self.sessions[client].add(session)
                join = {"deciding": True}
                self.deciding[client] += 1
                try:
                    await self.app(scope, receive, self.until_decided(client, session, join, send))
                finally:
                    self.decided(client, join)
        finally:
            self.joining[client] -= 1
            if not self.joining[client]:
                del self.joining[client], self.turns[client]
            self.sweep()

    def until_decided(self, client: str, session: str | None, join: dict, send):
        """A ``send`` that ends ``join``'s count as being decided once Gradio has answered it: at the answer's
        start, after which Gradio's own count has the event; for a REST call with no session, once the answer
        names its event, under whose id Gradio files it (noted as one of the client's sessions)."""
        async def sending(message):
            if join["deciding"] and session and message["type"] == "http.response.start":
                self.decided(client, join)
            elif join["deciding"] and not session and message["type"] == "http.response.body":
                try:
                    event = json.loads(message.get("body") or b"null").get("event_id")
                except (ValueError, AttributeError):
                    event = None
                if isinstance(event, str):
                    self.sessions[client].add(event)
                self.decided(client, join)
            await send(message)
        return sending

    def decided(self, client: str, join: dict):
        if join["deciding"]:
            join["deciding"] = False
            self.deciding[client] -= 1
            if not self.deciding[client]:
                del self.deciding[client]

    def pending(self, client: str) -> int:
        """The client's events in the apps' queues, from the queues' own count; its sessions with none pending are
        forgotten (a session's next join names it again), unless a join of the client is being decided (its event
        may be on its way in)."""
        queues = [q for q in (getattr(a, "_queue", None) for a in self.apps) if q is not None]
        total = 0
        for session in list(self.sessions.get(client, ())):
            n = sum(len(q.pending_event_ids_session.get(session) or ()) for q in queues)
            if not n and not self.deciding.get(client):
                self.sessions[client].discard(session)
            total += n
        if not self.sessions.get(client):
            self.sessions.pop(client, None)
        return total

    def sweep(self):
        """Every :data:`SWEEP_EVERY` requests, forget the clients that have nothing pending or in flight (memory
        stays bounded by the clients with events in the queues)."""
        self.requests += 1
        if self.requests % SWEEP_EVERY:
            return
        for client in list(self.sessions):
            if client not in self.joining:
                self.pending(client)
        for client in [c for c in self.refused if c not in self.sessions and c not in self.joining
                       and c not in self.running]:
            del self.refused[client]

    async def refuse(self, client: str, n: int, scope, send):
        """429 with "too many requests" in the viewer's language; logged at a client's 1st, 2nd, 4th, 8th...
        refusal, so a flood of them cannot flood the log."""
        self.refused[client] += 1
        if (count := self.refused[client]).bit_count() == 1:
            print(f"refused: too many requests from one client ({n} at once; {count} refused so far)",
                  file=sys.stderr, flush=True)
        await answer(send, 429, say(language(Request(scope)), "too_many", n=n), [(b"retry-after", b"5")])


def event_of(blocks, path: str, body: bytes):
    """The event (Gradio's ``BlockFunction``) a request to ``blocks`` names: by its API name in the route
    (``/run/<name>``, ``/api/<name>``, ``/call/<name>``, ``/call/v2/<name>``), else by the body's ``fn_index``;
    None when it names none."""
    if blocks is None:
        return None
    route = path.split("/gradio_api/", 1)[-1].strip("/").split("/")
    if route[0] in ("run", "api", "call") and len(route) > 1 and route[1:] != ["predict"]:
        name = route[2] if route[1] == "v2" and len(route) > 2 else route[1]
        return next((fn for fn in blocks.fns.values() if fn.api_name == name), None)
    try:
        index = json.loads(body or b"null").get("fn_index")
    except (ValueError, RecursionError, AttributeError):
        return None
    return blocks.fns.get(index) if isinstance(index, int) else None
