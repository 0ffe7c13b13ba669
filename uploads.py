"""Data sets brought through the browser: an archive or loose files, checked while they stream, unpacked into a new
folder ``DATA_DIR/datasets/<name>`` that every tab lists.

Accepted: ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, or image files with an optional ``results.json``, in any layout
the folders take (flat ``<n>.jpg`` + ``results.json``, class folders, ``<source>/<class>/``). An upload is unpacked
into a hidden staging folder and renamed into place only when every check passed, so a refused or failed upload
leaves nothing behind, and an existing data set is never overwritten (each gets a unique name).

Refused, with what to do: paths that leave the folder (``../``, absolute), links and devices, more than
:data:`MAX_FILES` entries or more than ``max_mb`` unpacked (declared sizes checked before writing, real bytes
counted while writing), more than the free disk space, no image at all, a ``results.json`` that does not parse or
names files the upload does not hold.
"""

import json
import re
import secrets
import shutil
import sys
import tarfile
import time
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from PIL import Image

from classifier.classes import NONE, to_class_id
from classifier.files import list_images
from classifier.images import is_image_file
from classifier.labels import LabelFileError, match, read_labels
from i18n import Message

MAX_FILES = 50_000  # entries in one upload (the original test set has 8,150 images)
CHUNK = 1 << 20
JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db")
INFO = ".upload.json"  # beside the photos: the upload's time and original file name
PENDING = ".import-pending"  # in a data set renamed into place whose import has not finished: not listed yet
MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 1024  # one file or folder name, a whole path inside the upload (UTF-8)


class UploadError(Message):
    """An upload that cannot become a data set; the message says why and what to do."""


def clean_staging(datasets_dir, older_than: float = 3600) -> list[str]:
    """Remove what killed uploads left: staging folders (``.incoming-*``) untouched for ``older_than`` seconds (a
    younger one may be an upload another process is unpacking now). Returns the names removed."""
    removed = []
    for folder in Path(datasets_dir).glob(".incoming-*"):
        if folder.is_dir() and time.time() - folder.stat().st_mtime > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def add_dataset(files, datasets_dir, max_mb: int = 500, progress=None, importer: str | None = None) -> dict:
    """Unpack ``files`` (one archive, or loose files) into a new data set under ``datasets_dir``.

    Returns ``{"name", "path", "images", "unreadable": [relative paths], "labels": n or None, "uploaded"}``.
    ``progress(done, total)`` is called as entries are written. Raises :class:`UploadError`. With ``importer`` (who
    uploads it), the set is an import that is not finished: it is not listed until :func:`imported` is called, and a
    process killed before that finishes it at the next start (:func:`pending_imports`).
    """
    files = [Path(f) for f in (files or [])]
    if not files:
        raise UploadError("up_nothing")
    datasets_dir = Path(datasets_dir)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    budget = Budget(max_mb, datasets_dir)
    staging = datasets_dir / f".incoming-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        if len(files) == 1 and archive_kind(files[0]):
            unpack(files[0], staging, budget, progress)
        else:
            copy_loose(files, staging, budget, progress)
        root = unwrap(staging)
        facts = check_contents(root)
        name = unique_name(datasets_dir, stem(files[0]) if len(files) == 1 else "upload")
        facts.update(name=name, uploaded=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        (root / INFO).write_text(json.dumps({"uploaded": facts["uploaded"], "file": files[0].name}))
        if importer is not None:
            (root / PENDING).write_text(json.dumps({"author": importer}))
        root.rename(datasets_dir / name)  # one step: the data set appears whole or not at all
        facts["path"] = datasets_dir / name
        return facts
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def imported(folder) -> None:
    """The import of an uploaded data set finished: list it."""
    (Path(folder) / PENDING).unlink(missing_ok=True)


def pending_imports(datasets_dir) -> list[tuple[Path, str]]:
    """Data sets whose import a killed process left unfinished, with who uploaded them: ``[(folder, author)]``."""
    out = []
    for marker in sorted(Path(datasets_dir).glob(f"*/{PENDING}")):
        try:
            author = json.loads(marker.read_text())["author"]
        except (OSError, ValueError, KeyError, TypeError):
            author = "import"
        out.append((marker.parent, author))
    return out


def folder_of(path, settings) -> Path:
    """For the command lines: ``path`` itself when it is a folder; an archive is unpacked as an upload would be,
    into a new data set under ``settings.layout.datasets``, whose folder is returned (and named on stderr)."""
    if not archive_kind(path) or Path(path).is_dir():
        return Path(path)
    facts = add_dataset([path], settings.layout.datasets, settings.max_dataset_mb)
    print(f"unpacked {Path(path).name} into data set {facts['name']} ({facts['images']} photos, "
          f"{len(facts['unreadable'])} unreadable) under {settings.layout.datasets}", file=sys.stderr)
    return facts["path"]


class Budget:
    """The limits of one upload: entries, unpacked bytes, and the free disk space."""

    def __init__(self, max_mb, folder):
        self.max_bytes, self.files, self.written = int(max_mb) * 2**20, 0, 0
        self.free = shutil.disk_usage(folder).free

    def declare(self, count, size):
        """Refuse before writing anything when the upload says it holds too much."""
        if count > MAX_FILES:
            raise UploadError("up_too_many", n=count, limit=MAX_FILES)
        self._check(size, "up_declares")

    def add(self, n):
        """Count ``n`` bytes written; refuse the moment a limit is passed (declared sizes can lie)."""
        self.written += n
        self._check(self.written, "up_unpacks")

    def left(self) -> int:
        """Bytes that may still be written."""
        return max(0, min(self.max_bytes, self.free - 2**28) - self.written)

    def _check(self, size, key):
        if size > self.max_bytes:
            raise UploadError(key, mb=size / 2**20, limit=self.max_bytes // 2**20)
        if size > self.free - 2**28:  # keep 256 MB free for the label store and the app
            raise UploadError("up_disk", mb=size / 2**20, free=self.free / 2**20)


def archive_kind(path) -> str | None:
    name = Path(path).name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    return None


def stem(path) -> str:
    name = Path(path).name
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def unique_name(folder, base) -> str:
    """``base`` made safe for a folder name, with a short random suffix: never the name of an existing set."""
    base = re.sub(r"[^\w-]+", "-", base).strip("-_")[:40] or "upload"
    while True:
        name = f"{base}-{secrets.token_hex(3)}"
        if not (Path(folder) / name).exists():
            return name


def safe_member(name: str) -> PurePosixPath | None:
    """The relative path an archive entry may be written to; None for junk to skip; raises for an unsafe one."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise UploadError("up_outside", name=repr(name))
    try:  # checked before anything is written, so a name the store or the disk cannot take never lands
        encoded = [p.encode("utf-8") for p in path.parts]
    except UnicodeEncodeError:  # tarfile keeps undecodable bytes as surrogates
        raise UploadError("up_bad_name", name=ascii(name)[:80]) from None
    if any(len(p) > MAX_NAME_BYTES for p in encoded) or sum(map(len, encoded)) > MAX_PATH_BYTES:
        raise UploadError("up_long_name", name=repr(name[:60] + "…"), limit=MAX_NAME_BYTES)
    if any(p in JUNK or p.startswith("._") for p in path.parts) or not path.parts:
        return None
    keep = is_image_file(path) or path.name == "results.json"
    return path if keep else None


def unpack(archive, dest, budget, progress=None):
    """Write the archive's images and results.json under ``dest``, checking every entry as it streams."""
    if archive_kind(archive) == "zip":
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError):
            raise UploadError("up_bad_zip", name=Path(archive).name) from None
        with zf:
            infos = zf.infolist()
            budget.declare(len(infos), sum(i.file_size for i in infos))
            for n, info in enumerate(infos, 1):
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise UploadError("up_symlink", name=repr(info.filename))
                target = None if info.is_dir() else safe_member(info.filename)
                if target:
                    try:
                        with zf.open(info) as src:
                            write(src, dest / target, budget)
                    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
                        raise UploadError("up_damaged_entry", name=Path(archive).name,
                                          entry=repr(info.filename[:100])) from None
                if progress:
                    progress(n, len(infos))
        return
    try:
        with tarfile.open(archive, mode="r|*") as tf:  # streamed: entries are checked one by one as they come
            for n, member in enumerate(tf, 1):
                budget.declare(n, budget.written + member.size)
                if member.issym() or member.islnk():
                    raise UploadError("up_link", name=repr(member.name))
                if not (member.isfile() or member.isdir()):
                    raise UploadError("up_special", name=repr(member.name))
                target = safe_member(member.name) if member.isfile() else None
                if target:
                    write(tf.extractfile(member), dest / target, budget)
                if progress:
                    progress(n, None)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise UploadError("up_bad_tar", name=Path(archive).name, reason=type(e).__name__) from None


def copy_loose(files, dest, budget, progress=None):
    """Loose files: images and at most one results.json, side by side (two of one name are refused)."""
    if any(not f.is_file() for f in files):  # a device, a pipe or a folder is never opened
        raise UploadError("up_not_photo", name=next(f.name for f in files if not f.is_file()))
    budget.declare(len(files), sum(f.stat().st_size for f in files))
    for n, f in enumerate(files, 1):
        if archive_kind(f):
            raise UploadError("up_archive_among", name=f.name)
        target = safe_member(f.name)
        if target is None:
            raise UploadError("up_not_photo", name=f.name)
        if (dest / target).exists():
            raise UploadError("up_same_name", name=f.name)
        with open(f, "rb") as src:
            write(src, dest / target, budget)
        if progress:
            progress(n, len(files))


def write(src, path, budget):
    """Copy ``src`` to ``path`` (inside the staging folder), counting its bytes. Two entries of one name, or a file
    and a folder of one name (``cat/x.jpg`` and ``cat/x.jpg/y.jpg``), are refused by name, not with the disk's
    error (which names the server's folder)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UploadError("up_file_and_folder", name=repr(path.parent.name)) from None
    if path.is_dir():
        raise UploadError("up_file_and_folder", name=repr(path.name))
    try:
        with open(path, "xb") as out:
            while chunk := src.read(min(CHUNK, budget.left() + 1)):  # never more than one byte past the limit
                budget.add(len(chunk))
                out.write(chunk)
    except FileExistsError:
        raise UploadError("up_same_name", name=repr(path.name)) from None
    except OSError as e:  # what the disk refused, said without the server's path
        raise UploadError("up_write_failed", name=repr(path.name), why=e.strerror or type(e).__name__) from None


def unwrap(folder) -> Path:
    """The data set's own folder inside what was unpacked: an archive of one folder (``animals/cat/...``) is that
    folder, unless it is a class folder itself; the original project's ``testdata/<n>.jpg`` beside its
    ``results.json`` is ``testdata/`` with the labels moved in, so keys stay ``<n>`` as the original's."""
    entries = list(folder.iterdir())
    dirs = [p for p in entries if p.is_dir()]
    if len(dirs) != 1 or to_class_id(dirs[0].name) is not None:
        return folder
    if len(entries) == 1:
        return dirs[0]
    flat = not any(p.is_dir() for p in dirs[0].iterdir())
    if flat and [p.name for p in entries if p not in dirs] == ["results.json"]:
        (folder / "results.json").rename(dirs[0] / "results.json")
        return dirs[0]
    return folder


def check_contents(root) -> dict:
    """Refuse an upload without images or with a results.json that cannot be used; list unreadable photos."""
    images = list_images(root)
    if not images:
        raise UploadError("up_no_photos")
    unreadable = []
    for key, path in images:
        try:
            with Image.open(path) as im:
                im.verify()
        except Exception:  # noqa: BLE001 (PIL raises many kinds for a damaged file)
            unreadable.append(key)
    labels = None
    if (root / "results.json").exists():
        try:
            labels = read_labels(root / "results.json")
        except (LabelFileError, ValueError) as e:
            where = str(root / "results.json")
            raise UploadError("up_bad_results", why=e.scrubbed(lambda v: v.replace(where, "results.json"))) from None
        _, without_image, _ = match([k for k, _ in images], labels)
        if without_image:
            raise UploadError("up_labels_without_photos", n=len(without_image), example=repr(without_image[0]))
    return {"images": len(images), "unreadable": unreadable, "labels": len(labels) if labels is not None else None,
            "none_labels": sum(v == NONE for v in (labels or {}).values())}
