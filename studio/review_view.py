"""The review as the Review tab shows it, in the viewer's language: what :class:`labeling.review.Review` (the session,
plain data) answers, turned into the photo, its details, the progress line, the impact and scorecard tables, and the
``(photo, details, progress, session)`` a key press puts on the page.

No Gradio here: these are plain functions of a ``Review``, called by the tab's handlers (:mod:`studio.review`) and by
the tests and benchmarks that look at what a reviewer sees.

>>> step = review.decide(session, "cat", filters)  # labeling.review: the decision, the next image
>>> photo, details, progress, session = present(review, step)  # here: what the tab shows of it
"""

import pandas as pd

from classifier.classes import CLASSES, NONE, WATCHED, display_name
from classifier.images import ImageError, thumbnail
from escaping import plain
from i18n import column_names, say
from labeling.audit import verdict
from labeling.curation import MORE
from labeling.review import Filters, Review, Step
from labeling.scorecard import scorecard
from labeling.store import left_out

IMPACT_COLUMNS = ("labels", "scored", "accuracy", "cat_recall", "dog_precision")  # keys of col_<name>
PHOTO_SIDE = 900  # pixels: the photo as the tab shows it
# why a photo is still ranked by the served model's probability (labeling.review.Review.ranked_how), in words
NOT_SCORED = {"wait": "rv_ranked_wait", "failed": "rv_ranked_failed", "too_few": "rv_ranked_few",
              "soon": "rv_ranked_soon"}


def present(review: Review, step: Step, lang: str | None = None) -> tuple:
    """What the tab shows after a key press: ``(photo, details, progress, session)`` for ``step``.

    Args:
        review: the :class:`labeling.review.Review` the step was taken in.
        step: what the key press did (:class:`labeling.review.Step`).
        lang: the viewer's language, given at Start: the session keeps it, so the key presses after it are shown in
            the same words. ``None``: the session's (English if it has none).
    """
    if lang is not None:
        step.session["lang"] = lang
    lang = step.session.get("lang", "en")
    return (*view(review, step.image, step.queue, lang, step.blind, step.filters), step.session)


def view(review: Review, image_id: int | None, queue: list[dict] | None = None, lang: str = "en", blind: bool = False,
         filters=None) -> tuple:
    """``(photo, details markdown, progress markdown)`` for one image, in ``lang``.

    Args:
        review: the :class:`labeling.review.Review`.
        image_id: the image, or ``None`` when the queue is empty.
        queue: the ranked queue it came from (passed on, so a key press ranks the store once, not twice), or
            ``None`` for an image reopened (previous, undo).
        lang: the viewer's language.
        blind: an audit photo, shown with nothing that says what it is.
        filters: the queue's :class:`labeling.review.Filters` (or their values in field order).
    """
    filters = Filters.of(filters) if filters is not None else Filters()
    if image_id is None:
        lines = [say(lang, "rv_empty_queue"), *copies_notes(review, filters, lang)]
        return None, "\n\n".join(lines), progress_line(review, lang)
    row = review.row(image_id, queue, filters.out_of_fold)
    if blind:
        return thumbnail(row["file"], PHOTO_SIDE), say(lang, "rv_audit_blind", n=len(queue or [])), \
            progress_line(review, lang)
    lines = details(review, row, queue, filters, lang)
    try:
        picture = thumbnail(row["file"], PHOTO_SIDE)
    except ImageError as e:
        picture, lines = None, lines + [f"⚠️ {plain(review.scrub(e.said(lang)))}"]
    return picture, "\n\n".join(lines), progress_line(review, lang)


def details(review: Review, row: dict, queue: list[dict] | None, filters: Filters, lang: str = "en") -> list[str]:
    """The lines said of ``row``: its label, where it comes from, the model's and the LLM's answers, its rank (with
    ``queue``) and how it was ranked, and its copies."""
    top3 = ", ".join(f"{display_name(c)} {p:.0%}" for c, p in review.top_classes(row["id"], 3)) or "-"
    uid = row["uid"].replace("`", "'")  # a code span shows anything but a backtick as text
    lines = [f"### {plain(label_words(row['label'], lang))}",
             say(lang, "rv_line_label", uid=uid, dataset=plain(row["dataset"]),
                 source=say(lang, f"source_{row['source'] or 'nobody'}"), status=say(lang, f"status_{row['status']}"))
             + (say(lang, "rv_by", name=plain(row["reviewer"])) if row["reviewer"] else ""),
             say(lang, "rv_line_model", top3=top3) + (say(lang, "rv_disagrees") if row["disagree"] else ""),
             say(lang, "rv_line_llm", said=llm_line(row, lang))]
    if queue is not None:
        lines.append(say(lang, "rv_line_rank", n=len(queue), rank=row["rank"]))
        lines.append(ranking_line(review, row, filters, lang))
    if row.get("ranking") != "out_of_fold" and review.learnt(row):
        lines.append(say(lang, "rv_blind"))  # it learnt these labels: it cannot doubt them
    return lines + copy_lines(review, row, lang) + copies_notes(review, filters, lang)


def ranking_line(review: Review, row: dict, filters=None, lang: str = "en") -> str:
    """How the queue ranked ``row`` (:meth:`labeling.review.Review.ranked_how`), in ``lang``: by label quality
    from several views, out of fold, or by the served model's probability of the label, and why."""
    how = review.ranked_how(row, filters)
    if how["by"] == "review":
        return say(lang, "rv_ranked_review", score=how["score"])
    if how["by"] == "out_of_fold":
        return say(lang, "rv_ranked_oof", score=how["score"],
                   why=say(lang, "rv_oof_asked" if how["asked"] else "rv_oof_learnt"))
    counts = {k: how[k] for k in ("done", "n") if k in how}
    return say(lang, "rv_ranked_model", why=say(lang, NOT_SCORED[how["why"]], **counts) if how["why"] else "")


def copy_lines(review: Review, row: dict, lang: str = "en") -> list[str]:
    """What ``row`` is a near-copy of: other photos of the store (the first few by name), a training photo of the
    served model."""
    lines = []
    if row.get("copies"):
        uid = review.uids()
        names = [f"`{uid[i].replace('`', chr(39))}`" for i in row["copies"][:MORE] if i in uid]
        more = len(row["copies"]) - len(names)
        lines.append(say(lang, "rv_line_copies", names=", ".join(names))
                     + (say(lang, "rv_and_more", n=more) if more > 0 else ""))
    if row.get("leak"):
        leak = row["leak"]
        lines.append(say(lang, "rv_line_leak", key=plain(str(leak["key"])).replace("`", "'"),
                         label=plain(str(leak["label"] or "-")), distance=leak["distance"]))
    return lines


def copies_notes(review: Review, filters=None, lang: str = "en") -> list[str]:
    """Why a copies filter holds fewer photos than it may: the features are still being computed, or the served
    model carries no index of its training photos (the leak check is unavailable, never "no leaks")."""
    filters = Filters.of(filters) if filters is not None else Filters()
    if filters.copies == "all":
        return []
    known = review.copies_state()
    if known["copies"] == "pending":
        return [say(lang, "rv_copies_wait", done=known["done"], n=known["n"])]
    if filters.copies != "groups" and known["leak_check"] == "unavailable":
        return [say(lang, "rv_leaks_unavailable", model=plain(known["model"]))]
    return []


def progress_line(review: Review, lang: str = "en") -> str:
    """The store's review progress in ``lang`` (:meth:`labeling.review.Review.counts`): counts, labels per class,
    and the predictions and features still coming."""
    s = review.counts()
    per = " · ".join(f"{label_words(c, lang)} {n}" for c, n in sorted(s["per_label"].items()))
    busy = say(lang, "rv_predicting", done=s["predicting"][0], n=s["predicting"][1]) if s["predicting"] else ""
    if s["featuring"]:  # the features of the finer ranking and the copies
        busy += say(lang, "rv_featuring", done=s["featuring"][0], n=s["featuring"][1])
    return say(lang, "rv_progress", reviewed=s["reviewed"], total=s["total"], accepted=s["accepted"],
               corrected=s["corrected"], left_out=s["left_out"], changed=s["changed_from_llm"],
               llm=s["llm_labelled"], busy=busy) + f"\n\n{plain(per)}"


def impact_table(review: Review, lang: str = "en") -> pd.DataFrame:
    """Accuracy, cat recall and dog precision of the serving model against the labels before and after review
    (:meth:`labeling.review.Review.impact`), one row each, headed in ``lang``."""
    table = []
    change = review.impact()
    for name, report in ((say(lang, "rv_before"), change["before"]), (say(lang, "rv_after"), change["after"])):
        first, second = (report["per_class"][c] for c in WATCHED)  # cat recall, dog precision
        table.append([name, report["n_scored"], pct(report["accuracy"]),
                      pct(first["recall"] if first["support"] else None), pct(second["precision"])])
    return pd.DataFrame(table, columns=column_names(IMPACT_COLUMNS, lang))


def llm_scorecard(review: Review, lang: str = "en") -> tuple:
    """The LLM labeller against the reviewed labels (:func:`labeling.scorecard.scorecard`), per LLM model and prompt
    version, in ``lang``: the table, the confusion of the most reviewed one, and its name."""
    return scorecard(*review.scorecard_inputs(), lang)


def import_line(result: dict, lang: str = "en") -> str:
    """What an import did (:meth:`labeling.review.Review.import_folder`'s counts), as one line in ``lang``."""
    return say(lang, "rv_imported", n=result["images"], name=plain(result["dataset"]), added=result["added"],
               labels=result["labels_added"], no_image=len(result["labels_without_image"]),
               no_label=len(result["images_without_label"]))


def label_words(label, lang: str = "en") -> str:
    """A label as the review shows it: a class by its two names, none, a photo left out and why, else as written."""
    if left_out(label):
        return say(lang, "rv_left_out", reason=say(lang, f"rv_out_{left_out(label)}"))
    return display_name(label) if label in (*CLASSES, NONE) else label or "—"


def llm_line(row: dict, lang: str = "en") -> str:
    """What the LLM said of ``row``: its label (or why it gave none) and its reply, cut to 300 characters."""
    if row["llm_status"] is None:
        return say(lang, "rv_not_asked")
    reply = (row["llm_reply"] or "").strip().replace("\n", " ")
    reply = reply[:300] + ("…" if len(reply) > 300 else "")
    return f"{plain(row['llm_label'] or row['llm_status'])} — “{plain(reply)}”"


def pct(x) -> str:
    """A share as a percentage with one decimal, ``-`` when unknown."""
    return "-" if x is None else f"{x:.1%}"


def audit_line(state: dict, photos: int, target: float, lang: str) -> str:
    """The audit's estimate in words: the count left with its interval, the target's verdict, the reviewers'
    agreement."""
    if not state.get("drawn"):
        return say(lang, "rv_audit_none")
    lines = [say(lang, "rv_audit_line", decided=state["decided"], drawn=state["drawn"], left=state["left"],
                 est=state["estimate"], low=state["low"], high=state["high"])]
    limit = target / 100 * photos
    key = "rv_audit_met" if verdict(state, photos, target / 100) else "rv_audit_not_met"
    lines.append(say(lang, key, target=target, photos=photos, limit=limit, high=state["high"]))
    if state["pairs"]:
        kappa = "-" if state["kappa"] is None else f"{state['kappa']:.2f}"
        lines.append(say(lang, "rv_audit_kappa", pairs=state["pairs"], kappa=kappa, disputed=len(state["disputed"]),
                         keys=", ".join(map(str, state["disputed"][:10])) or "-"))
    return "\n\n".join(lines)
