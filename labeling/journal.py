"""What must outlive the host, written where it can: a journal of the label store's writes in ``PERSIST_DIR``.

A Space's disk is wiped at every restart, and the storage that lasts (a bucket mounted as a folder, over NFS or
FUSE) is no place for SQLite, whose locks and in-place page writes such mounts do not honour. So the store stays on
the local disk, and every write transaction also writes its new rows (data sets, images, label events) as **one new
small file** before it commits: write-once (opened with ``"x"``, written, flushed and fsynced), never appended to,
rewritten or renamed over, no locks. A transaction whose file cannot be written is rolled back, so a decision is
acknowledged only once it lasts. A start with no label store rebuilds it from the files, in order; a file a crash
cut short is skipped with one log line. Uploaded data sets are copied once, file by file, a ``.complete`` file last.
"""

import json
import os
import secrets
import sys
import time
from pathlib import Path

from classifier.files import keep_copy, restore_copies

TABLES = ("datasets", "images", "events")  # what the journal keeps; the rest is derived (current) or a cache


class JournalError(OSError):
    """The journal could not be written: nothing was saved."""


class Journal:
    """The journal files under ``folder/journal`` and the data-set copies under ``folder/datasets``."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.events = self.folder / "journal"

    def write(self, rows: dict) -> Path:
        """Write ``{table: [row dict]}`` as a new file; raises :class:`JournalError` when it cannot be made to last."""
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}.json"
        try:
            self.events.mkdir(parents=True, exist_ok=True)
            with open(self.events / name, "x", encoding="utf-8") as f:
                f.write(json.dumps(rows, ensure_ascii=False))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise JournalError(f"the journal in PERSIST_DIR could not be written ({e.strerror or e})") from None
        return self.events / name

    def read(self):
        """Every journal file's rows, oldest first; a damaged one is skipped with a log line."""
        for path in sorted(self.events.glob("*.json")) if self.events.is_dir() else []:
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                print(f"journal: {path.name} is damaged (a write cut short?) and was skipped", file=sys.stderr,
                      flush=True)

    def keep_dataset(self, folder) -> None:
        """Copy an uploaded data set's files once (:func:`classifier.files.keep_copy`), unless it is kept already."""
        keep_copy(folder, self.folder / "datasets" / Path(folder).name)

    def restore_datasets(self, datasets_dir) -> list[str]:
        """Copy back the kept data sets the local disk lacks (each whole, through a hidden staging folder); returns
        their names."""
        return restore_copies(self.folder / "datasets", datasets_dir, Path(datasets_dir) / ".incoming-restore")
