"""Auto-labeling with GLM-4V (or any OpenAI-compatible vision endpoint) through the ``openai`` client.

Facts from Zhipu's documentation that shape this module: vision models have no JSON mode, so the reply is parsed
leniently but never guessed; images go as base64 ``image_url`` (under 5 MB, jpg/png; the official example sends raw
base64 without a ``data:`` prefix, so the prefix is a setting); errors carry a business code: 1301 content filter
(record, no retry), 1302/1305 rate limit (HTTP 429: back off and retry), 1113 no balance and 1000-1004
authentication (stop the batch), 1210/1211/1214 bad request (stop). A 200 reply may end with
``finish_reason="sensitive"``. The openai client's own retries are off, so these codes are never hidden.
The API key is never logged, stored or put in a message.
"""

import base64
import io
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import openai
from PIL import Image, ImageOps

from classifier.classes import CHINESE, CLASSES, NONE, NONE_REPLY_WORDS, to_class_id

PROMPT_VERSION = "animals10-v1"  # recorded with every LLM label; a test fails if PROMPT changes and it does not
PROMPT = ("Which animal does this photo show? Answer with exactly one word from this list: "
          + ", ".join(f"{c} ({CHINESE[c]})" for c in CLASSES)
          + ", none (if it shows none of these animals). Reply with that one English word only.")
PROMPT_SHA256 = {"animals10-v1": "2a87518c81bafb9c"}  # first 16 hex digits of each version's prompt
MAX_SIDE = 1024
RETRY_CODES = {"1302", "1305"}
STOP_CODES = {"1000", "1001", "1002", "1003", "1004", "1113", "1210", "1211", "1214"}


class BatchStopped(RuntimeError):
    """The endpoint refused in a way retrying cannot fix (key, balance, bad request); the message says why."""


@dataclass
class Reply:
    label: str | None  # class id, "none", or None when no usable label came back
    status: str  # ok, unparseable, content_filter, sensitive
    raw: str


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


class GLMLabeler:
    """Labels one image per call; retries rate limits and transient failures with jittered backoff."""

    def __init__(self, api_key, base_url, model, data_prefix=True, timeout=60, max_attempts=5, backoff=1.0):
        if not api_key:
            raise BatchStopped("No API key: set ZHIPUAI_API_KEY (or pass --api-key) to auto-label.")
        self._key = api_key
        self.model, self.data_prefix, self.max_attempts, self.backoff = model, data_prefix, max_attempts, backoff
        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
        self.retries = 0

    def label(self, path) -> Reply:
        """Ask the model about one image; returns a :class:`Reply`. Raises :class:`BatchStopped` or, after the
        last attempt, ``RuntimeError`` for a failure that a later run may retry."""
        data = encode_image(path)
        url = f"data:image/jpeg;base64,{data}" if self.data_prefix else data
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                 {"type": "text", "text": PROMPT}]}]
        for attempt in range(self.max_attempts):
            try:
                response = self.client.chat.completions.create(model=self.model, messages=messages)
            except openai.APIStatusError as e:
                body = e.body if isinstance(e.body, dict) else {}
                code = str(body.get("code") or getattr(e, "code", None) or "")
                if code == "1301":
                    return Reply(None, "content_filter", self.redact(_message(e)))
                if code in STOP_CODES or e.status_code in (401, 403):
                    raise BatchStopped(f"The endpoint refused (HTTP {e.status_code}, code {code or '-'}): "
                                       f"{self.redact(_message(e))}. {_advice(code, e.status_code)}") from None
                if not (code in RETRY_CODES or e.status_code == 429 or e.status_code >= 500):
                    raise BatchStopped(f"Unexpected error HTTP {e.status_code} code {code or '-'}: "
                                       f"{self.redact(_message(e))}") from None
                error = f"HTTP {e.status_code} code {code or '-'}"
            except (openai.APIConnectionError, openai.APITimeoutError) as e:
                error = type(e).__name__
            else:
                choice = response.choices[0]
                raw = choice.message.content or ""
                if choice.finish_reason == "sensitive":
                    return Reply(None, "sensitive", raw)
                label = parse_reply(raw)
                return Reply(label, "ok" if label else "unparseable", raw)
            if attempt + 1 < self.max_attempts:
                self.retries += 1
                time.sleep(self.backoff * 2 ** attempt * random.uniform(0.5, 1.5))
        raise RuntimeError(f"gave up after {self.max_attempts} attempts ({error}); a later run retries it")

    def redact(self, text) -> str:
        return str(text).replace(self._key, "***") if self._key else str(text)


def _message(error):
    body = error.body if isinstance(error.body, dict) else {}
    return body.get("message") or str(error)


def _advice(code, status):
    if code == "1113":
        return "The account has no balance left: top it up, or use the free glm-4.6v-flash model."
    if code in {"1000", "1001", "1002", "1003", "1004"} or status in (401, 403):
        return "Check ZHIPUAI_API_KEY."
    return "Check the model name and base URL settings."


def autolabel(store, labeler: "GLMLabeler", limit: int | None = None, concurrency: int = 2, progress=None,
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
                store.add_event(row["id"], reply.label, "llm", author="glm", model=labeler.model,
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
