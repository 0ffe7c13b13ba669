"""The one guard of the studio: who may do what, how much at once, and what text leaves the server.

Who may do what (:meth:`Guard.allowed`), checked on the server when a request *joins* the queue (:meth:`Guard.door`,
a Gradio validator) and again in the handler; classifying and views of aggregate figures stay open:

- *label decisions* (start reviewing, decide, undo, bulk accept): with sign-in on (a Space with ``hf_oauth``), a
  signed-in Hugging Face user on ``REVIEWERS`` (empty: any signed-in user) or an admin, recorded under that user's
  name; without sign-in, anyone (a typed name) unless ``ADMIN_PASSWORD`` is set;
- *admin actions* (import, auto-label, audit draws, export, push, evaluate, train, serve): a signed-in user or
  organisation member named in ``ADMIN_USERS``; without one of those set, anyone unless ``ADMIN_PASSWORD`` is set;
- *views of a data set's photos or names* need one of those: the queue's photo (filters changed, where the model
  looked), the bulk-accept sample and the audit's disputed keys as label decisions; an evaluation's cell photos and
  a training run (its log names photos) as admin actions;
- the admin password, where set, opens both.

- Costly events also pass a bounded count at the door (:data:`MAX_COSTLY` waiting or running, all kinds together),
  so a flood of them is refused at once and never fills the queue that ``/classify`` shares.
- Text shown to users passes :meth:`Guard.scrub` (no absolute server path; every refusal does, by
  :func:`i18n.public`, with its values cut to a few dozen characters); names people or an LLM wrote are shown
  through :func:`escaping.plain`.
"""

import collections
import sys
import threading
import time
from pathlib import Path

import gradio as gr

from i18n import Message, language, name_places, unpathed

from .common import SIGNED_IN, T
from .given import given_files

ROOT = Path(__file__).resolve().parent.parent
MAX_COSTLY = 4  # costly requests in at once (waiting or running), all kinds together; more are refused at once
JOIN_WINDOW = 600.0  # seconds an admitted request that never started (its client left) counts as waiting
MAX_NAME = 100  # characters of a reviewer's name


def _needs_password(what: str) -> Message:
    return Message("needs_password", what=Message(what))


def user_of(profile) -> str | None:
    """The Hugging Face user name of a signed-in profile (``gr.OAuthProfile``), or None."""
    return (profile or {}).get("preferred_username") or None


class Guard:
    """The admin rule and the wait list, for one app."""

    def __init__(self, settings):
        self.settings = settings
        self.blocks = None  # the app, once built: its queue tells how many costly requests wait
        self._lock, self._admitted = threading.Lock(), collections.deque()
        # every reply names the app's folders so (i18n.unpathed): a data root by its name, DATA_DIR, the app's own
        name_places({settings.data_dir: "DATA_DIR", **{r: Path(r).name for r in settings.data_roots}, ROOT: "."})

    @property
    def open(self) -> bool:
        """Admin actions open to anyone (no password, no admins' list with sign-in)."""
        s = self.settings
        return not s.admin_password and not (s.sign_in and s.admin_users)

    def allowed(self, password: str | None, profile=None, kind: str = "admin") -> bool:
        """Whether a request may do a ``kind`` of action (``"label"`` or ``"admin"``) with this ``password`` and
        signed-in ``profile`` (see the module's docstring)."""
        s = self.settings
        if s.admin_password and s.admin_ok(password):
            return True
        if kind == "label":
            if s.sign_in:
                user = user_of(profile)
                return bool(user) and (not s.reviewers or user in s.reviewers or s.is_admin(profile))
            return not s.admin_password
        return (s.sign_in and s.is_admin(profile)) or self.open

    def refusal(self, what: str, kind: str) -> Message:
        """Why a request that :meth:`allowed` refused was refused, and what would let it in."""
        s = self.settings
        if kind == "label" and s.sign_in:
            return Message("needs_sign_in", what=Message(what))
        if kind == "admin" and s.sign_in and s.admin_users:
            return Message("needs_admin", what=Message(what))
        return _needs_password(what)

    def require(self, password: str | None, what: str = "do_this", kind: str = "admin") -> None:
        """Refuse (a :class:`i18n.Message`, for :func:`shown`) unless :meth:`allowed` lets the request in; the
        profile is the one signed in for the request being served (:data:`studio.common.SIGNED_IN`); ``what`` is
        the key of what needs it."""
        if not self.allowed(password, SIGNED_IN.get(), kind):
            raise self.refusal(what, kind)

    def reviewer(self, name: str | None) -> str:
        """Who a label decision is recorded under: the signed-in Hugging Face user with sign-in on (no name to
        type), else the typed ``name`` (:meth:`check_name`)."""
        if self.settings.sign_in:
            user = user_of(SIGNED_IN.get())
            if not user:
                raise Message("needs_sign_in", what=Message("do_labels"))
            return user
        return self.check_name(name)

    def same_reviewer(self, session: dict | None) -> None:
        """With sign-in, a decision goes under the user signed in now: a queue started by someone else (a sign-out
        and another sign-in in the same page) must be started again."""
        if self.settings.sign_in and session and session.get("reviewer") != user_of(SIGNED_IN.get()):
            raise Message("rv_err_start")

    def importer(self, name: str | None) -> str | None:
        """Who an upload is recorded under: the signed-in user with sign-in on, else the typed ``name`` if any."""
        if self.settings.sign_in:
            return user_of(SIGNED_IN.get())
        return self.check_name(name) if (name or "").strip() else None

    def door(self, inputs: list, password=None, what: str = "do_this", costly: bool = False, kind: str = "admin",
             files=None):
        """A validator for an event (``validator=guard.door(inputs, password, ...)``), run by Gradio when a request
        *joins* the queue, before it takes a place there: without the admin password (``password``, one of the
        event's ``inputs``; when one is set) the request is refused at once, so a flood of requests that need it
        never fills the queue ``/classify`` shares. A ``costly`` event is also refused while :data:`MAX_COSTLY`
        costly requests wait or run (all kinds together; see :meth:`admit`). The ``files`` input (an upload box)
        passes the file rule (:func:`studio.given.given_files`) here too, so a refused file is refused as it joins,
        whatever path it names."""
        at = inputs.index(password) if password is not None else None
        files_at = inputs.index(files) if files is not None else None

        def validate(request: gr.Request, profile: gr.OAuthProfile | None, *values):
            message = None
            if at is not None and not self.allowed(values[at], profile, kind):
                message = self.refusal(what, kind)
            elif files_at is not None:
                given_files(values[files_at], language(request))  # raises the rule's one refusal
            if message is None and costly and (waiting := self.admit()) is not None:
                message = Message("busy", n=waiting)
            if message:  # one line in the log
                print(f"refused at the door: {message}", file=sys.stderr, flush=True)
            text = message.said(language(request)) if message else ""
            marks = [gr.validate(message is None or i != (at or 0), text) for i in range(len(values))]
            return marks[0] if len(marks) == 1 else marks  # Gradio takes one input's mark as a value, not a list
        validate.costly = costly  # what costly_ids reads off the built app
        return validate

    def costly_ids(self) -> set[str]:
        """The concurrency ids of the costly events (evaluate, import, autolabel, export, train): those whose door
        says ``costly``, read off the built app, so an event is counted by saying so at its door and nowhere else."""
        fns = getattr(self.blocks, "fns", None) or {}
        return {fn.concurrency_id for fn in fns.values() if getattr(fn.validator, "costly", False)}

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
        """The first step of a costly handler (an admin action): :meth:`require`, and count one admitted request as
        started (it no longer waits)."""
        self.require(password, what)
        with self._lock:
            if self._admitted:
                self._admitted.popleft()

    def waiting(self) -> tuple[int, int]:
        """Costly requests in the queue now, not yet started, and those running."""
        queues = getattr(getattr(self.blocks, "_queue", None), "event_queue_per_concurrency_id", {})
        mine = [queues[c] for c in self.costly_ids() if c in queues]
        return sum(len(q.queue) for q in mine), sum(q.current_concurrency for q in mine)

    def password_box(self) -> gr.Textbox:
        """The admin password field, shown only when a password is set."""
        return gr.Textbox(label=T("admin_password"), type="password", visible=bool(self.settings.admin_password))

    def notice(self) -> str:
        """The key of the UI string (assets/i18n.json) that says plainly what is open to anyone."""
        if self.settings.sign_in:
            return "access_sign_in" if not self.open else "access_sign_in_open"
        return "access_open" if self.open else "access_locked"

    def scrub(self, text) -> str:
        """``text`` with no absolute server path (:func:`i18n.unpathed`): the app's folders by a short name, any other
        path by its last part. Not cut: a training log's tail is long (refusals are cut as they are said)."""
        return unpathed(text)

    def check_name(self, name: str | None) -> str:
        """A reviewer's name, trimmed; refused when empty or longer than ``MAX_NAME``."""
        name = " ".join(str(name or "").split())
        if not name:
            raise Message("name_missing")
        if len(name) > MAX_NAME:
            raise Message("name_long", n=len(name), limit=MAX_NAME)
        return name
