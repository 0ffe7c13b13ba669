"""The Review tab: lays out the queue, the photo, the class keys, import, auto-label, bulk accept and export, and
wires them to the session, :class:`labeling.review.Review`, through its presenter, :mod:`studio.review_view` (what
the session answers, in the viewer's words). Every change to labels is checked on the server (reviewer name, and
``ADMIN_PASSWORD`` when set), so direct API calls get no further than the buttons do.
"""

from dataclasses import dataclass, fields
from types import SimpleNamespace

import gradio as gr

from classifier.classes import CLASSES, NONE, WATCHED, class_keys, display_name, rows_of
from classifier.images import ImageError, thumbnail
from i18n import Message, say
from labeling.curation import COPIES
from labeling.review import SORTS, STATUSES, Filters, Review
from labeling.scorecard import COLUMNS as SCORECARD_COLUMNS
from labeling.store import REASONS
from uploads import imported

from .common import T, dataset_choice, dataset_dropdown, fill_at_load, headed, receive_upload, shown, upload_box
from .guard import MAX_NAME
from .review_view import IMPACT_COLUMNS, audit_line, impact_table, import_line, llm_scorecard, present, progress_line


def class_choices(*extra) -> list[tuple]:
    """A filter's choices: all, the ten classes by their two names, then ``extra`` (none, other)."""
    return [(T("status_all"), "all"), *((display_name(c), c) for c in CLASSES),
            *((T(f"filter_{e}"), e) for e in extra)]


@dataclass(frozen=True)
class ReviewParts:
    """What the Review tab hands the app to wire across tabs."""

    review: Review  # the review itself (its progress line, filled at each page load)
    label: gr.Dropdown  # the queue's filters, which the Evaluate tab's "open in review" sets
    predicted: gr.Dropdown
    status: gr.Dropdown
    progress: gr.Markdown
    photos: gr.Textbox  # only these photos: the Evaluate tab's map sets it


def build(settings, slot, guard, T=T) -> ReviewParts:
    """Add the Review tab's components and events to the current ``gr.Blocks``; returns the parts the app wires
    across tabs (:class:`ReviewParts`)."""
    review = Review(settings, slot, guard.scrub)
    ui = SimpleNamespace(session=gr.State(None))
    gr.Markdown(T("rv_kept_persist") if settings.persist_dir else T("rv_kept_local"))  # where labels are kept
    if not settings.persistent:
        gr.Markdown(T("rv_not_persistent"))
    with gr.Row():
        # signed in with Hugging Face (a Space with hf_oauth), decisions go under that name: no name to type
        ui.reviewer = gr.Textbox(label=T("rv_name"), scale=2, max_length=MAX_NAME, visible=not settings.sign_in)
        if settings.sign_in:
            gr.LoginButton(scale=1)
        ui.password = guard.password_box()
        ui.start = gr.Button(T("rv_start"), variant="primary", scale=1)
    ui.upload = upload_box(T("rv_upload"), "rv-upload")  # in sight: bringing a data set is the first step
    admin_panel(ui, settings)
    filters_panel(ui, review)
    review_panel(ui, settings.sign_in)
    bulk_panel(ui)
    audit_panel(ui, settings)
    impact_panel(ui)
    ui.filters = [getattr(ui, f.name) for f in fields(Filters)]  # in the order Filters takes them
    ui.view_outputs = [ui.photo, ui.details, ui.progress_md, ui.session]
    wire_decisions(ui, review, guard)
    wire_suspects(ui, review, guard)
    wire_bulk(ui, review, guard)
    wire_imports(ui, review, guard, settings)
    wire_autolabel(ui, review, guard, settings)
    wire_audit(ui, review, guard, settings)
    return ReviewParts(review, ui.label, ui.predicted, ui.status, ui.progress_md, ui.photos)


def admin_panel(ui, settings):
    """Import a data set or upload one, auto-label with the LLM (everywhere or only where the model is unsure),
    export."""
    has_key = settings.llm_ready
    with gr.Accordion(T("rv_admin"), open=False):
        with gr.Row():
            ui.dataset = dataset_dropdown(settings, T("rv_folder"))
            ui.import_button = gr.Button(T("rv_import"))
        with gr.Row():
            ui.unsure_only = gr.Checkbox(label=T("rv_unsure_only"), value=False, elem_id="rv-unsure")
            ui.unsure_below = gr.Slider(0.5, 1.0, value=0.9, step=0.01, label=T("rv_unsure_below"))
            ui.weak = gr.Dropdown([(display_name(c), c) for c in CLASSES], value=list(WATCHED), multiselect=True,
                                  label=T("rv_weak"))
        ui.plan_md = gr.Markdown()
        with gr.Row():
            ui.autolabel_limit = gr.Number(value=0, precision=0, label=T("rv_limit"))
            ui.autolabel_button = gr.Button(T("rv_autolabel"), interactive=has_key)
            ui.cancel_button = gr.Button(T("rv_cancel"), interactive=has_key)
        if not has_key:
            gr.Markdown(T("rv_no_key"))
        with gr.Row():
            ui.export_button = gr.Button(T("rv_export"))
            ui.export_set_button = gr.Button(T("rv_export_set"), elem_id="rv-export-set")
            ui.hub_button = gr.Button(T("rv_push_hub"), visible=bool(settings.hf_dataset_repo))
            ui.files = gr.File(label=T("downloads"), file_count="multiple", height=90)
        ui.admin_status = gr.Markdown()


def filters_panel(ui, review):
    """Which images the queue holds and in what order; the progress line; the demo set while the store is empty."""
    with gr.Row():
        ui.status = gr.Dropdown([(T(f"status_{s}"), s) for s in STATUSES], value="unreviewed", label=T("rv_status"))
        ui.label = gr.Dropdown(class_choices(NONE, "other"), value="all", label=T("rv_current"))
        ui.predicted = gr.Dropdown(class_choices(NONE), value="all", label=T("rv_predicts"))
        ui.llm_only = gr.Checkbox(label=T("rv_llm_none"), value=False)
        ui.sort = gr.Dropdown([(T(f"sort_{s.replace(' ', '_')}"), s) for s in SORTS], value="suspicion",
                              label=T("rv_sort"))
    with gr.Row():  # the copies to review (and leave out), and the ranking of a training set
        ui.copies = gr.Dropdown([(T(f"copies_{c}"), c) for c in COPIES], value="all", label=T("rv_copies"),
                                elem_id="rv-copies")
        ui.out_of_fold = gr.Checkbox(label=T("rv_oof"), info=T("rv_oof_info"), value=False, elem_id="rv-oof")
        ui.photos = gr.Textbox("", label=T("rv_photos"), max_lines=3, elem_id="rv-photos")  # set by the Evaluate map
    with gr.Accordion(T("rv_suspects"), open=False):  # the queue as a list: ranks, scores, copies (the API's too)
        ui.suspects_button = gr.Button(T("rv_suspects_list"), size="sm", elem_id="rv-suspects")
        ui.suspects = gr.JSON(label=T("rv_suspects"), elem_id="rv-suspects-list")
    ui.progress_md = gr.Markdown(progress_line(review))
    ui.demo_button = gr.Button(T("rv_demo"), variant="primary", visible=review.store_is_empty(), elem_id="rv-demo")
    fill_at_load(lambda lang: gr.Button(visible=review.store_is_empty()), ui.demo_button)  # only while it is empty


def review_panel(ui, sign_in=False):
    """The photo, where the model looked, what is known of it, and the keys: one per class, none, accept, leave
    out (with a reason), back, next, undo."""
    with gr.Row(elem_id="review-panel"):
        with gr.Column(scale=3), gr.Row():
            ui.photo = gr.Image(label=T("rv_photo"), type="pil", interactive=False, height=460, elem_id="rv-photo")
            ui.heat = gr.Image(label=T("rv_heat"), type="pil", format="jpeg", interactive=False, height=460,
                               elem_id="rv-heat")
        with gr.Column(scale=2):
            ui.details = gr.Markdown(T("rv_idle_sign_in" if sign_in else "rv_idle"))
            ui.buttons, keys = [], dict(zip(CLASSES, class_keys(CLASSES)))  # derived: an 11th class gets "q"
            for row_classes in rows_of(CLASSES):
                with gr.Row(elem_classes="rv-grid"):
                    for c in row_classes:
                        ui.buttons.append((c, gr.Button(f"{keys[c]} · {display_name(c)}", size="sm", min_width=90,
                                                        elem_id=f"rv-class-{keys[c]}")))
            with gr.Row():
                ui.none_button = gr.Button(T("rv_none"), size="sm", elem_id="rv-none")
                ui.accept_button = gr.Button(T("rv_accept"), variant="primary", size="sm", elem_id="rv-accept")
                ui.out_button = gr.Button(T("rv_leave_out"), size="sm", elem_id="rv-leave-out")
            # why the photo is left out: shown by x, and picking a reason (a click, or 1-4) is the decision
            ui.out_reason = gr.Radio([(T(f"rv_out_{r}"), r) for r in REASONS], value=None, label=T("rv_out_reason"),
                                     elem_id="rv-out-reason", elem_classes="rv-closed")
            with gr.Row():
                ui.prev_button = gr.Button(T("rv_prev"), size="sm", elem_id="rv-prev")
                ui.next_button = gr.Button(T("rv_next"), size="sm", elem_id="rv-next")
                ui.undo_button = gr.Button(T("rv_undo"), size="sm", elem_id="rv-undo")


def bulk_panel(ui):
    with gr.Accordion(T("rv_bulk"), open=False):
        ui.min_conf = gr.Slider(0.5, 1.0, value=0.95, step=0.01, label=T("rv_min_conf"))
        ui.preview_button = gr.Button(T("rv_preview"))
        ui.bulk_md = gr.Markdown()
        ui.bulk_gallery = gr.Gallery(columns=8, height=240, label=T("rv_sample"))
        ui.bulk_button = gr.Button(T("rv_accept_all"))


def audit_panel(ui, settings):
    """How many wrong labels are left: draw a blind audit, see the estimate against a target."""
    with gr.Accordion(T("rv_audit"), open=False):
        gr.Markdown(T("rv_audit_help"))
        with gr.Row():
            ui.audit_set = dataset_dropdown(settings, T("rv_audit_set"))
            ui.audit_size = gr.Number(60, precision=0, minimum=3, maximum=5000, label=T("rv_audit_size"))
            ui.audit_target = gr.Number(1.0, minimum=0, maximum=100, label=T("rv_audit_target"))
        with gr.Row():
            ui.audit_draw = gr.Button(T("rv_audit_draw"), elem_id="rv-audit-draw")
            ui.audit_estimate = gr.Button(T("rv_audit_estimate"), elem_id="rv-audit-estimate")
        ui.audit_md = gr.Markdown(elem_id="rv-audit-line")


def wire_audit(ui, review, guard, settings):
    @shown
    def on_draw(pw, folder, size, lang):
        guard.require(pw, "do_labels")
        if not folder:
            raise Message("rv_err_pick_folder")
        return say(lang, "rv_audit_drawn", n=review.audit_draw(settings.dataset_path(folder), size))

    @shown
    def on_estimate(pw, folder, target, lang):  # it names the photos reviewers disputed: for who may see the queue
        guard.require(pw, "do_see_photos", kind="label")
        if not folder:
            raise Message("rv_err_pick_folder")
        state, photos = review.audit_state(settings.dataset_path(folder))
        return audit_line(state, photos, float(target or 0), lang)

    inputs = [ui.password, ui.audit_set, ui.audit_size]
    ui.audit_draw.click(on_draw, inputs, ui.audit_md, api_name="audit_draw",
                        validator=guard.door(inputs, ui.password, "do_labels"))
    estimate_inputs = [ui.password, ui.audit_set, ui.audit_target]
    ui.audit_estimate.click(on_estimate, estimate_inputs, ui.audit_md, api_name="audit_estimate",
                            concurrency_id="view", concurrency_limit=2,
                            validator=guard.door(estimate_inputs, ui.password, "do_see_photos", kind="label"))


def impact_panel(ui):
    with gr.Accordion(T("rv_impact"), open=False):
        ui.impact_button = gr.Button(T("rv_compute"))
        ui.impact_table = gr.Dataframe(interactive=False)
        fill_at_load(lambda lang: headed(IMPACT_COLUMNS, lang), ui.impact_table)  # headers in the viewer's words
        gr.Markdown(T("rv_scorecard"))
        ui.llm_table = gr.Dataframe(interactive=False, elem_id="rv-scorecard")
        fill_at_load(lambda lang: headed(SCORECARD_COLUMNS, lang), ui.llm_table)
        ui.llm_title = gr.Markdown()
        ui.llm_confusion = gr.Dataframe(interactive=False)


def decision_handlers(review, guard):
    """The queue's handlers: start, decide (a class, none, accept), next, previous, undo, filters changed."""
    @shown
    def on_start(name, pw, *f, lang):
        *f, old = f
        name = guard.reviewer(name)  # the signed-in user, else the typed name
        guard.require(pw, "do_labels", kind="label")
        return present(review, review.start(name, f, old), lang)

    def on_decide(choice):
        @shown
        def handler(sess, pw, *f):
            guard.require(pw, "do_labels", kind="label")
            guard.same_reviewer(sess)
            return present(review, review.decide(sess, choice, f))
        return handler

    @shown
    def on_leave_out(sess, pw, reason, *f):
        guard.require(pw, "do_labels", kind="label")
        guard.same_reviewer(sess)
        return present(review, review.leave_out(sess, reason, f))

    @shown
    def on_next(sess, pw, *f):
        guard.require(pw, "do_labels", kind="label")
        return present(review, review.show_next(sess, f))

    @shown
    def on_prev(sess, pw, *f):
        guard.require(pw, "do_labels", kind="label")
        return present(review, review.previous(sess))

    @shown
    def on_undo(sess, pw, *f, lang):
        guard.require(pw, "do_labels", kind="label")
        guard.same_reviewer(sess)
        step = review.undo(sess)
        if step.undone > 1:
            gr.Info(say(lang, "rv_undid_batch", n=step.undone), title=say(lang, "note_title"))
        return present(review, step)

    @shown
    def on_filters(sess, pw, *f):
        if not (sess and sess.get("reviewer")):
            return gr.skip(), gr.skip(), gr.skip(), sess
        guard.require(pw, "do_see_photos", kind="label")  # a queue is open: its next photo, for who may see it
        return present(review, review.show_next(sess, f))

    return SimpleNamespace(start=on_start, decide=on_decide, leave_out=on_leave_out, next=on_next, prev=on_prev,
                           undo=on_undo, filters=on_filters)


def wire_decisions(ui, review, guard):
    on = decision_handlers(review, guard)
    inputs, outputs = [ui.session, ui.password, *ui.filters], ui.view_outputs
    # where the model looked, beside each photo as it opens (after it: a key press never waits for the heatmap)
    @shown
    def on_heat(sess, pw):  # the open photo again: for who may see the queue
        guard.require(pw, "do_see_photos", kind="label")
        return review.heatmap(sess)

    heat_inputs = [ui.session, ui.password]
    ui.photo.change(on_heat, heat_inputs, ui.heat, api_visibility="private", trigger_mode="always_last",
                    concurrency_id="heatmap", concurrency_limit=2,
                    validator=guard.door(heat_inputs, ui.password, "do_see_photos", kind="label"))
    door = guard.door(inputs, ui.password, "do_labels", kind="label")  # refused as they join, not in the queue
    for c, button in ui.buttons:
        button.click(on.decide(c), inputs, outputs, api_name=f"label_{c}", validator=door)
    ui.none_button.click(on.decide(NONE), inputs, outputs, api_name="label_none", validator=door)
    ui.accept_button.click(on.decide("accept"), inputs, outputs, api_name="accept", validator=door)
    ui.next_button.click(on.next, inputs, outputs, api_visibility="private", validator=door)
    ui.prev_button.click(on.prev, inputs, outputs, api_visibility="private", validator=door)
    ui.undo_button.click(on.undo, inputs, outputs, api_name="undo", validator=door)
    wire_leave_out(ui, on, guard)
    start_inputs = [ui.reviewer, ui.password, *ui.filters, ui.session]
    ui.start.click(on.start, start_inputs, outputs, api_name="review_start",
                   validator=guard.door(start_inputs, ui.password, "do_labels", kind="label"))
    see = while_open(guard.door(inputs, ui.password, "do_see_photos", kind="label"))
    for f in ui.filters:
        f.change(on.filters, inputs, outputs, api_visibility="private", concurrency_id="view", concurrency_limit=2,
                 validator=see)


def wire_suspects(ui, review, guard):
    """The queue as a list (the API's ``review_suspects``): the first photos of the filters' queue with their rank,
    label, score, how they were ranked, and their copies; read-only, for who may see the queue."""
    @shown
    def on_suspects(pw, *f):
        guard.require(pw, "do_see_photos", kind="label")
        return review.suspects(f)

    inputs = [ui.password, *ui.filters]
    ui.suspects_button.click(on_suspects, inputs, ui.suspects, api_name="review_suspects", concurrency_id="view",
                             concurrency_limit=2,
                             validator=guard.door(inputs, ui.password, "do_see_photos", kind="label"))


def while_open(door):
    """``door`` (:meth:`studio.guard.Guard.door`, for an event whose first input is the session) asked only while a
    queue is open: filters changed before a start show nothing, and are never refused."""
    def validate(request: gr.Request, profile: gr.OAuthProfile | None, sess, *values):
        if sess and sess.get("reviewer"):
            return door(request, profile, sess, *values)
        return [gr.validate(True, "") for _ in (sess, *values)]
    return validate


def wire_leave_out(ui, on, guard):
    """x shows the reasons a photo may be left out; picking one leaves the open photo out (the API's
    ``leave_out``, guarded as every label decision), and the reasons hide again, as they do when another photo
    opens. Shown and hidden in the browser itself, for the photo they were shown for: the photo's change event also
    comes when the same photo is sent again, and may come after x was pressed; had it hidden them then, the next
    key, meant as a reason, would have labelled the photo."""
    ui.out_button.click(None, js=REASONS_JS % "show")
    inputs = [ui.session, ui.password, ui.out_reason, *ui.filters]
    ui.out_reason.input(on.leave_out, inputs, ui.view_outputs, api_name="leave_out",
                        validator=guard.door(inputs, ui.password, "do_labels", kind="label")
                        ).then(None, js=REASONS_JS % "hide"
                               ).then(lambda: None, None, ui.out_reason, api_visibility="private", queue=False)
    ui.photo.change(None, js=REASONS_JS % "photo")


# show: for the photo open now; hide: at once; photo: if another photo is open than the one they were shown for
# (once the page has drawn the new one)
REASONS_JS = """() => {
  const how = "%s", reasons = document.getElementById("rv-out-reason");
  const photo = () => document.querySelector("#rv-photo img")?.getAttribute("src") || "";
  if (!reasons) return;
  if (how === "show") { reasons.dataset.photo = photo(); reasons.classList.remove("rv-closed"); }
  else if (how === "hide") reasons.classList.add("rv-closed");
  else setTimeout(() => { if (photo() !== reasons.dataset.photo) reasons.classList.add("rv-closed"); }, 50);
}"""


def wire_bulk(ui, review, guard):
    """Accept at once every unreviewed label the model agrees with above a confidence, after a sample to look at."""
    @shown
    def on_preview(pw, threshold, lang):  # photos of the queue: for who may see it
        guard.require(pw, "do_see_photos", kind="label")
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
        guard.require(pw, "do_labels", kind="label")
        guard.same_reviewer(sess)
        accepted = review.bulk_accept(sess, threshold)
        return say(lang, "rv_bulk_done", n=accepted), progress_line(review, lang)

    preview_inputs = [ui.password, ui.min_conf]
    ui.preview_button.click(on_preview, preview_inputs, [ui.bulk_md, ui.bulk_gallery], api_visibility="private",
                            concurrency_id="view", concurrency_limit=2,
                            validator=guard.door(preview_inputs, ui.password, "do_see_photos", kind="label"))
    inputs = [ui.session, ui.password, ui.min_conf]
    ui.bulk_button.click(on_bulk, inputs, [ui.bulk_md, ui.progress_md], api_name="bulk_accept",
                         validator=guard.door(inputs, ui.password, "do_labels", kind="label"))

    @shown
    def on_impact(lang):
        table, confusion, name = llm_scorecard(review, lang)
        title = say(lang, "rv_llm_confusion", name=name) if name else say(lang, "rv_llm_nothing")
        return impact_table(review, lang), table, title, confusion

    ui.impact_button.click(on_impact, None, [ui.impact_table, ui.llm_table, ui.llm_title, ui.llm_confusion],
                           api_name="review_impact", concurrency_id="view", concurrency_limit=2)


def import_handlers(review, guard, settings):
    """Import a listed data set; upload one (or take the demo set), import it and open its queue."""
    @shown
    def on_import(sess, pw, folder, lang):
        guard.start(pw, "do_labels")
        review.check(sess)
        if not folder:
            raise Message("rv_err_pick_folder")
        result = review.import_folder(sess, settings.dataset_path(folder))  # its line in Start's language, as the queue
        return import_line(result, sess.get("lang", lang)), progress_line(review, lang)

    def import_new(files, demo, name, pw, sess, f, progress, lang):
        """Upload (or the demo set), import, and open the queue: suspects first. Without a name, the upload is
        imported all the same (recorded as "upload") and the queue opens once a reviewer starts."""
        guard.start(pw, "do_labels")
        name = guard.importer(name)
        if demo:
            folder, line = settings.layout.datasets / "demo", ""
            if not folder.is_dir():
                raise Message("rv_err_no_demo")
            facts = {"path": folder}
        else:
            facts, line = receive_upload(settings, files, progress, lang, importer=name)
            folder = facts["path"]
        line = f"{line} {import_line(review.import_folder(None, folder, name or 'upload'), lang)}".strip()
        imported(folder)  # listed from now on (a kill before this: the import finishes at the next start)
        review.keep(folder)  # and copied once to PERSIST_DIR, if set
        review.predict_in_background(wait=30)  # a small set (the demo's 100) opens ranked, even on a busy CPU
        # a toast too: the accordion holding the status line may be closed
        gr.Info(line.replace("**", "").replace("\\", ""), title=say(lang, "note_title"))
        if name is None:  # nothing to open yet: the queue waits for a reviewer's Start
            view = (gr.skip(), say(lang, "rv_imported_start"), progress_line(review, lang), sess)
        else:
            view = present(review, review.start(name, f, sess), lang)
        return (line, dataset_choice(settings, facts), None, gr.Button(visible=False), *view)

    @shown
    def on_upload(files, name, pw, sess, *f, lang, progress=gr.Progress()):
        return import_new(files, False, name, pw, sess, f, progress, lang)

    @shown
    def on_demo(name, pw, sess, *f, lang, progress=gr.Progress()):
        return import_new(None, True, name, pw, sess, f, progress, lang)

    return SimpleNamespace(folder=on_import, upload=on_upload, demo=on_demo)


def wire_imports(ui, review, guard, settings):
    on = import_handlers(review, guard, settings)
    outputs = [ui.admin_status, ui.dataset, ui.upload, ui.demo_button, *ui.view_outputs]
    upload_inputs = [ui.upload, ui.reviewer, ui.password, ui.session, *ui.filters]
    ui.upload.upload(on.upload, upload_inputs, outputs, api_name="review_upload", concurrency_id="import",
                     validator=guard.door(upload_inputs, ui.password, "do_upload", costly=True, files=ui.upload))
    demo_inputs = [ui.reviewer, ui.password, ui.session, *ui.filters]
    ui.demo_button.click(on.demo, demo_inputs, outputs, api_name="review_demo", concurrency_id="import",
                         validator=guard.door(demo_inputs, ui.password, "do_demo", costly=True))
    import_inputs = [ui.session, ui.password, ui.dataset]
    ui.import_button.click(on.folder, import_inputs, [ui.admin_status, ui.progress_md], api_name="import",
                           concurrency_id="import",
                           validator=guard.door(import_inputs, ui.password, "do_import", costly=True))


def autolabel_handlers(review, guard, settings):
    """The plan line (how many photos, what it costs), auto-label, cancel it, export."""
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
        return text, progress_line(review, lang)

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

    @shown
    def on_push(pw, lang):
        guard.start(pw, "do_export")
        counts = review.push_to_hub()
        return say(lang, "rv_pushed", repo=settings.hf_dataset_repo, n=sum(counts.values()), sets=len(counts))

    @shown
    def on_export_set(pw, folder):
        guard.start(pw, "do_export")
        if not folder:
            raise Message("rv_err_pick_folder")
        return review.export_formats(settings.dataset_path(folder))

    return SimpleNamespace(plan=plan_line, run=on_autolabel, cancel=on_cancel, export=on_export,
                           export_set=on_export_set, push=on_push)


def wire_autolabel(ui, review, guard, settings):
    on = autolabel_handlers(review, guard, settings)
    plan_inputs = [ui.unsure_only, ui.unsure_below, ui.weak, ui.autolabel_limit]
    for control in plan_inputs:  # the count and the cost, before anything is spent
        control.change(shown(on.plan), plan_inputs, ui.plan_md, api_visibility="private", trigger_mode="always_last",
                       concurrency_id="view", concurrency_limit=2)
    fill_at_load(lambda lang: on.plan(False, 0.9, [], 0, lang), ui.plan_md)
    inputs = [ui.session, ui.password, ui.autolabel_limit, *plan_inputs[:3]]
    ui.autolabel_button.click(on.run, inputs, [ui.admin_status, ui.progress_md],
                              api_name="autolabel", concurrency_limit=1, concurrency_id="autolabel",
                              validator=guard.door(inputs, ui.password, "do_autolabel", costly=True))
    ui.cancel_button.click(on.cancel, [ui.session, ui.password], ui.admin_status, api_name="autolabel_cancel",
                           validator=guard.door([ui.session, ui.password], ui.password, "do_labels"))
    ui.export_button.click(on.export, ui.password, ui.files, api_name="export", concurrency_id="export",
                           validator=guard.door([ui.password], ui.password, "do_export", costly=True))
    ui.hub_button.click(on.push, ui.password, ui.admin_status, api_name="push_to_hub", concurrency_id="export",
                        validator=guard.door([ui.password], ui.password, "do_export", costly=True))
    ui.export_set_button.click(on.export_set, [ui.password, ui.dataset], ui.files, api_name="export_dataset",
                               concurrency_id="export",
                               validator=guard.door([ui.password, ui.dataset], ui.password, "do_export", costly=True))
