"""The doors: who may do what, how much at once, and what text leaves the server. Every tab uses this one guard.

- With ``ADMIN_PASSWORD`` set, whatever writes (labels, imports, runs, models served), exports the store or costs
  minutes of CPU (evaluate, auto-label, train) needs it, checked on the server; read-only views stay open.
- Costly events also pass a bounded wait list at the door: a Gradio validator runs when a request *joins* the
  queue, so a flood of them is refused at once and never fills the queue that ``/classify`` shares.
- Text shown to users passes :meth:`Guard.scrub` (no absolute server path) and, where people or an LLM wrote it,
  :func:`plain` (shown as text, never as Markdown or HTML).
"""

import html
import re
import sys
from pathlib import Path

import gradio as gr

ROOT = Path(__file__).resolve().parent
COSTLY = ("evaluate", "import", "autolabel", "export", "train")  # their events' concurrency ids
MAX_WAITING = 4  # costly requests waiting in the queue at once, all kinds together; more are refused at once
MAX_NAME = 100  # characters of a reviewer's name


def refuse(message):
    """The error a refused request gets: the message for the user, one line in the log (no traceback)."""
    return gr.Error(message, print_exception=False)


def plain(text):
    """``text`` as plain text inside Markdown: HTML and Markdown syntax are shown, not rendered (so an
    ``<img src=...>`` or ``![](...)`` in a reviewer's name or an LLM reply loads nothing)."""
    text = html.escape(str(text), quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~>-])", r"\\\1", text)


class Guard:
    """The admin rule and the wait list, for one app."""

    def __init__(self, settings):
        self.settings = settings
        self.blocks = None  # the app, once built: its queue tells how many costly requests wait
        roots = [(Path(r).resolve(), Path(r).name) for r in settings.data_roots]
        # longest first, so a root inside DATA_DIR is named as the root
        self._names = sorted([(settings.data_dir.resolve(), "DATA_DIR"), *roots, (ROOT, ".")],
                             key=lambda p: -len(str(p[0])))

    @property
    def open(self):
        return not self.settings.admin_password

    def require(self, password, what="This"):
        """Raise a refusal unless the admin password is right (or none is set)."""
        if not self.settings.admin_ok(password):
            raise refuse(f"{what} needs the admin password (ADMIN_PASSWORD is set on this app).")

    def door(self, password_at=None, what="This"):
        """A validator for a costly event (``validator=guard.door(...)``): run when a request joins the queue, it
        refuses at once a request without the password (``password_at``: the password's place among the event's
        inputs) and any request while ``MAX_WAITING`` costly ones already wait."""
        def validate(*inputs):
            message, at = None, password_at or 0
            if password_at is not None and not self.settings.admin_ok(inputs[password_at]):
                message = f"{what} needs the admin password (ADMIN_PASSWORD is set on this app)."
            elif (waiting := self.waiting()) >= MAX_WAITING:
                message = (f"The server is busy: {waiting} long jobs (evaluations, imports, training) are waiting "
                           "already. Try again in a minute.")
            if message:  # shown on the input (a client gets it as a ValidationError); one line in the log
                print(f"refused at the door: {message}", file=sys.stderr, flush=True)
            return [gr.validate(message is None or i != at, message or "") for i in range(len(inputs))]
        return validate

    def waiting(self):
        """Costly requests in the queue now, not yet started."""
        queues = getattr(getattr(self.blocks, "_queue", None), "event_queue_per_concurrency_id", {})
        return sum(len(queues[c].queue) for c in COSTLY if c in queues)

    def password_box(self):
        """The admin password field, shown only when a password is set."""
        return gr.Textbox(label="Admin password", type="password", visible=not self.open)

    def notice(self):
        """What is open to anyone, said plainly."""
        if self.open:
            return ("⚠️ **No `ADMIN_PASSWORD` is set: anyone who can open this page can change labels, import, "
                    "auto-label, export the label database, evaluate, train and switch the served model.** Set "
                    "one before sharing the link.")
        return ("🔒 Classifying and looking are open to all; changing labels, importing, auto-labeling, exporting, "
                "evaluating and training need the admin password.")

    def scrub(self, text):
        """``text`` with every absolute server path of the app's folders replaced by a short name."""
        text = str(text)
        for path, name in self._names:
            text = text.replace(str(path), name)
        return text

    def check_name(self, name):
        """A reviewer's name, trimmed; refused when empty or longer than ``MAX_NAME``."""
        name = " ".join(str(name or "").split())
        if not name:
            raise refuse("Enter your name first: every decision records who made it.")
        if len(name) > MAX_NAME:
            raise refuse(f"Your name is {len(name)} characters long; at most {MAX_NAME}, please.")
        return name
