"""The reviewed labels pushed to a Hugging Face dataset repository, on a schedule and on demand (optional).

With ``HF_DATASET_REPO`` and a token (``HF_TOKEN``) set, the app keeps a folder ``DATA_DIR/hub`` with what is
pushed, and ``huggingface_hub``'s ``CommitScheduler`` (the documented pattern for a Space's data) uploads it every
``HUB_PUSH_MINUTES``; "Push to the Hub now" rebuilds it and triggers an upload at once. What goes there
(:func:`snapshot`): per data set, its labels as the review left them (``labels/<set>.json``: key -> label, "null"
for none of the ten, the original format) and their provenance (``labels/<set>.csv``: label, label before review,
who decided, when, and why a reviewer left a photo out: such a photo is in the CSV only), the full history
(``history.csv``; both spreadsheet-safe) and a short dataset card. No photos and no database: the labels and who
made them.
"""

import csv
import json
import time
from pathlib import Path

from classifier.classes import NONE, OTHER
from escaping import cell

from .labelset import labels_of


def snapshot(store, folder) -> dict:
    """Write what is pushed into ``folder`` (made afresh); returns ``{data set: labelled photos}``."""
    folder = Path(folder)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for old in (folder / "labels").glob("*"):
        old.unlink()
    counts = {}
    decided = store.decision_times()
    for d in store.datasets():
        labels = labels_of(store, d["name"], "reviewed")
        rows = {r["key"]: r for r in store.state(dataset=d["name"])}
        results = {k: "null" if v == NONE else v.removeprefix(OTHER) for k, v in sorted(labels.labels.items())}
        (folder / "labels" / f"{d['name']}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1))
        with open(folder / "labels" / f"{d['name']}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["key", "label", "label_before_review", "decided_by", "decided_at", "left_out"])
            for key in sorted({*labels.labels, *labels.left_out}):
                row = rows[key]
                at = decided.get(row["id"]) if row["human_label"] is not None else None
                writer.writerow([cell(v) for v in (key, labels.labels.get(key, ""), labels.before.get(key, ""),
                                 row["reviewer"] or "", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
                                 if at else "", labels.left_out.get(key, ""))])
        counts[d["name"]] = len(results)
    store.export_history(folder / "history.csv")
    (folder / "README.md").write_text(
        "# Animals-10 reviewed labels\n\nPushed by the Animals-10 label-review studio: per data set, the labels as the "
        "review left them (`labels/<set>.json`, the original results.json format) with who decided and when "
        "(`labels/<set>.csv`), and the full label history (`history.csv`). Photos are not included.\n\n"
        + "".join(f"- `{name}`: {n} labelled photos\n" for name, n in counts.items()))
    return counts


class HubPush:
    """The scheduled push of :func:`snapshot` (``huggingface_hub.CommitScheduler``), when the settings name a
    dataset repository and a token; otherwise it does nothing and says so."""

    def __init__(self, settings, store):
        self.store, self.folder = store, settings.layout.hub
        self.repo, self.scheduler = settings.hf_dataset_repo, None
        if self.repo and settings.hf_token:
            from huggingface_hub import CommitScheduler

            self.folder.mkdir(parents=True, exist_ok=True)
            snapshot(store, self.folder)
            self.scheduler = CommitScheduler(repo_id=self.repo, repo_type="dataset", folder_path=self.folder,
                                             every=settings.hub_push_minutes, token=settings.hf_token,
                                             private=True)

    def push_now(self) -> dict:
        """Rebuild the folder (under the scheduler's lock, so no upload reads it half-written) and push it."""
        if self.scheduler is None:
            raise ValueError("No dataset repository configured: set HF_DATASET_REPO and HF_TOKEN.")
        with self.scheduler.lock:
            counts = snapshot(self.store, self.folder)
        self.scheduler.trigger()
        return counts
