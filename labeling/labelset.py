"""The labels of a data set: one notion, used by the Evaluate and Train tabs, the CLIs and the review's impact.

For each photo: the latest reviewer decision, else the imported or LLM label, else unlabelled (left out, and
counted). "None of the 10" is a label like the others. Labels the classifier itself gave (source ``model``, from an
"only where unsure" auto-label) never score or train a model: they are left out, and counted. A photo a reviewer
left out (:meth:`labeling.store.LabelStore.leave_out`: two classes in it, a copy...) is neither scored, nor trained
on, nor exported as a class: this is the one place where that is decided, for every reader of the labels.

Three sources (:data:`SOURCES`): ``reviewed`` (reviewed where decided: the default once the set has a decision),
``before`` (the imported or LLM labels, as if no one had reviewed) and ``reviewed_only`` (only the decided photos).
"""

from dataclasses import dataclass, field

from .audit import Audit
from .store import REASONS, left_out

SOURCES = ("reviewed", "before", "reviewed_only")
FILE = "file"  # not the store's: the data set's own labels (its results.json or class folders)
LABEL_SOURCES = (*SOURCES, FILE)  # every source an evaluation can score against, in the Evaluate tab's order
ALIASES = {"current": "reviewed", "llm": "before"}  # older names the command line still takes


@dataclass
class LabelSet:
    """A data set's labels from one source, and what the headline says of them."""

    dataset: str
    source: str  # one of SOURCES
    labels: dict = field(default_factory=dict)  # key -> class id, "none" or "other: <name>"
    before: dict = field(default_factory=dict)  # key -> the label before review, where there is one
    photos: int = 0  # in the data set
    reviewed: int = 0  # photos a reviewer decided
    changed: int = 0  # of those, decided otherwise than the label before review
    unlabelled: int = 0  # left out: no label from this source
    model_only: int = 0  # left out: the only label was the classifier's own
    left_out: dict = field(default_factory=dict)  # key -> reason: a reviewer left the photo out (store.REASONS)

    def reasons(self) -> dict:
        """``{reason: photos}`` of the photos reviewers left out, in :data:`labeling.store.REASONS` order."""
        why = list(self.left_out.values())
        return {r: why.count(r) for r in REASONS if r in why}

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("dataset", "source", "photos", "reviewed", "changed", "unlabelled",
                                              "model_only")} | {"labelled": len(self.labels),
                                                                "left_out_reasons": self.reasons()}


def labels_of(store, dataset, source: str | None = None) -> LabelSet:
    """The labels of ``dataset`` (its name in the store, or its folder) from ``source`` (default: ``reviewed`` when
    any photo was decided, else ``before``). Raises ``ValueError`` for a data set the store does not know or an
    unknown source."""
    name = store.dataset(dataset)["name"]
    rows = store.state(dataset=name)
    if source is None:
        source = "reviewed" if any(r["human_label"] is not None for r in rows) else "before"
    if source not in SOURCES:
        raise ValueError(f"unknown label source {source!r}: choose one of {', '.join(SOURCES)}")
    out = LabelSet(name, source, photos=len(rows))
    disputed = Audit(store, name).disputed()  # two blind reviewers disagree: unreviewed until a third decides
    for r in rows:
        machine = r["machine_label"] if r["machine_source"] != "model" else None
        human = r["human_label"] if r["id"] not in disputed else None
        if machine is not None:
            out.before[r["key"]] = machine
        out.reviewed += human is not None
        out.changed += human is not None and human != machine and not left_out(human)  # relabelled, not left out
        label = {"reviewed": human if human is not None else machine, "before": machine, "reviewed_only": human}[source]
        if left_out(label):  # only a reviewer's label can be: "before" is the set as if no one had reviewed it
            out.left_out[r["key"]] = left_out(label)
        elif label is not None:
            out.labels[r["key"]] = label
        elif r["machine_source"] == "model" and human is None:
            out.model_only += 1
        else:
            out.unlabelled += 1
    return out
