"""What every tab shares: the doors (who may do what, how much at once, what text leaves the server), the
admin password field, the data-set list, progress bars and how a job's own errors reach the user.

- With ``ADMIN_PASSWORD`` set, whatever writes (labels, imports, runs, models served), exports the store or costs
  minutes of CPU (evaluate, auto-label, train) needs it, checked on the server; read-only views stay open.
- Costly events also pass a bounded wait list at the door: a Gradio validator runs when a request *joins* the
  queue, so a flood of them is refused at once and never fills the queue that ``/classify`` shares.
- Text shown to users passes :meth:`Guard.scrub` (no absolute server path); where people or an LLM wrote it, the
  review shows it as plain text (``labeling.review.plain``).

The jobs' own modules (``labeling/review.py``, ``training/runs.py``, ``evaluation/run.py``) know nothing of Gradio:
they raise ``ValueError`` subclasses with a message for the user, and :func:`shown` turns those into refusals.
"""

import functools
import inspect
import sys
from pathlib import Path

import gradio as gr

from i18n import T

ROOT = Path(__file__).resolve().parent
COSTLY = ("evaluate", "import", "autolabel", "export", "train")  # their events' concurrency ids
MAX_WAITING = 4  # costly requests waiting in the queue at once, all kinds together; more are refused at once
MAX_NAME = 100  # characters of a reviewer's name


def refuse(message: str) -> gr.Error:
    """The error a refused request gets: the message for the user, one line in the log (no traceback)."""
    return gr.Error(message, print_exception=False)


def shown(fn):
    """Wrap an event handler so that a job's own errors (``ValueError`` and its subclasses: ``ReviewError``,
    ``RunError``, ``PathNotAllowed``, ``LabelFileError``...) reach the user as a refusal with their message."""
    if inspect.isgeneratorfunction(fn):  # a streaming handler: Gradio must still see a generator
        @functools.wraps(fn)
        def stream(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except ValueError as e:
                raise refuse(str(e)) from None
        return stream

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            raise refuse(str(e)) from None
    return handler


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


def receive_upload(settings, files, progress: gr.Progress) -> tuple[dict, str]:
    """Unpack an upload into a new data set (:func:`uploads.add_dataset`); returns its facts and a line for the
    user. Refusals (:class:`uploads.UploadError`) pass through as ``ValueError`` for :func:`shown`."""
    from uploads import add_dataset

    paths = [f.get("path") if isinstance(f, dict) else getattr(f, "name", f) for f in (files or [])]
    facts = add_dataset(paths, settings.uploads_dir, settings.max_dataset_mb,
                        lambda done, total: progress(done / total if total else None,
                                                     desc=f"unpacking: {done} entries"))
    bad = facts["unreadable"]
    line = (f"Data set **{facts['name']}** uploaded {facts['uploaded']}: {facts['images']} photos"
            + (f", results.json with {facts['labels']} labels" if facts["labels"] is not None else "")
            + (f"; {len(bad)} unreadable: {', '.join(bad[:10])}{' …' if len(bad) > 10 else ''}" if bad else "")
            + ".")
    return facts, line


def upload_event(upload, settings, guard, password, message, dropdown, api_name: str):
    """Wire an upload box that only adds a data set (Evaluate, Train): its line goes to ``message`` and the
    new set becomes ``dropdown``'s choice; a costly event at the door, needing the password when one is set."""
    @shown
    def on_upload(pw, files, progress=gr.Progress()):
        guard.require(pw, "Uploading a data set")
        facts, line = receive_upload(settings, files, progress)
        return line, dataset_choice(settings, facts), None

    upload.upload(on_upload, [password, upload], [message, dropdown, upload], api_name=api_name,
                  concurrency_id="import", validator=guard.door(0, "Uploading a data set"))


def dataset_choice(settings, facts) -> gr.Dropdown:
    """The data-set dropdown listed again, with the new upload chosen."""
    names = settings.datasets()
    chosen = next((n for n in names if settings.dataset_path(n) == Path(facts["path"]).resolve()), None)
    return gr.Dropdown(choices=names, value=chosen)


def progress_bar(progress: gr.Progress, desc: str):
    """A ``progress(done, total)`` callback for the jobs, drawing Gradio's progress bar with ``desc``."""
    return lambda done, total: progress(done / max(total, 1), desc=desc.format(done=done, total=total))


def _needs_password(what):
    return f"{what} needs the admin password (ADMIN_PASSWORD is set on this app)."


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
    def open(self) -> bool:
        return not self.settings.admin_password

    def require(self, password: str | None, what: str = "This") -> None:
        """Raise a refusal unless the admin password is right (or none is set)."""
        if not self.settings.admin_ok(password):
            raise refuse(_needs_password(what))

    def door(self, password_at: int | None = None, what: str = "This"):
        """A validator for a costly event (``validator=guard.door(...)``): run when a request joins the queue, it
        refuses at once a request without the password (``password_at``: the password's place among the event's
        inputs) and any request while ``MAX_WAITING`` costly ones already wait."""
        def validate(*inputs):
            message, at = None, password_at or 0
            if password_at is not None and not self.settings.admin_ok(inputs[password_at]):
                message = _needs_password(what)
            elif (waiting := self.waiting()) >= MAX_WAITING:
                message = (f"The server is busy: {waiting} long jobs (evaluations, imports, training) are waiting "
                           "already. Try again in a minute.")
            if message:  # shown on the input (a client gets it as a ValidationError); one line in the log
                print(f"refused at the door: {message}", file=sys.stderr, flush=True)
            return [gr.validate(message is None or i != at, message or "") for i in range(len(inputs))]
        return validate

    def waiting(self) -> int:
        """Costly requests in the queue now, not yet started."""
        queues = getattr(getattr(self.blocks, "_queue", None), "event_queue_per_concurrency_id", {})
        return sum(len(queues[c].queue) for c in COSTLY if c in queues)

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
            raise refuse("Enter your name first: every decision records who made it.")
        if len(name) > MAX_NAME:
            raise refuse(f"Your name is {len(name)} characters long; at most {MAX_NAME}, please.")
        return name
