"""The Review tab: lays out the queue, the photo, the class keys, import, auto-label, bulk accept and export, and
wires them to :class:`labeling.review.Review`. Every change to labels is checked on the server (reviewer name,
and ``ADMIN_PASSWORD`` when set), so direct API calls get no further than the buttons do.
"""

import gradio as gr

from classifier.classes import CLASSES, NONE, display_name
from classifier.images import ImageError, thumbnail
from i18n import Message, say
from ui import MAX_NAME, T, dataset_choice, dataset_dropdown, fill_at_load, headed, receive_upload, shown, upload_box
from uploads import imported

from .review import IMPACT_COLUMNS, SORTS, STATUSES, Review
from .scorecard import COLUMNS as SCORECARD_COLUMNS

KEYS = [str((i + 1) % 10) for i in range(10)]  # 1..9 then 0, in class order


def class_choices(*extra) -> list[tuple]:
    """A filter's choices: all, the ten classes by their two names, then ``extra`` (none, other)."""
    return [(T("status_all"), "all"), *((display_name(c), c) for c in CLASSES),
            *((T(f"filter_{e}"), e) for e in extra)]


def build(settings, slot, guard, T=T):
    """Add the Review tab's components and events to the current ``gr.Blocks``; returns the filter dropdowns."""
    review = Review(settings, slot, guard.scrub)
    session = gr.State(None)
    has_key = bool(settings.glm_api_key)
    if not settings.persistent:
        gr.Markdown(T("rv_not_persistent"))
    with gr.Row():
        reviewer = gr.Textbox(label=T("rv_name"), scale=2, max_length=MAX_NAME)
        password = guard.password_box()
        start = gr.Button(T("rv_start"), variant="primary", scale=1)
    with gr.Accordion(T("rv_admin"), open=False):
        with gr.Row():
            dataset = dataset_dropdown(settings, T("rv_folder"))
            import_button = gr.Button(T("rv_import"))
        upload = upload_box(T("rv_upload"), "rv-upload")
        with gr.Row():
            unsure_only = gr.Checkbox(label=T("rv_unsure_only"), value=False, elem_id="rv-unsure")
            unsure_below = gr.Slider(0.5, 1.0, value=0.9, step=0.01, label=T("rv_unsure_below"))
            weak = gr.Dropdown([(display_name(c), c) for c in CLASSES], value=["cat", "dog"], multiselect=True,
                               label=T("rv_weak"))
        plan_md = gr.Markdown()
        with gr.Row():
            autolabel_limit = gr.Number(value=0, precision=0, label=T("rv_limit"))
            autolabel_button = gr.Button(T("rv_autolabel"), interactive=has_key)
            cancel_button = gr.Button(T("rv_cancel"), interactive=has_key)
        if not has_key:
            gr.Markdown(T("rv_no_key"))
        with gr.Row():
            export_button = gr.Button(T("rv_export"))
            files = gr.File(label=T("downloads"), file_count="multiple", height=90)
        admin_status = gr.Markdown()
    with gr.Row():
        status = gr.Dropdown([(T(f"status_{s}"), s) for s in STATUSES], value="unreviewed", label=T("rv_status"))
        label = gr.Dropdown(class_choices(NONE, "other"), value="all", label=T("rv_current"))
        predicted = gr.Dropdown(class_choices(NONE), value="all", label=T("rv_predicts"))
        llm_only = gr.Checkbox(label=T("rv_llm_none"), value=False)
        sort = gr.Dropdown([(T(f"sort_{s.replace(' ', '_')}"), s) for s in SORTS], value="suspicion",
                           label=T("rv_sort"))
    progress_md = gr.Markdown(review.progress())
    demo_button = gr.Button(T("rv_demo"), variant="primary",
                            visible=review.store_is_empty(), elem_id="rv-demo")
    fill_at_load(lambda lang: gr.Button(visible=review.store_is_empty()), demo_button)  # only while it is empty
    with gr.Row(elem_id="review-panel"):
        with gr.Column(scale=3), gr.Row():
            photo = gr.Image(label=T("rv_photo"), type="pil", interactive=False, height=460)
            heat = gr.Image(label=T("rv_heat"), type="pil", format="jpeg", interactive=False, height=460,
                            elem_id="rv-heat")
        with gr.Column(scale=2):
            details = gr.Markdown(T("rv_idle"))
            buttons = []
            for row_classes in (CLASSES[:5], CLASSES[5:]):
                with gr.Row(elem_classes="rv-grid"):
                    for c in row_classes:
                        key = KEYS[CLASSES.index(c)]
                        buttons.append((c, gr.Button(f"{key} · {display_name(c)}", size="sm", min_width=90,
                                                     elem_id=f"rv-class-{key}")))
            with gr.Row():
                none_button = gr.Button(T("rv_none"), size="sm", elem_id="rv-none")
                accept_button = gr.Button(T("rv_accept"), variant="primary", size="sm", elem_id="rv-accept")
            with gr.Row():
                prev_button = gr.Button(T("rv_prev"), size="sm", elem_id="rv-prev")
                next_button = gr.Button(T("rv_next"), size="sm", elem_id="rv-next")
                undo_button = gr.Button(T("rv_undo"), size="sm", elem_id="rv-undo")
    with gr.Accordion(T("rv_bulk"), open=False):
        min_conf = gr.Slider(0.5, 1.0, value=0.95, step=0.01, label=T("rv_min_conf"))
        preview_button = gr.Button(T("rv_preview"))
        bulk_md = gr.Markdown()
        bulk_gallery = gr.Gallery(columns=8, height=240, label=T("rv_sample"))
        bulk_button = gr.Button(T("rv_accept_all"))
    with gr.Accordion(T("rv_impact"), open=False):
        impact_button = gr.Button(T("rv_compute"))
        impact_table = gr.Dataframe(interactive=False)
        fill_at_load(lambda lang: headed(IMPACT_COLUMNS, lang), impact_table)  # headers in the viewer's words
        gr.Markdown(T("rv_scorecard"))
        llm_table = gr.Dataframe(interactive=False, elem_id="rv-scorecard")
        fill_at_load(lambda lang: headed(SCORECARD_COLUMNS, lang), llm_table)
        llm_title = gr.Markdown()
        llm_confusion = gr.Dataframe(interactive=False)
    filters = [status, label, predicted, llm_only, sort]
    view_outputs = [photo, details, progress_md, session]

    @shown
    def on_start(name, pw, *f, lang):
        *f, old = f
        name = guard.check_name(name)
        guard.require(pw, "do_labels")
        return review.start(name, f, old, lang)

    def on_decide(choice):
        @shown
        def handler(sess, pw, *f):
            guard.require(pw, "do_labels")
            return review.decide(sess, choice, f)
        return handler

    @shown
    def on_next(sess, pw, *f):
        guard.require(pw, "do_labels")
        return review.show_next(sess, f)

    @shown
    def on_prev(sess, pw, *f):
        guard.require(pw, "do_labels")
        return review.previous(sess)

    @shown
    def on_undo(sess, pw, *f, lang):
        guard.require(pw, "do_labels")
        view, undone = review.undo(sess)
        if undone > 1:
            gr.Info(say(lang, "rv_undid_batch", n=undone), title=say(lang, "note_title"))
        return view

    @shown
    def on_filters(sess, pw, *f):
        if not (sess and sess.get("reviewer")):
            return gr.skip(), gr.skip(), gr.skip(), sess
        return review.show_next(sess, f)

    decision_inputs = [session, password, *filters]
    # where the model looked, beside each photo as it opens (after it: a key press never waits for the heatmap)
    photo.change(review.heatmap, session, heat, api_visibility="private", trigger_mode="always_last")
    labels_door = guard.door(decision_inputs, password, "do_labels")  # refused as they join, not in the queue
    for c, button in buttons:
        button.click(on_decide(c), decision_inputs, view_outputs, api_name=f"label_{c}", validator=labels_door)
    none_button.click(on_decide(NONE), decision_inputs, view_outputs, api_name="label_none", validator=labels_door)
    accept_button.click(on_decide("accept"), decision_inputs, view_outputs, api_name="accept", validator=labels_door)
    next_button.click(on_next, decision_inputs, view_outputs, api_visibility="private", validator=labels_door)
    prev_button.click(on_prev, decision_inputs, view_outputs, api_visibility="private", validator=labels_door)
    undo_button.click(on_undo, decision_inputs, view_outputs, api_name="undo", validator=labels_door)
    start_inputs = [reviewer, password, *filters, session]
    start.click(on_start, start_inputs, view_outputs, api_name="review_start",
                validator=guard.door(start_inputs, password, "do_labels"))
    for f in filters:
        f.change(on_filters, decision_inputs, view_outputs, api_visibility="private")

    @shown
    def on_preview(threshold, lang):
        rows = review.bulk_candidates(threshold)
        sample = []
        for r in rows[:: max(1, len(rows) // 16)][:16]:
            try:
                sample.append((thumbnail(r["file"], 160), f"{display_name(r['label'])} {r['p_predicted']:.2f}"))
            except ImageError:
                continue
        return say(lang, "rv_bulk_preview", n=len(rows), threshold=threshold), sample

    @shown
    def on_bulk(sess, pw, threshold, lang):
        guard.require(pw, "do_labels")
        accepted = review.bulk_accept(sess, threshold)
        return say(lang, "rv_bulk_done", n=accepted), review.progress(lang)

    preview_button.click(on_preview, min_conf, [bulk_md, bulk_gallery], api_visibility="private")
    bulk_inputs = [session, password, min_conf]
    bulk_button.click(on_bulk, bulk_inputs, [bulk_md, progress_md], api_name="bulk_accept",
                      validator=guard.door(bulk_inputs, password, "do_labels"))

    @shown
    def on_import(sess, pw, folder, lang):
        guard.start(pw, "do_labels")
        review.check(sess)
        if not folder:
            raise Message("rv_err_pick_folder")
        return review.import_folder(sess, settings.dataset_path(folder)), review.progress(lang)

    def plan_line(only, below, weak_classes, limit, lang):
        plan = review.autolabel_plan(below if only else None, weak_classes or (), int(limit or 0))
        return say(lang, "rv_plan", **plan)

    @shown
    def on_autolabel(sess, pw, limit, only, below, weak_classes, lang, progress=gr.Progress()):
        guard.start(pw, "do_labels")
        review.check(sess)
        summary = review.run_autolabel(int(limit or 0), lambda d, n, rate, eta: progress(
            d / max(n, 1), desc=say(lang, "rv_autolabel_progress", done=d, n=n, rate=rate, eta=eta or 0)),
            below if only else None, weak_classes or ())
        text = say(lang, "rv_autolabelled", labelled=summary["labelled"], total=summary["total"],
                   skipped=summary["skipped"],
                   unparseable=summary["unparseable"], filtered=summary["content_filter"], failed=summary["failed"],
                   retries=summary["retries"])
        if summary["stopped"]:
            text += say(lang, "rv_autolabel_stopped", why=summary["stopped"])
        if summary["cancelled"]:
            text += say(lang, "rv_autolabel_cancelled")
        return text, review.progress(lang)

    @shown
    def on_cancel(sess, pw, lang):
        guard.require(pw, "do_labels")
        review.check(sess)
        review.autolabel_cancel.set()
        return say(lang, "rv_cancelling")

    @shown
    def on_export(pw):
        guard.start(pw, "do_export")
        return review.export()

    def import_new(files, demo, name, pw, sess, f, progress, lang):
        """Upload (or the demo set), import, and open the queue: suspects first."""
        guard.start(pw, "do_labels")
        name = guard.check_name(name)
        if demo:
            folder, line = settings.uploads_dir / "demo", ""
            if not folder.is_dir():
                raise Message("rv_err_no_demo")
            facts = {"path": folder}
        else:
            facts, line = receive_upload(settings, files, progress, lang, importer=name)
            folder = facts["path"]
        *_, sess = review.start(name, f, sess, lang)
        line = f"{line} {review.import_folder(sess, folder)}".strip()
        imported(folder)  # listed from now on (a kill before this: the import finishes at the next start)
        review.predict_in_background(wait=30)  # a small set (the demo's 100) opens ranked, even on a busy CPU
        # a toast too: the accordion holding the status line may be closed
        gr.Info(line.replace("**", "").replace("\\", ""), title=say(lang, "note_title"))
        return (line, dataset_choice(settings, facts), None, gr.Button(visible=False),
                *review.start(name, f, sess, lang))

    upload_outputs = [admin_status, dataset, upload, demo_button, *view_outputs]

    @shown
    def on_upload(files, name, pw, sess, *f, lang, progress=gr.Progress()):
        return import_new(files, False, name, pw, sess, f, progress, lang)

    @shown
    def on_demo(name, pw, sess, *f, lang, progress=gr.Progress()):
        return import_new(None, True, name, pw, sess, f, progress, lang)

    @shown
    def on_impact(lang):
        table, confusion, name = review.llm_scorecard(lang)
        title = say(lang, "rv_llm_confusion", name=name) if name else say(lang, "rv_llm_nothing")
        return review.impact(lang), table, title, confusion

    upload_inputs = [upload, reviewer, password, session, *filters]
    upload.upload(on_upload, upload_inputs, upload_outputs, api_name="review_upload", concurrency_id="import",
                  validator=guard.door(upload_inputs, password, "do_upload", costly=True))
    demo_inputs = [reviewer, password, session, *filters]
    demo_button.click(on_demo, demo_inputs, upload_outputs, api_name="review_demo", concurrency_id="import",
                      validator=guard.door(demo_inputs, password, "do_demo", costly=True))
    import_inputs = [session, password, dataset]
    import_button.click(on_import, import_inputs, [admin_status, progress_md], api_name="import",
                        concurrency_id="import",
                        validator=guard.door(import_inputs, password, "do_import", costly=True))
    plan_inputs = [unsure_only, unsure_below, weak, autolabel_limit]
    for control in plan_inputs:  # the count and the cost, before anything is spent
        control.change(shown(plan_line), plan_inputs, plan_md, api_visibility="private", trigger_mode="always_last")
    fill_at_load(lambda lang: plan_line(False, 0.9, [], 0, lang), plan_md)
    autolabel_inputs = [session, password, autolabel_limit, *plan_inputs[:3]]
    autolabel_button.click(on_autolabel, autolabel_inputs, [admin_status, progress_md],
                           api_name="autolabel", concurrency_limit=1, concurrency_id="autolabel",
                           validator=guard.door(autolabel_inputs, password, "do_autolabel", costly=True))
    cancel_button.click(on_cancel, [session, password], admin_status, api_name="autolabel_cancel",
                        validator=guard.door([session, password], password, "do_labels"))
    export_button.click(on_export, password, files, api_name="export", concurrency_id="export",
                        validator=guard.door([password], password, "do_export", costly=True))
    impact_button.click(on_impact, None, [impact_table, llm_table, llm_title, llm_confusion],
                        api_name="review_impact")
    return review, {"label": label, "predicted": predicted, "status": status, "progress": progress_md}
