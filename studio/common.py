"""What every tab shares: the static text (:data:`T`), :func:`shown` (a job's own errors as refusals in the
viewer's language), text filled at page load, the data-set dropdown, upload boxes and progress bars.

The jobs' own modules (``labeling/review.py``, ``training/runs.py``, ``evaluation/run.py``) know nothing of Gradio:
they raise ``ValueError`` subclasses with a message for the user, and :func:`shown` turns those into refusals.
"""

import contextvars
import functools
import inspect
import json
import sys
import traceback
from pathlib import Path

import gradio as gr
from gradio.exceptions import InvalidPathError

from escaping import plain
from i18n import LONGEST_TEXT, STRINGS, Message, column_names, language, public, say

from .given import given_files

T = gr.I18n(**STRINGS)  # static text, translated in the browser
# the Hugging Face profile of the request a handler serves (None: not signed in), set by :func:`shown` for the one
# guard (studio/guard.py) to read, so no handler passes it along
SIGNED_IN: contextvars.ContextVar = contextvars.ContextVar("signed_in", default=None)


def refuse(message: str, logged: str | None = None) -> gr.Error:
    """The error a refused request gets: ``message`` for the user, and for the log ``logged`` (English; default the
    message), written as one line, never a traceback, as the request leaves (:func:`one_line_refusals`)."""
    error = gr.Error(message, print_exception=False)
    error.logged = logged or message
    return error


class _BadInput(Exception):
    """A request's value that Gradio could not take in (raised by the preprocessing :func:`one_line_refusals`
    wraps): the request's fault, not the app's."""


def one_line_refusals(blocks) -> None:
    """Every refused request of ``blocks`` (a mounted app) is one line in the log, never a traceback, and its reply
    carries no server path and no long value:

    - a refusal a handler raises (any ``gr.Error``: :func:`refuse`, the tools app's, a file input's) is written as
      one line as it leaves (Gradio would print the traceback of one without ``print_exception=False``);
    - a value Gradio cannot take in (a file input that is no ``FileData``, a dropdown value not among its choices,
      a path Gradio will not move to its cache) is refused in the viewer's words with Gradio's reason as a value of
      ``bad_input`` (:class:`i18n.Message`: cut, no path), where Gradio would print a traceback and, for a
      dropdown, send the 100 KB value back whole.

    An error of the app's own (any other exception in a handler) keeps its traceback: that is a bug to see."""
    preprocess, process = blocks.preprocess_data, blocks.process_api

    async def preprocess_data(*args, **kwargs):
        try:
            return await preprocess(*args, **kwargs)
        except Exception as e:
            raise _BadInput(e) from e

    async def process_api(*args, **kwargs):
        try:
            return await process(*args, **kwargs)
        except _BadInput as bad:
            e = bad.args[0]
            why = e.message if isinstance(e, gr.Error) else (str(e).strip().splitlines() or [type(e).__name__])[0]
            # a path Gradio will not take is the file rule's one refusal (studio.given): same words for any path
            message = Message("not_uploaded") if isinstance(e, InvalidPathError) else Message("bad_input", why=why)
            refusal = refuse(message.said(language(kwargs.get("request"))), str(message))
        except gr.Error as e:
            refusal = e
        except Exception as e:
            if not _gradios_own(e):
                raise  # an error of the app's own code keeps its traceback: a bug to see
            # raised inside Gradio while it took the request's values in (a select with no event data, an example
            # with no index): the request's fault, refused as a value Gradio cannot take
            message = Message("bad_input", why=(str(e).strip().splitlines() or [type(e).__name__])[0])
            refusal = refuse(message.said(language(kwargs.get("request"))), str(message))
        refusal.print_exception = False
        if getattr(kwargs.get("block_fn"), "_id", None) != -1:  # a validator's (-1): Gradio prints it in one line
            line = " ".join(str(getattr(refusal, "logged", refusal.message)).split())
            print(f"refused: {public(line, LONGEST_TEXT)}", file=sys.stderr, flush=True)
        raise refusal from None

    blocks.preprocess_data, blocks.process_api = preprocess_data, process_api


def _gradios_own(error) -> bool:
    """Whether ``error`` was raised by Gradio's own code, not the app's: no frame of its traceback is the
    project's."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and not any(f.filename.startswith(_PROJECT) and "/site-packages/" not in f.filename
                                    for f in frames[1:])


_PROJECT = str(Path(__file__).resolve().parent.parent) + "/"


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

    def call(request, profile, args, kwargs):
        SIGNED_IN.set(profile)
        given = {"lang": language(request), "request": request}
        args, named = list(args), {k: given[k] for k in takes}
        for i, name in places:
            if i <= len(args):
                args.insert(i, named.pop(name))
        return fn(*args, **kwargs, **named)

    def refusal(request, e):
        e = e if isinstance(e, Message) else Message(str(e))  # a library's words: said as free text (no path, short)
        return refuse(e.said(language(request)), str(e))

    if inspect.isgeneratorfunction(fn):  # a streaming handler: Gradio must still see a generator
        @functools.wraps(fn)
        def handler(request: gr.Request, profile: gr.OAuthProfile | None, *args, **kwargs):
            try:
                yield from call(request, profile, args, kwargs)
            except ValueError as e:
                raise refusal(request, e) from None
    else:
        @functools.wraps(fn)
        def handler(request: gr.Request, profile: gr.OAuthProfile | None, *args, **kwargs):
            try:
                return call(request, profile, args, kwargs)
            except ValueError as e:
                raise refusal(request, e) from None
    # what Gradio reads to fill the arguments: the request and the profile first, then the handler's own, less
    # those given here
    own = [p for p in signature.parameters.values() if p.name not in takes]
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request)
    profile = inspect.Parameter("profile", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=gr.OAuthProfile | None)
    handler.__signature__ = signature.replace(parameters=[request, profile, *own])
    handler.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k not in takes}, "request": gr.Request,
                               "profile": gr.OAuthProfile | None}
    return handler


def fill_at_load(fn, outputs):
    """Fill ``outputs`` with ``fn(lang)`` each time a page loads: text a handler makes, in the viewer's language.
    Call it while building the app (inside its ``gr.Blocks``)."""
    def load(request: gr.Request):
        return fn(language(request))
    # cheap redraws, and a page load sends 11 at once: not through the queue (studio.fair); joined anyway, they share
    # the small "view" group
    gr.context.Context.root_block.load(load, None, outputs, api_visibility="private", queue=False,
                                       concurrency_id="view", concurrency_limit=2)


def headed(columns, lang: str):
    """An empty table headed by ``columns`` (:func:`i18n.column_names`) in ``lang``."""
    import pandas as pd

    return pd.DataFrame(columns=column_names(columns, lang))


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

    paths = given_files(files, lang)  # only files uploaded through the page, never a server path
    facts = add_dataset(paths, settings.layout.datasets, settings.max_dataset_mb,
                        lambda done, total: progress(done / total if total else None,
                                                     desc=say(lang, "up_unpacking", n=done)), importer)
    if settings.persist_dir and importer is None:  # kept in PERSIST_DIR once (a Review upload: once imported)
        settings.journal().keep_dataset(facts["path"])
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
                  concurrency_id="import",
                  validator=guard.door(inputs, password, "do_upload", costly=True, files=upload))


def dataset_choice(settings, facts) -> gr.Dropdown:
    """The data-set dropdown listed again, with the new upload chosen."""
    names = settings.datasets()
    chosen = next((n for n in names if settings.dataset_path(n) == Path(facts["path"]).resolve()), None)
    return gr.Dropdown(choices=names, value=chosen)


def progress_bar(progress: gr.Progress, lang: str, key: str):
    """A ``progress(done, total)`` callback for the jobs, drawing Gradio's progress bar with the catalog's ``key``
    (its ``{done}`` and ``{total}`` filled in) in ``lang``."""
    return lambda done, total: progress(done / max(total, 1), desc=say(lang, key, done=done, total=total))


def store_labels(settings, folder, source="reviewed"):
    """The label store's labels of the data set at ``folder`` from ``source``, or None where the store does not know
    it (or ``source`` is ``"file"``)."""
    from labeling.labelset import FILE, labels_of
    from labeling.store import LabelStore

    db = settings.layout.labels_db
    if source == FILE or not db.exists():
        return None
    store = LabelStore(db)
    if not any(d["root"] == str(Path(folder).resolve()) for d in store.datasets()):
        return None
    return labels_of(store, folder, source or None)


def evaluations_of(settings, folder) -> int:
    """How many evaluations under ``DATA_DIR/evaluations`` scored the photos of ``folder`` (a leak, should a model
    then train on them)."""
    target = str(Path(folder).resolve())
    count = 0
    for report in settings.layout.evaluations.glob("*/report.json"):
        try:
            count += json.loads(report.read_text()).get("images") == target
        except (OSError, ValueError):
            continue
    return count


DEFAULT = "default"  # the served default model, among the model choices


def model_choices(settings):
    """``[(label, value)]``: the default model (by the name its card gives it), then every finished training run
    (newest first). Values are names, never server paths; :func:`model_path` finds the file."""
    from classifier.modelfile import model_meta
    from training.runs import RunStore

    return [(f"★ {model_meta(settings.model_path)['name']}", DEFAULT)] + \
        [(f"▶ {name}", f"run: {name}") for name in RunStore(settings).finished()]


def model_path(settings, choice):
    """The model file of a :func:`model_choices` value; raises ``RunError`` for anything else."""
    from training.runs import RunStore

    if choice in (None, "", DEFAULT):
        return Path(settings.model_path)
    return RunStore(settings).model(str(choice).removeprefix("run: "))
