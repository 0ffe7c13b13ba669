"""The Review tab: the suspects-first queue, one-key decisions, undo, bulk accept, import, auto-label, export.

The tab composes :mod:`labeling.store`, :mod:`labeling.suspects` and :mod:`labeling.glm`; every change to labels
is checked server-side (reviewer name, and ``ADMIN_PASSWORD`` when set), so direct API calls get no further than
the buttons do.
"""

import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd

from classifier.classes import CLASSES, NONE, display_name
from classifier.images import ImageError, thumbnail
from evaluation.labels import OTHER
from evaluation.metrics import evaluate
from guard import MAX_NAME, plain, refuse
from settings import PathNotAllowed

from .glm import BatchStopped, GLMLabeler, autolabel
from .store import LabelStore
from .suspects import model_key, predict_store, rank

EXPORTS = Path(tempfile.gettempdir()) / "animals10-exports"  # never under DATA_DIR, which is not served

KEYS = [str((i + 1) % 10) for i in range(10)]  # 1..9 then 0, in class order
STATUSES = ["all", "unreviewed", "accepted", "corrected"]
SORTS = ["suspicion", "model confidence", "key"]
IMPACT_COLUMNS = ("labels", "scored", "accuracy", "cat recall", "dog precision")


class Review:
    """Server-side logic of the tab, one instance per app (the store is shared by all sessions)."""

    def __init__(self, settings, slot, guard):
        self.settings, self.slot, self.guard = settings, slot, guard
        self.store = LabelStore(settings.data_dir / "labels.db")
        self.autolabel_cancel, self.autolabel_lock = threading.Event(), threading.Lock()
        # (store version, result) of the last reading of each: read again only when the version moved
        self._state, self._probs, self._ranked = (None, None), (None, None), (None, None)
        self._predict_lock, self._predicted_for, self.predicting = threading.Lock(), None, None

    # -- checks ------------------------------------------------------------------------------------------------

    def check(self, session, password):
        self.guard.require(password, "Changing labels")
        if not session or not session.get("reviewer"):
            raise refuse("Enter your name and press Start first: every decision records who made it.")

    # -- predictions, in the background ------------------------------------------------------------------------

    def predict_in_background(self, wait=0.0):
        """Compute the served model's missing predictions in a thread (one at a time), at the classifier's batch
        speed, saved as they come (the queue ranks them as they arrive); wait at most ``wait`` seconds for it."""
        clf = self.slot.get()
        key, images = model_key(clf), self.store.version()[1]
        if self._predicted_for != (key, images) and self._predict_lock.acquire(blocking=False):
            self._predicted_for = (key, images)  # an unreadable image is not tried again until something changes

            def work():
                try:
                    predict_store(self.store, clf, progress=lambda i, n: setattr(self, "predicting", (i, n)))
                finally:
                    self.predicting = None
                    self._predict_lock.release()
            threading.Thread(target=work, daemon=True, name="predictions").start()
        deadline = time.time() + wait
        while self._predict_lock.locked() and time.time() < deadline:
            time.sleep(0.05)

    # -- queue -------------------------------------------------------------------------------------------------

    def state(self):
        """The store's state, read again only when labels or images changed (by anyone) since the last read: after
        new events only their images are read again (a decision costs one image, not the whole store)."""
        version, rows = self._state
        now = self.store.version()[:2]
        if version == now:
            return rows
        if version and version[1] == now[1] and version[0] is not None:
            fresh = {r["id"]: r for r in self.store.state(self.store.changed_since(version[0]))}
            rows = [fresh.get(r["id"], r) for r in rows]
        else:  # first read, or images were added
            rows = self.store.state()
        self._state = (now, rows)  # read after the version: at worst newer than it, then patched once more
        return rows

    def ranked(self):
        """The whole store ranked, most suspicious first; ranked again only when labels, images, the served model
        or its cached predictions changed, so browsing costs no ranking and a decision one. Images still without a
        prediction (being computed in the background) rank after those with one."""
        clf = self.slot.get()
        key = model_key(clf)
        last_event, images, predicted = self.store.version(key)
        if predicted < images:
            self.predict_in_background()
        if self._probs[0] != (key, images, predicted):
            probs = {i: np.asarray(p, np.float32) for i, p in self.store.cached_predictions(key).items()}
            self._probs = ((key, images, predicted), probs)
        (stamp, probs), (ranked_at, rows) = self._probs, self._ranked
        if ranked_at != (stamp, last_event):
            rows = rank(self.state(), probs, clf.classes)
            self._ranked = ((stamp, last_event), rows)
        return rows

    def queue(self, status="all", label="all", predicted="all", llm_only=False, sort="suspicion"):
        rows = list(self.ranked())  # a copy: sorting it must not reorder the cached ranking
        if status != "all":
            rows = [r for r in rows if r["status"] == status]
        if label != "all":
            rows = [r for r in rows if (r["label"] or "").startswith(OTHER)] if label == "other" else \
                [r for r in rows if r["label"] == label]
        if predicted != "all":
            rows = [r for r in rows if r["predicted"] == predicted]
        if llm_only:
            rows = [r for r in rows if r["llm_label"] == NONE or r["llm_status"] in
                    ("unparseable", "content_filter", "sensitive")]
        if sort == "model confidence":
            rows.sort(key=lambda r: r["p_predicted"] if r["p_predicted"] is not None else 0)
        elif sort == "key":
            rows.sort(key=lambda r: r["key"])
        return rows

    def next_image(self, session, filters):
        since = self.store.version()[0]  # the last event before the queue is read
        rows = self.queue(*filters)
        seen = set(session["history"])
        image = self.store.claim_next([r["id"] for r in rows if r["id"] not in seen], session["holder"], since)
        return image, rows

    # -- views -------------------------------------------------------------------------------------------------

    def view(self, image_id, queue=None):
        """(photo, details markdown, progress markdown) for one image; ``queue`` is the ranked queue it came from
        (passed on, so a key press ranks the store once, not twice)."""
        if image_id is None:
            text = "**Nothing left in this queue.** Change the filters, or import images."
            return None, text, self.progress()
        row = next(r for r in (queue if queue is not None else self.ranked()) if r["id"] == image_id)
        clf = self.slot.get()
        probs = self.store.cached_prediction(model_key(clf), image_id)  # one row, not the whole cache
        top3 = ", ".join(f"{display_name(c)} {p:.0%}" for c, p in clf.top_k(np.asarray(probs), 3)) if probs else "-"
        label = row["label"]
        shown = display_name(label) if label in CLASSES else ("none of the 10" if label == NONE else label or "—")
        uid = row["uid"].replace("`", "'")  # a code span shows anything but a backtick as text
        lines = [f"### {plain(shown)}",
                 f"`{uid}` (data set {plain(row['dataset'])}) · label from **{row['source'] or 'nobody'}** · "
                 f"{row['status']}" + (f" by {plain(row['reviewer'])}" if row["reviewer"] else ""),
                 f"**Model:** {top3}" + (" — *disagrees*" if row["disagree"] else ""),
                 f"**LLM said:** {_llm_line(row)}"]
        if queue is not None:
            lines.append(f"{len(queue)} images in this queue · suspicion rank {row['rank']}")
        try:
            picture = thumbnail(row["file"], 900)
        except ImageError as e:
            picture, lines = None, lines + [f"⚠️ {plain(self.guard.scrub(e))}"]
        return picture, "\n\n".join(lines), self.progress()

    def progress(self):
        s = self.store.stats(self.state())
        per = " · ".join(f"{display_name(c) if c in CLASSES else c} {n}" for c, n in sorted(s["per_label"].items()))
        busy = self.predicting
        busy = f" · model predictions {busy[0]} / {busy[1]} (the queue ranks them as they come)" if busy else ""
        return (f"**Reviewed {s['reviewed']} / {s['total']}** ({s['accepted']} accepted, {s['corrected']} "
                f"corrected; {s['changed_from_llm']} changed from the LLM's label) · LLM-labelled "
                f"{s['llm_labelled']}{busy}\n\n{plain(per)}")

    # -- bulk accept -------------------------------------------------------------------------------------------

    def bulk_candidates(self, min_confidence):
        """Unreviewed images whose LLM/import label the model agrees with at ``min_confidence`` or more."""
        return [r for r in self.ranked() if r["status"] == "unreviewed" and r["label"] in CLASSES
                and r["predicted"] == r["label"] and (r["p_predicted"] or 0) >= min_confidence]

    def impact(self):
        """Accuracy, cat recall and dog precision of the serving model against the labels before and after review.

        Uses the cached predictions, so it costs no image decoding.
        """
        clf = self.slot.get()
        probs = self.store.cached_predictions(model_key(clf))
        rows = [r for r in self.store.state() if r["id"] in probs]
        table = []
        for name, column in (("before review (LLM / imported)", "machine_label"), ("after review (current)", "label")):
            scored = [r for r in rows if r[column] is not None]
            report = evaluate([r[column] for r in scored],
                              [clf.classes[int(np.argmax(probs[r["id"]]))] for r in scored], n_boot=200)
            cat = report["per_class"]["cat"]
            table.append([name, report["n_scored"], _pct(report["accuracy"]),
                          _pct(cat["recall"] if cat["support"] else None),
                          _pct(report["per_class"]["dog"]["precision"])])
        return pd.DataFrame(table, columns=IMPACT_COLUMNS)

    # -- auto-label --------------------------------------------------------------------------------------------

    def run_autolabel(self, limit, progress):
        if not self.autolabel_lock.acquire(blocking=False):
            raise refuse("Auto-labeling is already running.")
        try:
            self.autolabel_cancel.clear()
            labeler = GLMLabeler(self.settings.glm_api_key, self.settings.glm_base_url, self.settings.glm_model,
                                 data_prefix=self.settings.glm_data_prefix)
            return autolabel(self.store, labeler, limit or None, 2, progress, self.autolabel_cancel)
        except BatchStopped as e:
            raise refuse(str(e)) from None
        finally:
            self.autolabel_lock.release()


    # -- export ------------------------------------------------------------------------------------------------

    def export(self):
        """Files for one download: each data set's results.json (original format), the history CSV and a copy of
        the database, in a fresh temporary folder (Gradio serves its own copies; older exports are removed)."""
        EXPORTS.mkdir(exist_ok=True)
        for old in EXPORTS.glob("export-*"):
            if time.time() - old.stat().st_mtime > 600:
                shutil.rmtree(old, ignore_errors=True)
        out = Path(tempfile.mkdtemp(prefix="export-", dir=EXPORTS))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        files = []
        for d in self.store.datasets():
            files.append(out / f"results-{re.sub(r'[^A-Za-z0-9._-]+', '_', d['name'])}-{stamp}.json")
            self.store.export_results(files[-1], d["name"])
        files += [out / f"history-{stamp}.csv", out / f"labels-{stamp}.db"]
        self.store.export_history(files[-2])
        self.store.backup(files[-1])
        return [str(f) for f in files]


def _pct(x):
    return "-" if x is None else f"{x:.1%}"


def _llm_line(row):
    if row["llm_status"] is None:
        return "not asked yet"
    reply = (row["llm_reply"] or "").strip().replace("\n", " ")
    reply = reply[:300] + ("…" if len(reply) > 300 else "")
    return f"{plain(row['llm_label'] or row['llm_status'])} — “{plain(reply)}”"


def build(settings, slot, guard, T=None):
    """Add the Review tab's components and events to the current ``gr.Blocks``; returns the filter dropdowns."""
    review = Review(settings, slot, guard)
    session = gr.State(None)
    has_key = bool(settings.glm_api_key)
    if not settings.persistent:
        gr.Markdown("⚠️ **This Space's disk is wiped when it restarts**: `DATA_DIR` is not on persistent "
                    "storage, so labels live only until then. Download the label database and the exports below "
                    "regularly (or attach persistent storage and set `DATA_DIR=/data`).")
    with gr.Row():
        reviewer = gr.Textbox(label="Your name (recorded with each decision)", scale=2, max_length=MAX_NAME)
        password = guard.password_box()
        start = gr.Button("Start reviewing", variant="primary", scale=1)
    with gr.Accordion("Import, auto-label, export", open=False):
        with gr.Row():
            dataset = gr.Dropdown(settings.datasets(), label="Image folder to import (results.json inside it is read)")
            import_button = gr.Button("Import")
        with gr.Row():
            autolabel_limit = gr.Number(value=0, precision=0, label="Auto-label at most N images (0 = all)")
            autolabel_button = gr.Button("Auto-label with GLM-4V", interactive=has_key)
            cancel_button = gr.Button("Cancel auto-labeling", interactive=has_key)
        if not has_key:
            gr.Markdown("Auto-labeling is off: set `ZHIPUAI_API_KEY` (and optionally `GLM_BASE_URL`, `GLM_MODEL`).")
        with gr.Row():
            export_button = gr.Button("Export results.json (one per data set), history CSV and the label database")
            files = gr.File(label="Downloads", file_count="multiple", height=90)
        admin_status = gr.Markdown()
    with gr.Row():
        status = gr.Dropdown(STATUSES, value="unreviewed", label="Status")
        label = gr.Dropdown(["all", *CLASSES, NONE, "other"], value="all", label="Current label")
        predicted = gr.Dropdown(["all", *CLASSES], value="all", label="Model predicts")
        llm_only = gr.Checkbox(label="LLM said none / unparseable", value=False)
        sort = gr.Dropdown(SORTS, value="suspicion", label="Sort")
    progress_md = gr.Markdown(review.progress())
    with gr.Row(elem_id="review-panel"):
        with gr.Column(scale=3):
            photo = gr.Image(label="Photo", type="pil", interactive=False, height=460)
        with gr.Column(scale=2):
            details = gr.Markdown("Enter your name and press **Start reviewing**.")
            buttons = []
            for row_classes in (CLASSES[:5], CLASSES[5:]):
                with gr.Row(elem_classes="rv-grid"):
                    for c in row_classes:
                        key = KEYS[CLASSES.index(c)]
                        buttons.append((c, gr.Button(f"{key} · {display_name(c)}", size="sm", min_width=90,
                                                     elem_id=f"rv-class-{key}")))
            with gr.Row():
                none_button = gr.Button("n · none of the 10", size="sm", elem_id="rv-none")
                accept_button = gr.Button("Enter · accept", variant="primary", size="sm", elem_id="rv-accept")
            with gr.Row():
                prev_button = gr.Button("← previous", size="sm", elem_id="rv-prev")
                next_button = gr.Button("next →", size="sm", elem_id="rv-next")
                undo_button = gr.Button("Ctrl+Z · undo", size="sm", elem_id="rv-undo")
    with gr.Accordion("Bulk accept where the LLM and the model agree", open=False):
        min_conf = gr.Slider(0.5, 1.0, value=0.95, step=0.01, label="Minimum model confidence")
        preview_button = gr.Button("Preview")
        bulk_md = gr.Markdown()
        bulk_gallery = gr.Gallery(columns=8, height=240, label="A sample")
        bulk_button = gr.Button("Accept them all (one undo reverts the batch)")
    with gr.Accordion("Review impact: the model against the labels before and after review", open=False):
        impact_button = gr.Button("Compute")
        impact_table = gr.Dataframe(interactive=False, headers=list(IMPACT_COLUMNS))
    filters = [status, label, predicted, llm_only, sort]
    view_outputs = [photo, details, progress_md, session]

    def on_start(name, pw, *f):
        *f, old = f
        name = guard.check_name(name)
        # Starting again (new filters) keeps this browser's lease holder, so its open image is released, not stuck.
        holder = old["holder"] if old and old.get("reviewer") == name else f"{name}:{uuid.uuid4().hex[:8]}"
        sess = {"reviewer": name, "holder": holder, "history": [], "current": None}
        review.check(sess, pw)
        review.predict_in_background(wait=3)  # a small set is ranked at once; a large one opens while it runs
        return show_next(sess, f)

    def show_next(sess, f):
        image, queue = review.next_image(sess, f)
        if image is not None:
            sess["history"].append(image)
        sess["current"] = image
        return (*review.view(image, queue), sess)

    def on_decide(choice):
        def handler(sess, pw, *f):
            review.check(sess, pw)
            current = sess.get("current")
            if current is None:
                raise refuse("No image open: press Start reviewing or next.")
            if choice == "accept":
                row = review.store.state([current])[0]
                if row["label"] is None:
                    raise refuse("There is no label to accept: pick a class, or n for none.")
                decision = row["label"]
            else:
                decision = choice
            review.store.decide(current, decision, sess["reviewer"])
            return show_next(sess, f)
        return handler

    def on_next(sess, pw, *f):
        review.check(sess, pw)
        return show_next(sess, f)

    def on_prev(sess, pw, *f):
        review.check(sess, pw)
        history = sess["history"]
        if len(history) < 2:
            raise refuse("This is the first image of the session.")
        history.pop()
        if not review.store.claim(history[-1], sess["holder"]):
            raise refuse("Another reviewer has that image open right now.")
        sess["current"] = history[-1]
        return (*review.view(sess["current"]), sess)

    def on_undo(sess, pw, *f):
        review.check(sess, pw)
        images = review.store.undo(sess["reviewer"])
        if not images:
            raise refuse("Nothing of yours to undo.")
        review.store.claim(images[0], sess["holder"])
        sess["current"] = images[0]
        sess["history"].append(images[0])
        if len(images) > 1:
            gr.Info(f"Undid a batch of {len(images)} accepted labels.")
        return (*review.view(images[0]), sess)

    for c, button in buttons:
        button.click(on_decide(c), [session, password, *filters], view_outputs, api_name=f"label_{c}")
    none_button.click(on_decide(NONE), [session, password, *filters], view_outputs, api_name="label_none")
    accept_button.click(on_decide("accept"), [session, password, *filters], view_outputs, api_name="accept")
    next_button.click(on_next, [session, password, *filters], view_outputs, api_visibility="private")
    prev_button.click(on_prev, [session, password, *filters], view_outputs, api_visibility="private")
    undo_button.click(on_undo, [session, password, *filters], view_outputs, api_name="undo")
    start.click(on_start, [reviewer, password, *filters, session], view_outputs, api_name="review_start")
    for f in filters:
        f.change(lambda sess, pw, *fs: show_next(sess, fs) if sess and sess.get("reviewer") else
                 (gr.skip(), gr.skip(), gr.skip(), sess), [session, password, *filters], view_outputs,
                 api_visibility="private")

    def on_preview(threshold):
        rows = review.bulk_candidates(threshold)
        sample = []
        for r in rows[:: max(1, len(rows) // 16)][:16]:
            try:
                sample.append((thumbnail(r["file"], 160), f"{r['label']} {r['p_predicted']:.2f}"))
            except ImageError:
                continue
        return f"**{len(rows)} unreviewed images** where the label and the model agree at ≥ {threshold:.0%}.", sample

    def on_bulk(sess, pw, threshold):
        review.check(sess, pw)
        rows = review.bulk_candidates(threshold)
        if not rows:
            raise refuse("No image qualifies: lower the confidence or auto-label first.")
        review.store.accept_many([r["id"] for r in rows], sess["reviewer"])
        return f"Accepted {len(rows)} labels as one batch: **undo** reverts all of them.", review.progress()

    preview_button.click(on_preview, min_conf, [bulk_md, bulk_gallery], api_visibility="private")
    bulk_button.click(on_bulk, [session, password, min_conf], [bulk_md, progress_md], api_name="bulk_accept")

    def on_import(sess, pw, folder):
        review.check(sess, pw)
        if not folder:
            raise refuse("Pick a folder to import.")
        try:
            root = settings.dataset_path(folder)
            labels = root / "results.json"
            result = review.store.import_folder(root, labels if labels.exists() else None,
                                                author=sess["reviewer"])
        except (PathNotAllowed, ValueError, FileNotFoundError) as e:
            raise refuse(guard.scrub(e)) from None
        review.predict_in_background()
        return (f"Imported {result['images']} images into data set **{plain(result['dataset'])}** "
                f"({result['added']} new, {result['labels_added']} labels); "
                f"{len(result['labels_without_image'])} labels without image, "
                f"{len(result['images_without_label'])} images without label."), review.progress()

    def on_autolabel(sess, pw, limit, progress=gr.Progress()):
        review.check(sess, pw)
        summary = review.run_autolabel(int(limit or 0), lambda d, n, rate, eta: progress(
            d / max(n, 1), desc=f"{d}/{n} · {rate:.1f} img/s · ETA {eta or 0:.0f} s"))
        text = (f"Auto-labeled {summary['labelled']} of {summary['total']} ({summary['unparseable']} unparseable, "
                f"{summary['content_filter']} filtered, {summary['failed']} failed and left for a re-run, "
                f"{summary['retries']} retries)")
        if summary["stopped"]:
            text += f". **Stopped:** {summary['stopped']}"
        if summary["cancelled"]:
            text += ". Cancelled."
        return text, review.progress()

    def on_cancel(sess, pw):
        review.check(sess, pw)
        review.autolabel_cancel.set()
        return "Cancelling after the requests in flight…"

    def on_export(pw):
        guard.require(pw, "Exporting the labels, their history and the database")
        return review.export()

    dataset.focus(lambda: gr.Dropdown(choices=settings.datasets()), None, dataset, api_visibility="private",
                  queue=False)
    import_button.click(on_import, [session, password, dataset], [admin_status, progress_md], api_name="import",
                        concurrency_id="import", validator=guard.door(1, "Importing"))
    autolabel_button.click(on_autolabel, [session, password, autolabel_limit], [admin_status, progress_md],
                           api_name="autolabel", concurrency_limit=1, concurrency_id="autolabel",
                           validator=guard.door(1, "Auto-labeling"))
    cancel_button.click(on_cancel, [session, password], admin_status, api_name="autolabel_cancel")
    export_button.click(on_export, password, files, api_name="export", concurrency_id="export",
                        validator=guard.door(0, "Exporting the labels, their history and the database"))
    impact_button.click(review.impact, None, impact_table, api_name="review_impact")
    return review, {"label": label, "predicted": predicted, "status": status, "progress": progress_md}

