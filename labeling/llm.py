"""Labelling photos with a vision LLM, whoever serves it: the prompt, the reply's parsing, one labeller protocol,
an OpenAI-compatible labeller, and :func:`autolabel`, which runs any labeller over a label store.

Providers are configured, not coded: GLM-4V (Zhipu; its business error codes are in :mod:`labeling.glm`), or any
endpoint that speaks OpenAI's chat completions with images (Qwen-VL through DashScope's compatible mode, a local
Ollama, vLLM...), chosen by ``LLM_PROVIDER``, ``LLM_BASE_URL``, ``LLM_MODEL`` and ``LLM_API_KEY``
(:func:`labeling.providers.labeler_from`). Vision models often have no JSON mode, so a reply is parsed leniently but
never guessed. The openai client's own retries are off, so every error is seen here; the API key is never logged,
stored or put in a message.
"""

import base64
import io
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from PIL import Image, ImageOps

from classifier.classes import CHINESE, CLASSES, NONE, NONE_REPLY_WORDS, to_class_id

if TYPE_CHECKING:  # imported where a labeller is made: the app starts without it (a second of imports)
    import openai

PROMPT_VERSION = "animals10-v1"  # recorded with every LLM label; a test fails if PROMPT changes and it does not
PROMPT = ("Which animal does this photo show? Answer with exactly one word from this list: "
          + ", ".join(f"{c} ({CHINESE[c]})" for c in CLASSES)
          + ", none (if it shows none of these animals). Reply with that one English word only.")
PROMPT_SHA256 = {"animals10-v1": "2a87518c81bafb9c"}  # first 16 hex digits of each version's prompt
MAX_SIDE = 1024


class BatchStopped(RuntimeError):
    """The endpoint refused in a way retrying cannot fix (key, balance, bad request); the message says why."""


@dataclass
class Reply:
    label: str | None  # class id, "none", or None when no usable label came back
    status: str  # ok, unparseable, content_filter, sensitive
    raw: str


class Labeler(Protocol):
    """What :func:`autolabel` needs of a labeller."""

    provider: str  # recorded as the author of its labels ("glm", "openai")
    model: str  # recorded with each label
    retries: int  # retries so far (rate limits, transient failures)

    def label(self, path) -> Reply:
        """Ask about one photo; raise :class:`BatchStopped` when no later request can succeed either."""

    def redact(self, text) -> str:
        """``text`` without the API key."""


def parse_reply(text: str | None) -> str | None:
    """A reply -> class id, ``"none"`` or None (unparseable). Tolerates code fences, JSON, prose, Chinese.

    Exactly one class (or "none") must be named; a reply naming two is unparseable, never guessed.
    """
    text = re.sub(r"```[a-zA-Z]*", " ", text or "").lower()
    found = {to_class_id(w) for w in re.findall(r"[a-z]+", text)} - {None, NONE}
    found |= {c for c, zh in CHINESE.items() if zh in text}
    words = set(re.findall(r"[a-z]+", text))
    if words & set(NONE_REPLY_WORDS) or any(w in text for w in NONE_REPLY_WORDS if not w.isascii()):
        found.add(NONE)
    return found.pop() if len(found) == 1 else None


def encode_image(path, max_side: int = MAX_SIDE) -> str:
    """The photo as base64 JPEG, longest side at most ``max_side`` (well under the 5 MB limit)."""
    img = ImageOps.exif_transpose(Image.open(path))
    img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class OpenAICompatibleLabeler:
    """Labels one photo per call through OpenAI's chat completions API; retries rate limits (HTTP 429), server
    errors and timeouts with jittered backoff, stops the batch on what retrying cannot fix. Providers with their own
    error codes override :meth:`triage` and :meth:`advice` (:class:`labeling.glm.GLMLabeler`)."""

    provider = "openai"
    key_required = False  # a local server (Ollama, vLLM) takes any key

    def __init__(self, api_key, base_url, model, data_prefix=True, timeout=60, max_attempts=5, backoff=1.0):
        if self.key_required and not api_key:
            raise BatchStopped("No API key: set LLM_API_KEY (for GLM, ZHIPUAI_API_KEY works too) to auto-label.")
        self._key = api_key
        self.model, self.data_prefix, self.max_attempts, self.backoff = model, data_prefix, max_attempts, backoff
        import openai

        self.client = openai.OpenAI(api_key=api_key or "no-key", base_url=base_url, max_retries=0, timeout=timeout)
        self.retries = 0

    def label(self, path) -> Reply:
        """Ask the model about one image; returns a :class:`Reply`. Raises :class:`BatchStopped` or, after the
        last attempt, ``RuntimeError`` for a failure that a later run may retry."""
        import openai

        data = encode_image(path)
        url = f"data:image/jpeg;base64,{data}" if self.data_prefix else data
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                 {"type": "text", "text": PROMPT}]}]
        for attempt in range(self.max_attempts):
            try:
                response = self.client.chat.completions.create(model=self.model, messages=messages)
            except openai.APIStatusError as e:
                code, verdict = self.triage(e)
                if verdict == "filtered":
                    return Reply(None, "content_filter", self.redact(_message(e)))
                if verdict == "stop":
                    raise BatchStopped(f"The endpoint refused (HTTP {e.status_code}, code {code or '-'}): "
                                       f"{self.redact(_message(e))}. {self.advice(code, e.status_code)}") from None
                error = f"HTTP {e.status_code} code {code or '-'}"
            except (openai.APIConnectionError, openai.APITimeoutError) as e:
                error = type(e).__name__
            else:
                choice = response.choices[0]
                raw = choice.message.content or ""
                if choice.finish_reason in ("sensitive", "content_filter"):
                    return Reply(None, "sensitive", raw)
                label = parse_reply(raw)
                return Reply(label, "ok" if label else "unparseable", raw)
            if attempt + 1 < self.max_attempts:
                self.retries += 1
                time.sleep(self.backoff * 2 ** attempt * random.uniform(0.5, 1.5))
        raise RuntimeError(f"gave up after {self.max_attempts} attempts ({error}); a later run retries it")

    def triage(self, error: "openai.APIStatusError") -> tuple[str, str]:
        """``(code, verdict)`` for an HTTP error: ``"retry"`` (429, 5xx), ``"filtered"`` (a refused photo, recorded)
        or ``"stop"`` (the batch ends: key, quota, model name, bad request)."""
        body = error.body if isinstance(error.body, dict) else {}
        code = str(body.get("code") or getattr(error, "code", None) or "")
        return code, "retry" if error.status_code == 429 or error.status_code >= 500 else "stop"

    def advice(self, code: str, status: int) -> str:
        if status in (401, 403):
            return "Check LLM_API_KEY."
        return "Check the LLM_MODEL and LLM_BASE_URL settings."

    def redact(self, text) -> str:
        return str(text).replace(self._key, "***") if self._key else str(text)


def _message(error):
    body = error.body if isinstance(error.body, dict) else {}
    return body.get("message") or str(error)


def autolabel(store, labeler: Labeler, limit: int | None = None, concurrency: int = 2, progress=None,
              cancel: threading.Event | None = None, skip=()) -> dict:
    """Label every image that has no LLM answer yet (but those in ``skip``: ids the classifier is sure about,
    :func:`labeling.suspects.sure`), ``concurrency`` requests at a time.

    Each answer is saved the moment it arrives, so a killed process loses only the requests in flight, and a
    re-run skips what is done. ``progress(done, total, rate, eta_seconds)`` is called after each image;
    setting the ``cancel`` event stops after the requests in flight. Returns a summary dict.
    """
    skip = set(skip)
    without = [r for r in store.state() if r["llm_status"] is None]
    todo = sorted((r for r in without if r["id"] not in skip), key=lambda r: r["id"])
    skipped = len(without) - len(todo)
    if limit is not None:
        todo = todo[:limit]
    cancel = cancel or threading.Event()
    summary = {"total": len(todo), "skipped": skipped, "labelled": 0, "unparseable": 0,
               "content_filter": 0, "sensitive": 0, "failed": 0, "stopped": None, "cancelled": False}
    start, done = time.time(), 0
    pending, queue = {}, iter(todo)
    with ThreadPoolExecutor(concurrency) as pool:
        def refill():
            while len(pending) < concurrency and not cancel.is_set() and not summary["stopped"]:
                row = next(queue, None)
                if row is None:
                    return
                pending[pool.submit(labeler.label, row["file"])] = row

        refill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                row = pending.pop(future)
                try:
                    reply = future.result()
                except BatchStopped as e:
                    summary["stopped"] = str(e)
                    continue
                except Exception as e:  # a transient failure after all retries: not recorded, retried next run
                    summary["failed"] += 1
                    summary.setdefault("errors", []).append(f"{row['key']}: {labeler.redact(e)}")
                    continue
                store.add_event(row["id"], reply.label, "llm", author=labeler.provider, model=labeler.model,
                                prompt_version=PROMPT_VERSION, raw_reply=reply.raw, status=reply.status)
                summary["labelled" if reply.status == "ok" else reply.status] += 1
                done += 1
                if progress:
                    rate = done / max(time.time() - start, 1e-9)
                    progress(done, len(todo), rate, (len(todo) - done) / rate if rate else None)
            refill()
    summary["cancelled"] = cancel.is_set()
    summary["retries"] = labeler.retries
    return summary
