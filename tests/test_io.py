"""Tests for unblur.io: image and kernel files."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

import unblur.io as uio
from unblur.errors import UserError
from unblur.io import (
    IMAGE_EXTENSIONS,
    ImageFile,
    list_images,
    load_kernels,
    read_image,
    read_kernel,
    write_image,
    write_kernel,
)

RNG = np.random.default_rng(1234)


def quantised(shape, bits, rng=RNG):
    top = 2**bits - 1
    return (rng.integers(0, top + 1, shape) / top).astype(np.float32)


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_exif(orientation=None, make="UnblurCam") -> Image.Exif:
    exif = Image.Exif()
    exif[271] = make
    if orientation is not None:
        exif[274] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"  # DateTimeOriginal, in the EXIF sub-IFD
    return exif


def folder_names(folder) -> list[str]:
    return sorted(os.listdir(folder))


# ---- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels,with_alpha", [(1, False), (1, True), (3, False), (3, True)])
def test_lossless_round_trip(tmp_path, ext, bits, channels, with_alpha):
    px = quantised((9, 11, channels), bits)
    alpha = quantised((9, 11), bits) if with_alpha else None
    out = write_image(tmp_path / f"a{ext}", px, alpha=alpha, bit_depth=bits)
    img = read_image(out)
    assert img.bit_depth == bits
    assert img.pixels.dtype == np.float32 and img.pixels.shape == px.shape
    np.testing.assert_array_equal(img.pixels, px)
    if with_alpha:
        assert img.alpha is not None and img.alpha.dtype == np.float32
        np.testing.assert_array_equal(img.alpha, alpha)
    else:
        assert img.alpha is None
    assert img.is_gray == (channels == 1)
    assert img.format == ("PNG" if ext == ".png" else "TIFF")
    assert img.path == out


def test_16bit_png_is_standard(tmp_path):
    """Our 16-bit PNG encoder writes files Pillow reads (it keeps the high bytes of colour)."""
    px = quantised((6, 5, 3), 16)
    out = write_image(tmp_path / "a.png", px, bit_depth=16)
    with Image.open(out) as im:
        im.load()
        high = np.asarray(im)
    np.testing.assert_array_equal(high, np.round(px * 65535).astype(np.uint16) >> 8)


def _ref_png(arr: np.ndarray, interlace: bool) -> bytes:
    """A plain-Python 16-bit PNG encoder cycling through all five filter types."""
    h, w, k = arr.shape
    bpp = 2 * k
    passes = (
        [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ]
        if interlace
        else [(0, 0, 1, 1)]
    )
    out = bytearray()
    row_index = 0
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        prev = bytes(sub.shape[1] * bpp)
        for r in range(sub.shape[0]):
            row = sub[r].astype(">u2").tobytes()
            ft = row_index % 5
            row_index += 1
            filtered = bytearray(len(row))
            for i in range(len(row)):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if ft == 0:
                    pred = 0
                elif ft == 1:
                    pred = a
                elif ft == 2:
                    pred = b
                elif ft == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                filtered[i] = (row[i] - pred) & 0xFF
            out += bytes([ft]) + filtered
            prev = row

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ctype = {2: 4, 3: 2, 4: 6}[k]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, int(interlace)))
        + chunk(b"IDAT", zlib.compress(bytes(out)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_16bit_png_from_another_encoder(tmp_path, interlace, k):
    arr = RNG.integers(0, 65536, (11, 13, k)).astype(np.uint16)
    arr[:4, :4] = 40000  # flat patch: filters predict well, residuals wrap around
    path = tmp_path / "ref.png"
    path.write_bytes(_ref_png(arr, interlace))
    img = read_image(path)
    assert img.bit_depth == 16
    colour = 1 if k == 2 else 3
    np.testing.assert_array_equal(np.rint(img.pixels * 65535).astype(np.uint16), arr[:, :, :colour])
    if k in (2, 4):
        np.testing.assert_array_equal(
            np.rint(img.alpha * 65535).astype(np.uint16), arr[:, :, colour]
        )


def _raw_tiff(w, h, spp, bits, strip, compression, photometric) -> bytes:
    """A minimal little-endian single-strip TIFF."""
    n = 10
    ifd_size = 2 + 12 * n + 4
    bps_offset = 8 + ifd_size
    strip_offset = bps_offset + 2 * spp
    bps_value = struct.pack("<HH", bits, 0) if spp == 1 else struct.pack("<I", bps_offset)
    entries = [
        (256, 4, 1, struct.pack("<I", w)),
        (257, 4, 1, struct.pack("<I", h)),
        (258, 3, spp, bps_value),
        (259, 3, 1, struct.pack("<HH", compression, 0)),
        (262, 3, 1, struct.pack("<HH", photometric, 0)),
        (273, 4, 1, struct.pack("<I", strip_offset)),
        (277, 3, 1, struct.pack("<HH", spp, 0)),
        (278, 4, 1, struct.pack("<I", h)),
        (279, 4, 1, struct.pack("<I", len(strip))),
        (284, 3, 1, struct.pack("<HH", 1, 0)),
    ]
    ifd = struct.pack("<H", n) + b"".join(
        struct.pack("<HHI", t, ty, c) + v for t, ty, c, v in entries
    )
    ifd += struct.pack("<I", 0)
    return (
        b"II*\x00"
        + struct.pack("<I", 8)
        + ifd
        + struct.pack("<" + "H" * spp, *[bits] * spp)
        + strip
    )


def test_16bit_rgb_tiff_lzw(tmp_path):
    """LZW needs imagecodecs in tifffile; the Pillow fallback must still keep all 16 bits."""
    arr = RNG.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    # Let Pillow/libtiff LZW-compress the same bytes as a wide 16-bit gray image.
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr.reshape(6, 21))).save(
        buf, format="TIFF", compression="tiff_lzw"
    )
    buf.seek(0)
    with Image.open(buf) as wide:
        (offset,), (count,) = wide.tag_v2[273], wide.tag_v2[279]
    strip = buf.getvalue()[offset : offset + count]
    path = tmp_path / "lzw16.tif"
    path.write_bytes(_raw_tiff(7, 6, 3, 16, strip, compression=5, photometric=2))
    img = read_image(path)
    assert img.bit_depth == 16 and img.pixels.shape == (6, 7, 3)
    np.testing.assert_array_equal(np.rint(img.pixels * 65535).astype(np.uint16), arr)


def test_jpeg_round_trip_is_close(tmp_path):
    y, x = np.mgrid[0:32, 0:48]
    px = np.stack([x / 47, y / 31, (x + y) / 78], axis=2).astype(np.float32)
    out = write_image(tmp_path / "a.jpg", px, alpha=np.ones((32, 48)), bit_depth=16)
    img = read_image(out)
    assert img.format == "JPEG" and img.bit_depth == 8 and img.alpha is None
    assert np.abs(img.pixels - px).mean() < 0.01
    gray = write_image(tmp_path / "g.jpeg", px[:, :, :1])
    assert read_image(gray).is_gray


def test_webp_round_trip(tmp_path):
    px = quantised((10, 12, 3), 8)
    alpha = quantised((10, 12), 8)
    out = write_image(tmp_path / "a.webp", px, alpha=alpha, quality=100)  # lossless
    img = read_image(out)
    assert img.format == "WEBP" and img.bit_depth == 8
    np.testing.assert_array_equal(img.pixels, px)
    np.testing.assert_array_equal(img.alpha, alpha)
    smooth = np.repeat(np.linspace(0, 1, 16, dtype=np.float32)[None, :, None], 16, axis=0).repeat(
        3, 2
    )
    lossy = read_image(write_image(tmp_path / "b.webp", smooth, bit_depth=16, quality=90))
    assert lossy.bit_depth == 8 and np.abs(lossy.pixels - smooth).mean() < 0.02


def test_values_are_clipped_and_rounded(tmp_path):
    px = np.array([[100.4, 100.6, -3.0, 400.0, np.nan]], np.float32)[:, :, None] / 255
    img = read_image(write_image(tmp_path / "r.png", px))
    np.testing.assert_array_equal(np.rint(img.pixels[0, :, 0] * 255), [100, 101, 0, 255, 0])


def test_write_accepts_tensors_and_integers(tmp_path):
    px = quantised((5, 6, 3), 8)
    t = torch.from_numpy(px).permute(2, 0, 1)
    for i, image in enumerate([t, t[None], (px * 255).round().astype(np.uint8)]):
        img = read_image(write_image(tmp_path / f"t{i}.png", image))
        np.testing.assert_array_equal(img.pixels, px)
    img = read_image(write_image(tmp_path / "g.png", t[0]))
    assert img.is_gray
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.png", np.zeros((5, 6, 4)))
    with pytest.raises(ValueError):
        write_image(tmp_path / "bad.png", torch.zeros(2, 3, 5, 6))


def test_like_supplies_alpha_bit_depth_and_image_file_input(tmp_path):
    px = quantised((7, 8, 3), 16)
    alpha = quantised((7, 8), 16)
    src = read_image(write_image(tmp_path / "src.png", px, alpha=alpha, bit_depth=16))
    out = read_image(write_image(tmp_path / "out.tif", src.pixels[:, :, ::-1].copy(), like=src))
    assert out.bit_depth == 16
    np.testing.assert_array_equal(out.alpha, alpha)
    np.testing.assert_array_equal(out.pixels, px[:, :, ::-1])
    again = read_image(write_image(tmp_path / "again.png", src))  # ImageFile is its own "like"
    np.testing.assert_array_equal(again.pixels, px)
    np.testing.assert_array_equal(again.alpha, alpha)
    assert again.bit_depth == 16
    eight = read_image(write_image(tmp_path / "eight.png", src, bit_depth=8))
    assert eight.bit_depth == 8
    with pytest.raises(ValueError):
        write_image(tmp_path / "x.png", np.zeros((3, 3)), like=src)  # alpha does not fit
    with pytest.raises(UserError):
        write_image(tmp_path / "x.png", np.zeros((3, 3)), bit_depth=12)
    with pytest.raises(UserError):
        write_image(tmp_path / "x.jpg", np.zeros((3, 3)), quality=0)


# ---- ImageFile ------------------------------------------------------------------------------


def test_image_file_tensor_and_with_pixels():
    px = quantised((4, 5, 3), 8)
    img = ImageFile(
        px, alpha=np.ones((4, 5), np.float32), bit_depth=16, exif=b"Exif\x00\x00x", format="TIFF"
    )
    t = img.to_tensor()
    assert t.shape == (1, 3, 4, 5) and t.dtype == torch.float32
    np.testing.assert_array_equal(t[0].permute(1, 2, 0).numpy(), px)
    for new in [t * 0.5, (t * 0.5)[0], px * 0.5]:
        other = img.with_pixels(new)
        assert other.pixels.shape == (4, 5, 3) and other.pixels.dtype == np.float32
        np.testing.assert_allclose(other.pixels, px * 0.5, atol=1e-7)
        assert other.bit_depth == 16 and other.exif == img.exif and other.format == "TIFF"
        assert other.alpha is not img.alpha and np.array_equal(other.alpha, img.alpha)
    gray = img.with_pixels(px[:, :, 0] * 2)
    assert gray.is_gray and gray.pixels.shape == (4, 5, 1) and gray.pixels.max() <= 1
    assert img.with_pixels(torch.zeros(1, 1, 4, 5)).is_gray
    assert not img.is_gray
    with pytest.raises(ValueError):
        img.with_pixels(np.zeros((3, 5)))


# ---- metadata -------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow(tmp_path, orientation):
    arr = RNG.integers(0, 256, (4, 6, 3)).astype(np.uint8)
    path = tmp_path / "o.png"
    Image.fromarray(arr).save(path, exif=make_exif(orientation))
    img = read_image(path)
    with Image.open(path) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(np.rint(img.pixels * 255).astype(np.uint8), expected)
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif.get(274) == 1 and exif.get(271) == "UnblurCam"


def test_jpeg_orientation_6_is_applied_and_reset(tmp_path):
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[:, :16] = 255  # white left half
    path = tmp_path / "rot.jpg"
    Image.fromarray(arr).save(path, exif=make_exif(6), quality=95)
    img = read_image(path)
    assert img.pixels.shape == (32, 16, 3)  # rotated 90 degrees clockwise
    assert img.pixels[:8].mean() > 0.9 and img.pixels[-8:].mean() < 0.1  # left half is now on top
    assert img.exif.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[274] == 1 and exif[271] == "UnblurCam"
    # written out and read again, it is not rotated a second time
    again = read_image(write_image(tmp_path / "out.jpg", img))
    assert again.pixels.shape == (32, 16, 3)
    # even EXIF put together by hand is written with the orientation reset
    hand = ImageFile(img.pixels, exif=make_exif(6).tobytes())
    with Image.open(write_image(tmp_path / "hand.png", hand)) as im:
        assert im.getexif()[274] == 1 and im.getexif()[271] == "UnblurCam"


@pytest.mark.parametrize(
    "ext,bits", [(".png", 8), (".png", 16), (".jpg", 8), (".tif", 8), (".webp", 8), (".tif", 16)]
)
def test_exif_and_icc_are_carried(tmp_path, ext, bits):
    icc = srgb_icc()
    src_path = tmp_path / "src.jpg"
    Image.fromarray(np.full((8, 12, 3), 128, np.uint8)).save(
        src_path, exif=make_exif(6), icc_profile=icc
    )
    src = read_image(src_path)
    assert src.icc_profile == icc
    out = write_image(tmp_path / f"out{ext}", src.pixels, like=src, bit_depth=bits)
    img = read_image(out)
    assert img.icc_profile == icc
    assert img.pixels.shape == (12, 8, 3)
    if ext == ".tif" and bits == 16:
        return  # tifffile writes the ICC profile but not EXIF (documented)
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif.get(271) == "UnblurCam"
    assert exif.get(274, 1) == 1
    assert exif.get_ifd(0x8769).get(0x9003) == "2024:05:06 07:08:09"


def test_icc_of_the_wrong_colour_space_is_not_written(tmp_path):
    src = ImageFile(np.full((4, 4, 3), 0.5, np.float32), icc_profile=srgb_icc())
    gray = read_image(write_image(tmp_path / "g.png", np.full((4, 4), 0.5), like=src))
    assert gray.icc_profile is None


def test_palette_images(tmp_path):
    index = np.array([[0, 1], [2, 1]], np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    im.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.pixels.shape == (2, 2, 3) and img.alpha is None and img.bit_depth == 8
    np.testing.assert_array_equal(img.pixels[0, 0], [1, 0, 0])
    np.testing.assert_array_equal(img.pixels[1, 0], [0, 0, 1])
    im.save(tmp_path / "pt.png", transparency=1)
    img = read_image(tmp_path / "pt.png")
    np.testing.assert_array_equal(img.alpha, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(img.pixels[1, 0], [0, 0, 1])


def test_cmyk_and_bilevel_are_converted(tmp_path):
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    img = read_image(tmp_path / "c.jpg")
    assert img.pixels.shape == (4, 5, 3) and img.icc_profile is None
    assert img.pixels[..., 0].mean() > 0.9 and img.pixels[..., 1:].mean() < 0.1  # red
    Image.new("1", (3, 2), 1).save(tmp_path / "b.png")
    b = read_image(tmp_path / "b.png")
    assert b.is_gray and np.all(b.pixels == 1)


# ---- bad input ------------------------------------------------------------------------------


def _png_bytes(shape=(64, 64, 3)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, shape).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_inputs_raise_user_error_naming_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    data = _png_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "folder.png").mkdir()
    cases = {
        "missing.png": "no such file",
        "folder.png": "folder",
        "notes.png": "not an image",
        "empty.png": "empty",
        "cut.png": "truncated",
        "cut.jpg": "truncated",
    }
    for name, words in cases.items():
        with pytest.raises(UserError) as info:
            read_image(tmp_path / name)
        msg = str(info.value)
        assert name in msg and words in msg and "\n" not in msg


def test_cut_16bit_png(tmp_path):
    out = write_image(tmp_path / "a.png", quantised((40, 40, 3), 16), bit_depth=16)
    data = out.read_bytes()
    out.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UserError, match="a.png"):
        read_image(out)


def test_pixel_limit_is_ours(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.png", np.zeros((5, 7)))
    with pytest.raises(UserError, match=r"a\.png.*35 pixels is over the limit of 34"):
        read_image(path, max_pixels=34)
    assert read_image(path, max_pixels=35).pixels.shape == (5, 7, 1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4)  # Pillow's limit does not apply ...
    assert read_image(path, max_pixels=None).pixels.shape == (5, 7, 1)
    assert Image.MAX_IMAGE_PIXELS == 4  # ... and is left as it was


# ---- writing safety -------------------------------------------------------------------------


def test_no_overwrite_unless_asked(tmp_path):
    path = write_image(tmp_path / "a.png", np.zeros((3, 3)))
    with pytest.raises(UserError, match="exists; pass --overwrite to replace it"):
        write_image(path, np.ones((3, 3)))
    assert read_image(path).pixels.max() == 0
    write_image(path, np.ones((3, 3)), overwrite=True)
    assert read_image(path).pixels.min() == 1
    assert folder_names(tmp_path) == ["a.png"]


def test_refuses_to_write_onto_an_input(tmp_path):
    src = write_image(tmp_path / "in.png", np.zeros((3, 3)))
    alias = tmp_path / "sub" / ".." / "in.png"
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="one of the inputs"):
        write_image(alias, np.ones((3, 3)), inputs=[str(src)])
    write_image(alias, np.ones((3, 3)), inputs=[src], overwrite=True)
    assert read_image(src).pixels.min() == 1


def test_refuses_missing_folder_and_unknown_extension(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        write_image(tmp_path / "nope" / "a.png", np.zeros((3, 3)))
    with pytest.raises(UserError, match="unknown image extension"):
        write_image(tmp_path / "a.bmp", np.zeros((3, 3)))
    (tmp_path / "d.png").mkdir()
    with pytest.raises(UserError, match="folder"):
        write_image(tmp_path / "d.png", np.zeros((3, 3)), overwrite=True)
    assert folder_names(tmp_path) == ["d.png"]


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.tif", np.zeros((3, 3, 3)), bit_depth=16)
    assert folder_names(tmp_path) == ["a.tif"]
    old = path.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask

    def broken(f, *args):
        f.write(b"half a file")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(uio, "_save_with_pillow", broken)
    with pytest.raises(RuntimeError):
        write_image(path, np.ones((3, 3)), overwrite=True)
    with pytest.raises(RuntimeError):
        write_image(tmp_path / "b.png", np.ones((3, 3)))
    assert folder_names(tmp_path) == ["a.tif"]
    assert path.read_bytes() == old


# ---- folders --------------------------------------------------------------------------------


def test_list_images(tmp_path):
    for name in ["b.JPG", "a.png", "c.tiff", "notes.txt", ".hidden.png", "k.npy"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "c.tiff"]
    assert ".png" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    with pytest.raises(UserError, match="no such folder"):
        list_images(tmp_path / "missing")


# ---- kernels --------------------------------------------------------------------------------


def test_kernel_npy_round_trip(tmp_path):
    k = RNG.random((7, 5))
    path = write_kernel(tmp_path / "k.npy", k)
    np.testing.assert_array_equal(np.load(path), k)  # written exactly as given
    back = read_kernel(path)
    assert back.dtype == np.float64 and back.shape == (7, 5)
    np.testing.assert_allclose(back, k / k.sum(), rtol=1e-15)
    with pytest.raises(UserError, match="exists"):
        write_kernel(path, k)
    write_kernel(path, torch.from_numpy(2 * k)[None, None], overwrite=True)
    np.testing.assert_array_equal(np.load(path), 2 * k)
    assert folder_names(tmp_path) == ["k.npy"]


def test_kernel_png_round_trip(tmp_path):
    k = np.zeros((5, 5))
    k[2, 1:4] = [1.0, 2.0, 1.0]
    path = write_kernel(tmp_path / "k.png", k)
    with Image.open(path) as im:
        assert im.mode == "L" and np.asarray(im).max() == 255
    np.testing.assert_allclose(read_kernel(path), k / k.sum(), atol=2e-3)
    big = write_kernel(tmp_path / "big.png", k, upscale=4)
    with Image.open(big) as im:
        assert im.size == (20, 20)
    k16 = write_image(tmp_path / "k16.png", k / 2, bit_depth=16)
    np.testing.assert_allclose(read_kernel(k16), k / k.sum(), atol=1e-5)
    with pytest.raises(UserError):
        write_kernel(tmp_path / "k.txt", k)
    with pytest.raises(UserError):
        write_kernel(tmp_path / "u.png", k, upscale=0)


def test_bad_kernels(tmp_path):
    good = np.ones((3, 3))
    tiny_negative = good.copy()
    tiny_negative[0, 0] = -1e-9
    np.testing.assert_allclose(
        read_kernel(write_kernel(tmp_path / "t.npy", tiny_negative)).min(), 0
    )
    bad = {
        "nan.npy": (np.where(np.eye(3) > 0, np.nan, 1.0), "NaN"),
        "neg.npy": (good - 2 * np.eye(3), "negative"),
        "zero.npy": (np.zeros((3, 3)), "zero"),
        "cube.npy": (np.ones((3, 3, 3)), "2-D"),
        "text.npy": (np.array(["a", "b"]), "numeric"),
    }
    for name, (k, words) in bad.items():
        np.save(tmp_path / name, k)
        with pytest.raises(UserError, match=words) as info:
            read_kernel(tmp_path / name)
        assert name in str(info.value)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    write_image(tmp_path / "black.png", np.zeros((3, 3)))
    for name in ["junk.npy", "black.png", "missing.npy"]:
        with pytest.raises(UserError, match=name.replace(".", r"\.")):
            read_kernel(tmp_path / name)


def test_load_kernels(tmp_path):
    write_kernel(tmp_path / "b.npy", np.ones((3, 3)))
    write_kernel(tmp_path / "a.png", np.eye(5))
    write_kernel(tmp_path / "c.npy", np.eye(3))
    (tmp_path / "readme.txt").write_text("kernels")
    kernels = load_kernels(tmp_path)
    assert [name for name, _ in kernels] == ["a", "b", "c"]
    for _, k in kernels:
        assert k.dtype == np.float64 and abs(k.sum() - 1) < 1e-12
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_kernels(empty) == []
    with pytest.raises(UserError):
        load_kernels(tmp_path / "missing")
