"""The one image decode used by serving, training and evaluation.

Any source (path, bytes, file object, PIL image, array) becomes an RGB float32 array of pixel values 0-255 at the
model's square size, resized bilinearly. Nothing divides by 255: the backbones rescale inside the model.
Every failure is an :class:`ImageError` whose message says what is wrong and what to do.
"""

import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from i18n import Message

MAX_PIXELS = 50_000_000  # refuse larger images before decoding them (decompression bombs)
MAX_BYTES = 50 * 1024 * 1024
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".jfif")
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


class ImageError(Message):
    """An input that is not a usable image; the message is meant for the user."""


def decode(source, size: int = 224) -> np.ndarray:
    """Decode ``source`` to an RGB float32 array of shape ``(size, size, 3)`` with values in 0-255."""
    return decode_with_info(source, size)[0]


def decode_with_info(source, size: int = 224) -> tuple[np.ndarray, dict]:
    """Like :func:`decode`, and also return a dict of facts about the input.

    The dict holds ``width``, ``height`` (after EXIF rotation), ``format``, ``mode`` and ``notes``: a list of
    messages worth showing the user (an animated image of which only the first frame was used, for example).
    """
    img = _open(source)
    info = {"format": img.format, "mode": img.mode, "notes": []}
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)
            info["notes"].append(Message("img_animated", n=img.n_frames))
        if img.format == "JPEG":
            img.draft(None, (size, size))  # decode at 1/2, 1/4 or 1/8 scale, still >= size: 12 MP in ~20 ms
        img = _upright(img)
        info["width"], info["height"] = img.size
        pixels = _resize_rgb(img, size)
    except ImageError:
        raise
    except Exception as e:  # PIL's decoders raise many types on corrupt data (OSError, struct.error, IndexError...)
        raise ImageError("img_corrupt", reason=_reason(e)) from None
    return pixels, info


def thumbnail(source, max_side: int = 800) -> Image.Image:
    """An RGB PIL image for display, aspect ratio kept, longest side at most ``max_side`` (EXIF applied)."""
    img = _open(source)
    try:
        if img.format == "JPEG":
            img.draft("RGB", (max_side, max_side))
        img = _upright(img)
        img.thumbnail((max_side, max_side))
        return Image.fromarray(_resize_rgb(img, None).astype(np.uint8))
    except Exception as e:
        raise ImageError("img_undecodable", reason=_reason(e)) from None


def is_image_file(path) -> bool:
    """True when ``path`` has one of the image extensions the decode reads (case-insensitive)."""
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _open(source):
    """Open ``source`` lazily (header only) and refuse what cannot or should not be decoded."""
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        img = Image.fromarray(source.astype(np.uint8) if source.dtype != np.uint8 else source)
    else:
        img = _open_file(source)
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError("img_too_many_pixels", w=w, h=h, mp=w * h / 1e6, limit=MAX_PIXELS / 1e6)
    if w == 0 or h == 0:
        raise ImageError("img_no_pixels")
    return img


def _open_file(source):
    name = "upload"
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        name = os.path.basename(os.fspath(source))
        data = read_bounded(source, MAX_BYTES, name)
    elif hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
    else:
        raise ImageError("img_wrong_type", kind=type(source).__name__)
    if not data:
        raise ImageError("img_empty", name=name)
    if len(data) > MAX_BYTES:
        raise ImageError("img_too_big", name=name, limit=MAX_BYTES // 2**20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("img_bomb", name=name, limit=MAX_PIXELS / 1e6) from None
    except UnidentifiedImageError:
        raise ImageError("img_not_image", name=name) from None
    except Exception as e:  # a header that parses halfway: any decoder error is the file's fault
        raise ImageError("img_cannot_open", name=name, reason=_reason(e)) from None


def read_bounded(path, limit: int, name: str | None = None) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` (:class:`ImageError` past it). A device, a FIFO
    or a socket is refused before it is opened (``/dev/zero`` would never end; a FIFO would block), and at most
    ``limit + 1`` bytes are read whatever the file's size says."""
    name = name or os.path.basename(os.fspath(path))
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ImageError("img_not_file", name=name)
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ImageError("img_unreadable", name=name, reason=_reason(e)) from None
    if len(data) > limit:
        raise ImageError("img_too_big", name=name, limit=limit // 2**20)
    return data


def _upright(img):
    """Apply the EXIF orientation without copying an image that needs none (a copy of 50 MP is 150 MB)."""
    orientation = img.getexif().get(0x0112, 1)
    return ImageOps.exif_transpose(img) if orientation != 1 else img


def _resize_rgb(img, size):
    """Any PIL mode -> RGB float32 0-255 resized bilinearly to ``size`` (None: kept), keeping the full range of
    high-bit-depth images."""
    if img.mode in _HIGH_BIT_MODES:
        # PIL's own I;16 -> RGB conversion clips at 255; scale 16-bit to 0-255 instead and resize in float.
        a = np.asarray(img, dtype=np.float32)
        if img.mode != "F" and (img.mode.startswith("I;16") or a.max() > 255):
            a = a / 257.0
        gray = Image.fromarray(np.clip(a, 0, 255).astype(np.float32), mode="F")
        out = np.asarray(gray.resize((size, size), Image.BILINEAR) if size else gray, dtype=np.float32)
        return np.repeat(out[..., None], 3, axis=-1)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        # Transparent web PNGs: put them on white rather than on whatever colour the hidden pixels hold.
        # Resize first (PIL resamples RGBA premultiplied), so a large image is composited at the small size.
        rgba = img.convert("RGBA")
        if size is not None:
            rgba = rgba.resize((size, size), Image.BILINEAR)
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    rgb = img if img.mode == "RGB" else img.convert("RGB")  # no copy of an RGB image (50 MP = 150 MB)
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return np.asarray(rgb, dtype=np.float32)


def _reason(error):
    text = str(error).strip() or type(error).__name__
    return text[:200]
