"""The one decode: every mode to RGB 0-255 without clipping, EXIF, draft, and a clear error for bad input."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from classifier.images import MAX_PIXELS, ImageError, decode, decode_with_info


def encode(img, fmt="PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_uniform_values_survive_exactly():
    out = decode(encode(Image.new("RGB", (50, 30), (10, 128, 250))), size=224)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert np.allclose(out, [10, 128, 250])  # no /255 anywhere


def test_sixteen_bit_gray_is_scaled_not_clipped():
    a = np.full((40, 40), 32896, np.uint16)  # 32896 / 257 = 128
    a[:, 20:] = 65535
    out = decode(encode(Image.fromarray(a)), size=40)
    assert out[0, 5] == pytest.approx([128, 128, 128], abs=0.01)
    assert out[0, 35] == pytest.approx([255, 255, 255], abs=0.01)
    # PIL's own conversion would have clipped 32896 to 255:
    assert Image.fromarray(a).convert("RGB").getpixel((5, 0)) == (255, 255, 255)


def test_rgba_transparent_pixels_become_white():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    img.putpixel((0, 0), (200, 0, 0, 255))
    out = decode(encode(img), size=10)
    assert out[5, 5].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [200, 0, 0]


def test_half_transparent_la_blends_with_white():
    out = decode(encode(Image.new("LA", (8, 8), (0, 128))), size=8)
    assert out[0, 0] == pytest.approx([127, 127, 127], abs=1)


def test_palette_with_transparency_and_gray_and_bilevel():
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    assert decode(encode(p), size=8)[0, 0].tolist() == [0, 200, 0]
    p.info["transparency"] = 1
    assert decode(encode(p, transparency=1), size=8)[0, 0].tolist() == [255, 255, 255]
    assert decode(encode(Image.new("L", (8, 8), 77)), size=8)[0, 0].tolist() == [77, 77, 77]
    assert decode(encode(Image.new("1", (8, 8), 1)), size=8)[0, 0].tolist() == [255, 255, 255]


def test_cmyk_jpeg_decodes_to_rgb():
    out = decode(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95), size=16)
    assert out[8, 8] == pytest.approx([255, 0, 0], abs=6)  # pure red


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    pixels, info = decode_with_info(encode(img, "JPEG", exif=exif, quality=95), size=20)
    assert (info["width"], info["height"]) == (20, 40)
    assert pixels[2, 10, 0] > 200 and pixels[-3, 10, 2] > 200  # red on top, blue at the bottom


def test_large_jpeg_uses_draft_and_matches_full_decode():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (30, 40, 3), np.uint8)
    big = Image.fromarray(small).resize((4000, 3000), Image.BILINEAR)  # 12 MP, smooth content
    data = encode(big, "JPEG", quality=90)
    fast = decode(data, size=224)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)
    assert np.abs(fast - full).mean() < 3


def test_bilinear_resize_of_a_gradient():
    a = np.tile(np.linspace(0, 255, 448, dtype=np.float32), (448, 1)).astype(np.uint8)
    out = decode(encode(Image.fromarray(a)), size=224)[..., 0]
    assert np.all(np.diff(out[100]) >= 0) and out[100, 0] < 3 and out[100, -1] > 252


def test_animated_gif_uses_first_frame_and_says_so():
    frames = [Image.new("RGB", (20, 20), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pixels, info = decode_with_info(buf.getvalue(), size=20)
    assert pixels[10, 10, 0] > 200 and pixels[10, 10, 2] < 50
    assert "animated" in str(info["notes"][0]) and "动图" in info["notes"][0].said("zh")


def test_accepts_path_pil_and_file_object(tmp_path):
    img = Image.new("RGB", (10, 10), (1, 2, 3))
    path = tmp_path / "x.png"
    img.save(path)
    for source in (path, str(path), img, open(path, "rb")):
        assert decode(source, size=10)[0, 0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"this is a text file, not a photo", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "not an image|could not"),
])
def test_bad_bytes_give_a_clear_error(data, words):
    with pytest.raises(ImageError, match=words):
        decode(data)


def test_truncated_jpeg_is_a_clear_error():
    data = encode(Image.effect_noise((300, 300), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    data = encode(Image.new("1", (20000, 20000)))  # 400 MP, a few kB on disk
    assert len(data) < 200_000
    with pytest.raises(ImageError, match="MP"):
        decode(data)
    assert 20000 * 20000 > MAX_PIXELS


def test_missing_file_and_wrong_type():
    with pytest.raises(ImageError, match="could not be read"):
        decode("/no/such/file.jpg")
    with pytest.raises(ImageError, match="Expected an image"):
        decode(12345)


def _valid_images():
    img = Image.effect_noise((40, 30), 60).convert("RGB")
    out = [encode(img, "PNG"), encode(img, "JPEG"), encode(img.convert("P"), "GIF"), encode(img, "WEBP"),
           encode(img, "BMP"), encode(img.convert("I;16"), "PNG"), encode(img.convert("CMYK"), "JPEG")]
    return out


VALID = _valid_images()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_only_raise_our_error(data):
    try:
        decode(data, 32)
    except ImageError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(len(VALID))), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                     max_size=12), st.integers(0, 10**6))
def test_fuzz_mutated_images_only_raise_our_error(which, flips, cut):
    data = bytearray(VALID[which])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(1, cut % (len(data) + 1))])
    try:
        out = decode(data, 32)
        assert out.shape == (32, 32, 3) and np.isfinite(out).all()
    except ImageError as e:
        assert str(e)
