"""Reading and writing image and kernel files.

This module is the edge of the library: it is the only place that touches image files, and it
speaks numpy (and Pillow) rather than torch. Everything it reads comes back as float arrays in
``[0, 1]``; everything it writes is clipped to ``[0, 1]`` and rounded to 8 or 16 bits.

Images
------
:func:`read_image` returns an :class:`ImageFile`: the colour channels (gray or RGB) as a float32
``(H, W, C)`` array, the alpha channel kept apart and untouched, and the metadata needed to write
a result "like" the input: bit depth, EXIF and ICC profile. The EXIF orientation is applied on
reading (so the pixels are upright) and the orientation tag is reset to 1 in the kept EXIF, so a
written result is not rotated twice by a viewer.

:func:`write_image` writes PNG, JPEG, TIFF or WebP (chosen by the file extension), atomically
(a temporary file in the target folder, then :func:`os.replace`), and refuses to overwrite
files, in particular the caller's inputs, unless asked to.

16-bit colour
-------------
Pillow holds 16 bits per sample only for gray images. 16-bit gray PNG/TIFF are read and written
by Pillow. For 16-bit colour (and gray + alpha):

* PNG is read exactly by decoding the file twice with Pillow, the second time with the two bytes
  of every sample swapped in the (still filtered) data stream: PNG filters work byte by byte
  with a stride of whole pixels, so swapping the bytes of each sample commutes with un-filtering
  and Pillow's 16-to-8-bit reduction (which keeps the high byte) then yields the low byte.
  It is written by a small PNG encoder in this module (``zlib`` + numpy filters).
* TIFF is read with ``tifffile`` (installed with scikit-image) where it can decode the
  compression, else by decoding twice with Pillow with the byte order of the raw mode swapped
  (LZW, JPEG ...). It is written with ``tifffile`` (Deflate); such files keep the ICC profile but
  not the EXIF, which Pillow alone can write into a TIFF.

Kernels
-------
:func:`read_kernel` reads ``.npy`` (exact) or an image file (PNG ...) and returns a
non-negative float64 ``(h, w)`` array summing to one; :func:`write_kernel` writes ``.npy``
(exact float64) or a viewable 8-bit ``.png``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import stat
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageCms, UnidentifiedImageError

from unblur._tensor import kernel_to_numpy, to_bchw
from unblur.errors import UserError

__all__ = [
    "IMAGE_EXTENSIONS",
    "KERNEL_EXTENSIONS",
    "ImageFile",
    "list_images",
    "load_kernels",
    "read_image",
    "read_kernel",
    "write_image",
    "write_kernel",
]

#: Extensions :func:`write_image` understands (and :func:`list_images` lists), lower case.
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")

#: Extensions :func:`load_kernels` picks up, lower case.
KERNEL_EXTENSIONS: tuple[str, ...] = (".npy", ".png")

_FORMAT_BY_EXTENSION = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
# Descriptive TIFF tags worth carrying from a TIFF's own directory into the EXIF we keep
# (the structural ones -- size, strips, compression ... -- describe the file, not the photo).
_TIFF_EXIF_TAGS = (270, 271, 272, 274, 282, 283, 296, 305, 306, 315, 33432)
_ICC_TAG = 34675
_JPEG_MAX_EXIF = 65533  # an APP1 segment holds at most 64 KiB

# Pillow's own decompression-bomb limit is a process-wide global; it is switched off (under a
# lock) while we open a file, and our ``max_pixels`` is applied instead.
_PIL_LIMIT_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# ImageFile
# --------------------------------------------------------------------------------------------


@dataclass
class ImageFile:
    """An image read from a file: colour pixels, alpha and the metadata to write it back.

    Attributes
    ----------
    pixels : numpy.ndarray
        float32 ``(H, W, C)`` with ``C`` 1 (gray) or 3 (RGB), values in ``[0, 1]``. Colour
        channels only: alpha is kept in :attr:`alpha`.
    alpha : numpy.ndarray or None
        float32 ``(H, W)`` in ``[0, 1]`` (straight, not premultiplied), or None.
    bit_depth : int
        8 or 16: the precision of the source samples (16 for anything above 8 bits).
    exif : bytes or None
        Raw EXIF block starting with ``b"Exif\\x00\\x00"`` (as in a JPEG APP1 segment), with
        the orientation tag reset to 1 since :attr:`pixels` are already upright.
    icc_profile : bytes or None
        Embedded ICC profile, if any.
    format : str
        Pillow's format name of the source (``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"WEBP"`` ...).
    path : pathlib.Path or None
        Where the image was read from.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    exif: bytes | None = None
    icc_profile: bytes | None = None
    format: str = "PNG"
    path: Path | None = None

    @property
    def is_gray(self) -> bool:
        """True when the image has a single colour channel."""
        return self.pixels.shape[2] == 1

    @property
    def has_alpha(self) -> bool:
        """True when the image carries an alpha channel."""
        return self.alpha is not None

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.pixels.shape[1])

    def to_tensor(self) -> torch.Tensor:
        """The colour pixels as a float32 tensor of shape ``(1, C, H, W)``."""
        t, _ = to_bchw(self.pixels)
        return t

    def with_pixels(self, new_pixels) -> ImageFile:
        """A copy carrying new colour data and the same alpha and metadata.

        Parameters
        ----------
        new_pixels : numpy.ndarray or torch.Tensor
            ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` array, or a ``(1, C, H, W)`` /
            ``(C, H, W)`` tensor with ``C`` 1 or 3, of the same height and width when the image
            has an alpha channel. Values are clipped to ``[0, 1]``.

        Returns
        -------
        ImageFile
        """
        pixels = _as_hwc(new_pixels)
        if self.alpha is not None and pixels.shape[:2] != self.alpha.shape:
            raise ValueError(
                f"new pixels of size {pixels.shape[:2]} do not match the alpha channel "
                f"of size {self.alpha.shape}"
            )
        alpha = None if self.alpha is None else self.alpha.copy()
        return dataclasses.replace(self, pixels=pixels, alpha=alpha)


def _as_hwc(image) -> np.ndarray:
    """Convert an array/tensor image to float32 ``(H, W, C)``, C in {1, 3}, clipped to [0, 1]."""
    if isinstance(image, ImageFile):
        return image.pixels
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] != 1:
        raise ValueError(f"expected a single image, got a batch of shape {tuple(image.shape)}")
    t, _ = to_bchw(image.detach() if isinstance(image, torch.Tensor) else image)
    if t.shape[1] not in (1, 3):
        raise ValueError(
            f"expected 1 (gray) or 3 (RGB) colour channels, got {t.shape[1]}; "
            "numpy images are (H, W) or (H, W, C), tensors (C, H, W) or (1, C, H, W), "
            "and alpha is passed separately"
        )
    a = t[0].detach().to("cpu").permute(1, 2, 0).numpy()
    return _clip01(a)


def _as_alpha(alpha, shape: tuple[int, int]) -> np.ndarray:
    """Convert an alpha array/tensor to float32 ``(H, W)`` in [0, 1] and check its size."""
    if isinstance(alpha, torch.Tensor):
        a = alpha.detach().to("cpu")
        a = a.to(torch.float64) / _int_max_torch(a.dtype) if not a.is_floating_point() else a
        a = a.to(torch.float32).numpy()
    else:
        a = np.asarray(alpha)
        if a.dtype.kind in "ui":
            a = a.astype(np.float64) / np.iinfo(a.dtype).max
        elif a.dtype.kind == "b":
            a = a.astype(np.float32)
    a = np.squeeze(a)
    if a.shape != tuple(shape):
        raise ValueError(
            f"alpha of shape {np.shape(alpha)} does not match an image of size {shape}"
        )
    return _clip01(a)


def _int_max_torch(dtype: torch.dtype) -> float:
    return 1.0 if dtype == torch.bool else float(torch.iinfo(dtype).max)


def _clip01(a: np.ndarray) -> np.ndarray:
    a = np.nan_to_num(np.asarray(a, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(a, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Reading images
# --------------------------------------------------------------------------------------------


def read_image(path, *, max_pixels: int | None = 250_000_000) -> ImageFile:
    """Read an image file.

    Parameters
    ----------
    path : str or os.PathLike
        Any file Pillow reads (PNG, JPEG, TIFF, WebP, BMP ...); 8- and 16-bit, gray, gray +
        alpha, RGB, RGBA, palette (converted to RGB/RGBA), CMYK (converted to RGB, through its
        ICC profile when it has one). Multi-frame files give their first frame.
    max_pixels : int or None, optional
        Refuse images with more pixels than this (a guard against decompression bombs and
        out-of-memory); None disables the check. Pillow's own limit is not applied.

    Returns
    -------
    ImageFile
        Upright pixels (the EXIF orientation applied) in ``[0, 1]``, alpha apart, metadata.

    Raises
    ------
    UserError
        Missing file, a folder, an empty file, not an image, a truncated or corrupt image, an
        image over ``max_pixels``, an unsupported pixel format; the message names the file.
    """
    p = Path(path)
    data = _read_bytes(p, "image")
    try:
        with _pillow_limit_off():
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if _is_tiff(data):  # e.g. 16-bit gray + alpha, float RGB: Pillow has no mode for them
            return _read_tiff_with_tifffile(p, data, max_pixels)
        raise UserError(
            f"cannot read '{p}': not an image, or a format Pillow cannot read"
        ) from None
    except Image.DecompressionBombError as e:  # only if another thread restored the limit
        raise UserError(f"cannot read '{p}': {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise UserError(f"cannot read '{p}': corrupt image header ({e})") from None
    with im:
        _check_size(p, im.size, max_pixels)
        fmt = im.format or "unknown"
        icc = im.info.get("icc_profile") or None
        decoded = _read_tiff_16bit_colour(p, data, im) if fmt == "TIFF" else None
        if decoded is not None:
            arr, bit_depth = decoded
        else:
            try:
                im.load()
            except Exception as e:  # noqa: BLE001 -- any decoder failure means a bad file
                raise UserError(
                    f"cannot read '{p}': truncated or corrupt image ({_brief(e)})"
                ) from None
            arr, bit_depth, keep_icc = _pil_pixels(p, im, data)
            icc = icc if keep_icc else None
        try:
            exif_obj = im.getexif()
            orientation = exif_obj.get(_ORIENTATION, 1)
        except Exception:  # noqa: BLE001 -- broken EXIF must not make the image unreadable
            exif_obj, orientation = None, 1
        exif = _kept_exif(im, fmt, exif_obj, orientation)
    arr = _apply_orientation(arr, orientation)
    return _image_file(arr, bit_depth, exif, icc, fmt, p)


def _read_bytes(p: Path, what: str) -> bytes:
    """Read a whole file, turning the usual failures into one-line :class:`UserError`."""
    if p.is_dir():
        raise UserError(f"cannot read {what} '{p}': it is a folder, not a file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"cannot read {what} '{p}': no such file") from None
    except PermissionError:
        raise UserError(f"cannot read {what} '{p}': permission denied") from None
    except OSError as e:
        raise UserError(f"cannot read {what} '{p}': {e.strerror or e}") from None
    if not data:
        raise UserError(f"cannot read {what} '{p}': the file is empty (0 bytes)")
    return data


@contextmanager
def _pillow_limit_off():
    with _PIL_LIMIT_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _check_size(p: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise UserError(f"cannot read '{p}': the image has no pixels ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise UserError(
            f"cannot read '{p}': {w}x{h} = {w * h:,} pixels is over the limit of "
            f"{max_pixels:,} (raise max_pixels to allow it)"
        )


def _brief(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _image_file(arr, bit_depth, exif, icc, fmt, p) -> ImageFile:
    """Split an ``(H, W, K)`` array (K = 1, 2, 3, 4) into float colour + alpha."""
    if arr.dtype.kind in "ui":
        scale = float(np.iinfo(arr.dtype).max)
        f = arr.astype(np.float32) / np.float32(scale)
    else:
        f = np.clip(np.nan_to_num(arr.astype(np.float32)), 0.0, 1.0)
    k = f.shape[2]
    colour = 1 if k in (1, 2) else 3
    pixels = np.ascontiguousarray(f[:, :, :colour])
    alpha = np.ascontiguousarray(f[:, :, colour]) if k in (2, 4) else None
    if icc is not None and not _icc_matches(icc, colour):
        icc = None
    return ImageFile(pixels, alpha, bit_depth, exif, icc, fmt, p)


def _pil_pixels(p: Path, im: Image.Image, data: bytes):
    """Pixels of a loaded Pillow image as an ``(H, W, K)`` integer/float array.

    Returns the array, its bit depth, and whether the embedded ICC profile still describes it
    (not after a conversion from CMYK, Lab, YCbCr or HSV).
    """
    mode = im.mode
    keep_icc = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "1":
            im = im.convert("L")
        elif mode in ("P", "PA"):
            im = im.convert("RGBA" if (mode == "PA" or im.has_transparency_data) else "RGB")
        elif mode in ("L", "RGB") and "transparency" in im.info and _png16_colour(data) is None:
            im = im.convert("LA" if mode == "L" else "RGBA")
        elif mode == "La":
            im = im.convert("LA")
        elif mode == "RGBa":
            im = im.convert("RGBA")
        elif mode == "RGBX":
            im = im.convert("RGB")
        elif mode == "CMYK":
            im = _cmyk_to_rgb(im)
            keep_icc = False
        elif mode in ("YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
            keep_icc = False
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16)[:, :, None], 16, keep_icc
    if mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise UserError(f"cannot read '{p}': 32-bit integer images are not supported")
        return a.astype(np.uint16)[:, :, None], 16, keep_icc
    if mode == "F":
        return np.asarray(im, dtype=np.float32)[:, :, None], 16, keep_icc
    if mode not in ("L", "LA", "RGB", "RGBA"):
        raise UserError(f"cannot read '{p}': unsupported pixel format {mode!r}")
    arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    ihdr = _png16_colour(data)
    if ihdr is not None:
        try:
            low = _png16_low_bytes(data, ihdr)
        except Exception as e:  # noqa: BLE001
            raise UserError(
                f"cannot read '{p}': truncated or corrupt image ({_brief(e)})"
            ) from None
        if low.ndim == 2:
            low = low[:, :, None]
        if ihdr[3] == 2 and arr.shape[2] == 4:  # Pillow shows 16-bit gray+alpha as RGBA
            arr, low = arr[:, :, [0, 3]], low[:, :, [0, 3]]
        if low.shape != arr.shape:
            raise UserError(f"cannot read '{p}': cannot decode this 16-bit PNG")
        return (arr.astype(np.uint16) << 8) | low.astype(np.uint16), 16, keep_icc
    return arr, 8, keep_icc


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    """CMYK to RGB, through the embedded profile when there is one (then tagged sRGB)."""
    icc = im.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(
                im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except Exception:  # noqa: BLE001 -- a broken profile: fall back to the plain formula
            out = None
        if out is not None:
            return out  # now sRGB, which untagged RGB means anyway
    return im.convert("RGB")


def _icc_matches(icc: bytes, channels: int) -> bool:
    """Whether an ICC profile's data colour space fits gray (1) or RGB (3) pixels."""
    if len(icc) < 20:
        return False
    space = icc[16:20]
    return space == (b"GRAY" if channels == 1 else b"RGB ")


# ---- EXIF ---------------------------------------------------------------------------------


def _kept_exif(im: Image.Image, fmt: str, exif_obj, orientation) -> bytes | None:
    """The EXIF block to keep, with a ``Exif\\0\\0`` header and the orientation reset to 1."""
    try:
        if fmt == "TIFF":
            raw = _exif_from_tiff_tags(exif_obj) if exif_obj is not None else None
        else:
            raw = im.info.get("exif")
            if isinstance(raw, Image.Exif):
                raw = raw.tobytes()
        if not raw:
            return None
        if not raw.startswith(_EXIF_HEADER):
            raw = _EXIF_HEADER + raw
        if orientation not in (None, 1):
            raw = _reset_orientation(raw)
        return raw
    except Exception:  # noqa: BLE001 -- metadata is best effort
        return None


def _exif_from_tiff_tags(src: Image.Exif) -> bytes | None:
    out = Image.Exif()
    for tag in _TIFF_EXIF_TAGS:
        if tag in src:
            out[tag] = src[tag]
    for tag in (_EXIF_IFD, _GPS_IFD):
        if tag in src:
            sub = src.get_ifd(tag)
            if sub:
                out[tag] = dict(sub)
    if not set(out) - {282, 283, 296}:  # resolution alone is file structure, not photo EXIF
        return None
    return out.tobytes()


def _reset_orientation(raw: bytes) -> bytes:
    """Set the orientation tag of an EXIF block to 1, touching no other byte when possible."""
    body = raw[len(_EXIF_HEADER) :]
    try:
        endian = {b"II": "<", b"MM": ">"}[body[:2]]
        (ifd0,) = struct.unpack(endian + "I", body[4:8])
        (count,) = struct.unpack(endian + "H", body[ifd0 : ifd0 + 2])
        for i in range(count):
            off = ifd0 + 2 + 12 * i
            tag, typ, n = struct.unpack(endian + "HHI", body[off : off + 8])
            if tag == _ORIENTATION:
                if typ == 3 and n == 1:
                    body = body[: off + 8] + struct.pack(endian + "HH", 1, 0) + body[off + 12 :]
                    return _EXIF_HEADER + body
                break
        else:
            return raw  # no orientation tag: nothing to reset
    except (KeyError, struct.error):
        pass
    exif = Image.Exif()  # unusual layout: let Pillow rewrite the block
    exif.load(raw)
    exif[_ORIENTATION] = 1
    return exif.tobytes()


def _apply_orientation(arr: np.ndarray, orientation) -> np.ndarray:
    """Make pixels upright for an EXIF orientation (same result as ``ImageOps.exif_transpose``)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation if isinstance(orientation, int) else 1)
    return arr if op is None else np.ascontiguousarray(op(arr))


# ---- 16-bit colour PNG ----------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def _png16_colour(data: bytes):
    """The IHDR fields of a 16-bit PNG that Pillow reduces to 8 bits (colour or gray+alpha)."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 16 or ctype not in (2, 4, 6):
        return None
    return data[16:29], width, height, _PNG_CHANNELS[ctype], interlace


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_idat(data: bytes) -> bytes:
    """Concatenated IDAT payload of a PNG."""
    pos, parts = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            raise ValueError("truncated PNG chunk")
        if kind == b"IDAT":
            parts.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    return b"".join(parts)


def _png_passes(width: int, height: int, interlace: int) -> list[tuple[int, int]]:
    """(width, height) of the sub-images stored in a PNG (1 or the 7 Adam7 passes)."""
    if not interlace:
        return [(width, height)]
    out = []
    for x0, y0, dx, dy in _ADAM7:
        w = (width - x0 + dx - 1) // dx if width > x0 else 0
        h = (height - y0 + dy - 1) // dy if height > y0 else 0
        if w and h:
            out.append((w, h))
    return out


def _png16_low_bytes(data: bytes, ihdr) -> np.ndarray:
    """Low bytes of every sample of a 16-bit PNG, decoded by Pillow from a byte-swapped copy."""
    header, width, height, channels, interlace = ihdr
    bpp = 2 * channels
    passes = _png_passes(width, height, interlace)
    expected = sum(h * (1 + w * bpp) for w, h in passes)
    raw = zlib.decompressobj().decompress(_png_idat(data), expected)
    if len(raw) < expected:
        raise ValueError("image data is truncated")
    buf = np.frombuffer(raw, np.uint8).copy()
    pos = 0
    for w, h in passes:
        n = h * (1 + w * bpp)
        rows = buf[pos : pos + n].reshape(h, 1 + w * bpp)
        samples = rows[:, 1:].reshape(h, w * channels, 2)
        rows[:, 1:] = samples[:, :, ::-1].reshape(h, w * bpp)
        pos += n
    png = (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(buf.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )
    with _pillow_limit_off():
        swapped = Image.open(io.BytesIO(png))
    with swapped:
        swapped.load()
        return np.asarray(swapped)


def _encode_png16(arr: np.ndarray, icc: bytes | None, exif: bytes | None, level: int = 6) -> bytes:
    """Encode a uint16 ``(H, W, K)`` array (K = 1, 2, 3, 4) as a 16-bit PNG."""
    h, w, k = arr.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[k]
    raw = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w * k * 2)
    filtered = _png_filter(raw, 2 * k)
    out = [_PNG_SIGNATURE, _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))]
    if icc:
        out.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        out.append(_png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER)))
    comp = zlib.compressobj(level)
    idat = comp.compress(filtered.tobytes()) + comp.flush()
    step = 1 << 20
    for i in range(0, max(len(idat), 1), step):
        out.append(_png_chunk(b"IDAT", idat[i : i + step]))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def _png_filter(raw: np.ndarray, bpp: int, block: int = 64) -> np.ndarray:
    """PNG-filter byte rows, picking per row the filter with the least sum of |signed bytes|."""
    h, n = raw.shape
    out = np.empty((h, n + 1), np.uint8)
    prev = np.zeros(n, np.int16)
    for r0 in range(0, h, block):
        x = raw[r0 : r0 + block].astype(np.int16)
        up = np.vstack([prev[None], x[:-1]])
        left = np.zeros_like(x)
        left[:, bpp:] = x[:, :-bpp]
        upleft = np.zeros_like(x)
        upleft[:, bpp:] = up[:, :-bpp]
        p = left + up - upleft
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        cands = np.stack([x, x - left, x - up, x - ((left + up) >> 1), x - paeth]) & 0xFF
        cost = np.minimum(cands, 256 - cands).sum(axis=2)
        best = np.argmin(cost, axis=0)
        rows = np.arange(x.shape[0])
        out[r0 : r0 + x.shape[0], 0] = best
        out[r0 : r0 + x.shape[0], 1:] = cands[best, rows]
        prev = x[-1]
    return out


# ---- TIFF -----------------------------------------------------------------------------------


def _is_tiff(data: bytes) -> bool:
    return data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _tiff_needs_16bit_colour(im: Image.Image) -> bool:
    """A TIFF with more than 8 bits per sample that Pillow would reduce to 8 bits."""
    if im.mode not in ("RGB", "RGBA", "RGBX", "LA", "CMYK", "RGBa", "La"):
        return False
    bits = getattr(im, "tag_v2", {}).get(258, 8)
    bits = max(bits) if isinstance(bits, (tuple, list)) else bits
    return bits > 8


def _read_tiff_16bit_colour(p: Path, data: bytes, im: Image.Image):
    """16-bit colour TIFF pixels that Pillow alone would cut to 8 bits, or None.

    Tries tifffile, then Pillow twice with the byte order of the raw mode swapped. None means
    "not such a TIFF, or neither way works": the caller then decodes with Pillow (8 bits).
    """
    if not _tiff_needs_16bit_colour(im):
        return None
    try:
        arr, _, _ = _tifffile_pixels(data)
    except Exception:  # noqa: BLE001 -- e.g. LZW without imagecodecs: try Pillow below
        arr = None
    if arr is not None:
        return arr, 16
    if im.mode not in ("RGB", "RGBA"):
        return None
    try:
        high = _pillow_decode(data, swap=False)
        low = _pillow_decode(data, swap=True)
    except Exception as e:  # noqa: BLE001
        if isinstance(e, ValueError) and "raw mode" in str(e):
            return None
        raise UserError(f"cannot read '{p}': truncated or corrupt image ({_brief(e)})") from None
    if high.shape != low.shape:
        return None
    return (high.astype(np.uint16) << 8) | low.astype(np.uint16), 16


def _pillow_decode(data: bytes, swap: bool) -> np.ndarray:
    """Decode a TIFF with Pillow, optionally swapping the byte order of its 16-bit raw mode."""
    native = "L" if sys.byteorder == "little" else "B"
    flip = {"L": "B", "B": "L", "N": "B" if native == "L" else "L"}
    with _pillow_limit_off():
        im = Image.open(io.BytesIO(data))
    with im:
        if swap:
            tiles = []
            for tile in im.tile:
                args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
                raw = args[0]
                if not (isinstance(raw, str) and ";16" in raw and raw[-1] in flip):
                    raise ValueError(f"unexpected raw mode {raw!r}")
                new = (raw[:-1] + flip[raw[-1]],) + args[1:]
                tiles.append(tile._replace(args=new if isinstance(tile.args, tuple) else new[0]))
            im.tile = tiles
        im.load()
        return np.asarray(im)


def _tifffile_pixels(data: bytes):
    """First page of a TIFF through tifffile: ``(H, W, K)`` array, orientation, ICC."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        page = tf.pages[0]
        arr = page.asarray()
        axes = page.axes
        photometric = int(page.photometric)
        extrasamples = tuple(int(e) for e in (page.extrasamples or ()))
        tags = page.tags
        orientation = int(tags[274].value) if 274 in tags else 1
        icc = bytes(tags[_ICC_TAG].value) if _ICC_TAG in tags else None
    # keep Y, X and samples
    arr = np.asarray(arr)
    keep = [a for a in axes if a in "YXS"]
    while arr.ndim > len(keep):  # leading length-1 axes (pages, depth ...)
        arr = arr[0]
        axes = axes[1:]
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
    else:
        arr = arr[:, :, None]
    if photometric not in (0, 1, 2):  # min-is-white, min-is-black, RGB
        raise ValueError(f"unsupported TIFF photometric interpretation {photometric}")
    colour = 3 if photometric == 2 else 1
    if arr.shape[2] < colour:
        raise ValueError("TIFF has fewer samples than its colour model needs")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8) * 255
    if arr.dtype.kind == "i":
        arr = np.clip(arr, 0, None).astype(arr.dtype.str.replace("i", "u"))
    if photometric == 0:
        arr = arr.copy()
        if arr.dtype.kind == "u":
            arr[:, :, 0] = np.iinfo(arr.dtype).max - arr[:, :, 0]
        else:
            arr[:, :, 0] = 1.0 - arr[:, :, 0]
    out = arr[:, :, :colour]
    if extrasamples and extrasamples[0] in (1, 2) and arr.shape[2] > colour:
        alpha = arr[:, :, colour : colour + 1]
        if extrasamples[0] == 1:  # associated (premultiplied) alpha: un-premultiply
            f = out.astype(np.float64)
            a = alpha.astype(np.float64)
            top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind == "u" else 1.0
            f = np.where(a > 0, np.clip(f * top / np.maximum(a, 1e-12), 0, top), 0)
            out = f.astype(arr.dtype) if arr.dtype.kind == "f" else np.rint(f).astype(arr.dtype)
        out = np.concatenate([out, alpha], axis=2)
    if out.dtype.kind == "u" and out.dtype.itemsize > 2:
        out = (out.astype(np.float64) / np.iinfo(out.dtype).max).astype(np.float32)
    return out, orientation, icc


def _read_tiff_with_tifffile(p: Path, data: bytes, max_pixels: int | None) -> ImageFile:
    try:
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tf:
            page = tf.pages[0]
            _check_size(p, (int(page.imagewidth), int(page.imagelength)), max_pixels)
        arr, orientation, icc = _tifffile_pixels(data)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UserError(
            f"cannot read '{p}': truncated, corrupt or unsupported TIFF ({_brief(e)})"
        ) from None
    bit_depth = 8 if arr.dtype == np.uint8 else 16
    arr = _apply_orientation(arr, orientation)
    return _image_file(arr, bit_depth, None, icc, "TIFF", p)


# --------------------------------------------------------------------------------------------
# Writing images
# --------------------------------------------------------------------------------------------


def write_image(
    path,
    image,
    *,
    like: ImageFile | None = None,
    alpha=None,
    bit_depth: int | None = None,
    overwrite: bool = False,
    quality: int = 95,
    inputs: Iterable = (),
) -> Path:
    """Write an image file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file; its extension picks the format: ``.png``, ``.jpg``/``.jpeg``,
        ``.tif``/``.tiff``, ``.webp``.
    image : numpy.ndarray, torch.Tensor or ImageFile
        ``(H, W)`` / ``(H, W, C)`` array (float in ``[0, 1]``; integer arrays are scaled by their
        dtype's maximum) or ``(C, H, W)`` / ``(1, C, H, W)`` tensor, ``C`` 1 or 3; or an
        :class:`ImageFile`, which then also serves as ``like`` when ``like`` is not given.
        Values are clipped to ``[0, 1]`` (NaN becomes 0) and rounded to the nearest level.
    like : ImageFile, optional
        Source of the defaults: bit depth, alpha, EXIF and ICC profile.
    alpha : array or tensor, optional
        ``(H, W)`` alpha in ``[0, 1]``; defaults to ``like.alpha``. Written to PNG, TIFF and
        WebP, dropped for JPEG.
    bit_depth : {8, 16}, optional
        Defaults to ``like.bit_depth``, else 8. 16 bits are kept for PNG and TIFF and silently
        reduced to 8 for JPEG and WebP.
    overwrite : bool, optional
        Replace an existing file. Without it an existing target, and in particular one of
        ``inputs``, is refused.
    quality : int, optional
        JPEG / WebP quality, 1 to 100 (WebP at 100 is lossless). JPEG at 90 or more is written
        without chroma subsampling.
    inputs : iterable of path, optional
        The caller's input files; writing onto one of them is refused unless ``overwrite``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    UserError
        Unknown extension, missing folder, existing target without ``overwrite``, target is one
        of ``inputs``, bad ``quality`` / ``bit_depth``, or an OS error while writing.

    Notes
    -----
    EXIF and ICC from ``like`` are written to every format (an ICC profile only when its
    colour space fits the written pixels), except that 16-bit colour TIFF (written with
    ``tifffile``) gets the ICC profile but no EXIF. WebP has no gray mode: gray images are
    written (and read back) as RGB. The data goes to a hidden temporary file in
    the target folder that replaces the target only once complete; it is removed on failure.
    """
    p = Path(path)
    fmt = _FORMAT_BY_EXTENSION.get(p.suffix.lower())
    if fmt is None:
        raise UserError(
            f"cannot write '{p}': unknown image extension {p.suffix or '(none)'!r}; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    _check_target(p, overwrite, inputs)
    if isinstance(image, ImageFile) and like is None:
        like = image
    pixels = _as_hwc(image)
    h, w = pixels.shape[:2]
    if alpha is None and like is not None and like.alpha is not None:
        alpha = like.alpha
    alpha_arr = None if alpha is None else _as_alpha(alpha, (h, w))
    depth = bit_depth if bit_depth is not None else (like.bit_depth if like is not None else 8)
    if depth not in (8, 16):
        raise UserError(f"cannot write '{p}': bit depth must be 8 or 16, got {depth}")
    if not (isinstance(quality, (int, np.integer)) and 1 <= quality <= 100):
        raise UserError(
            f"cannot write '{p}': quality must be an integer from 1 to 100, got {quality!r}"
        )
    if fmt in ("JPEG", "WEBP"):
        depth = 8
    if fmt == "JPEG":
        alpha_arr = None
    exif = like.exif if like is not None else None
    if exif:
        if not exif.startswith(_EXIF_HEADER):
            exif = _EXIF_HEADER + exif
        with suppress(Exception):  # unparsable EXIF is written as it is
            exif = _reset_orientation(exif)  # the pixels are upright: no viewer may rotate them
    channels = pixels.shape[2]
    icc = like.icc_profile if like is not None else None
    if icc and not _icc_matches(icc, 1 if channels == 1 and fmt != "WEBP" else 3):
        icc = None

    top = 65535 if depth == 16 else 255
    dtype = np.uint16 if depth == 16 else np.uint8
    stack = pixels if alpha_arr is None else np.concatenate([pixels, alpha_arr[:, :, None]], axis=2)
    q = np.floor(stack * np.float32(top) + np.float32(0.5)).astype(dtype)

    def encode(f) -> None:
        if depth == 16 and fmt == "PNG":
            f.write(_encode_png16(q, icc, exif))
        elif depth == 16 and fmt == "TIFF" and q.shape[2] > 1:
            _write_tiff16(f, q, icc)
        else:
            _save_with_pillow(f, q, fmt, icc, exif, quality)

    with _atomic_output(p) as f:
        encode(f)
    return p


def _pil_image(q: np.ndarray) -> Image.Image:
    k = q.shape[2]
    if q.dtype == np.uint16:  # only gray without alpha gets here
        return Image.fromarray(np.ascontiguousarray(q[:, :, 0]))
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[k]
    return Image.fromarray(np.ascontiguousarray(q if k > 1 else q[:, :, 0]), mode=mode)


def _save_with_pillow(f, q, fmt, icc, exif, quality) -> None:
    im = _pil_image(q)
    params: dict = {}
    if fmt == "JPEG":
        params.update(quality=int(quality), optimize=True)
        if quality >= 90:
            params["subsampling"] = 0
        if exif and len(exif) > _JPEG_MAX_EXIF:
            warnings.warn("EXIF block too large for JPEG; not written", stacklevel=3)
            exif = None
    elif fmt == "WEBP":
        if im.mode in ("L", "LA"):
            im = im.convert("RGBA" if im.mode == "LA" else "RGB")
        params.update(quality=int(quality), lossless=quality >= 100, exact=True, method=4)
    elif fmt == "TIFF":
        params["compression"] = "tiff_adobe_deflate"
    elif fmt == "PNG":
        params["compress_level"] = 6
    if icc:
        params["icc_profile"] = icc
    if exif:
        if fmt == "TIFF" and _exif_has_subdirectories(exif):
            params["compression"] = None  # libtiff cannot write EXIF sub-IFDs; Pillow's writer can
        try:
            im.save(f, format=fmt, exif=exif, **params)
            return
        except (ValueError, TypeError, KeyError, struct.error, RuntimeError) as e:
            warnings.warn(
                f"could not write the EXIF block ({_brief(e)}); written without it", stacklevel=3
            )
            f.seek(0)
            f.truncate()
    im.save(f, format=fmt, **params)


def _exif_has_subdirectories(exif: bytes) -> bool:
    try:
        tags = Image.Exif()
        tags.load(exif)
        return any(t in tags for t in (_EXIF_IFD, _GPS_IFD, 0xA005))
    except Exception:  # noqa: BLE001
        return True


def _write_tiff16(f, q: np.ndarray, icc: bytes | None) -> None:
    import tifffile

    k = q.shape[2]
    photometric = "rgb" if k >= 3 else "minisblack"
    kwargs = {}
    if k in (2, 4):
        kwargs["extrasamples"] = ("unassalpha",)
    buf = io.BytesIO()  # tifffile wants a named file or a file-like object it can name
    tifffile.imwrite(
        buf,
        q,
        photometric=photometric,
        planarconfig="contig",
        compression="zlib",
        metadata=None,
        software=False,
        iccprofile=icc or None,
        **kwargs,
    )
    f.write(buf.getbuffer())


def _check_target(p: Path, overwrite: bool, inputs: Iterable) -> None:
    """Refuse to write into a missing folder, onto a folder, an existing file or an input."""
    if p.is_dir():
        raise UserError(f"cannot write '{p}': it is a folder")
    parent = p.parent
    if not parent.is_dir():
        raise UserError(f"cannot write '{p}': the folder '{parent}' does not exist")
    if overwrite:
        return
    for inp in inputs:
        if _same_file(p, Path(inp)):
            raise UserError(
                f"refusing to write '{p}': it is one of the inputs; pass --overwrite to replace it"
            )
    if p.exists() or p.is_symlink():
        raise UserError(f"'{p}' exists; pass --overwrite to replace it")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _new_file_mode() -> int:
    """Permission bits a plain ``open(..., "w")`` would give a new file (0o666 less umask)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)  # no /proc: read the umask by setting it (briefly) and restoring it
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def _atomic_output(p: Path):
    """Yield a binary file in ``p``'s folder that replaces ``p`` once the block succeeds."""
    try:
        mode = stat.S_IMODE(os.stat(p).st_mode) if p.exists() else _new_file_mode()
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write '{p}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "w+b") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None:
            raise UserError(f"cannot write '{p}': {e.strerror or e}") from None
        raise


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def list_images(folder) -> list[Path]:
    """Image files (by :data:`IMAGE_EXTENSIONS`, any case) directly in a folder, sorted by name.

    Hidden files (name starting with ``.``) and sub-folders are skipped.

    Raises
    ------
    UserError
        If ``folder`` is not an existing folder.
    """
    return _list_files(folder, IMAGE_EXTENSIONS, "images")


def _list_files(folder, extensions, what: str) -> list[Path]:
    d = Path(folder)
    if not d.is_dir():
        raise UserError(
            f"cannot list {what} in '{d}': " + ("not a folder" if d.exists() else "no such folder")
        )
    try:
        entries = list(d.iterdir())
    except OSError as e:
        raise UserError(f"cannot list {what} in '{d}': {e.strerror or e}") from None
    files = [
        e
        for e in entries
        if e.suffix.lower() in extensions and not e.name.startswith(".") and e.is_file()
    ]
    return sorted(files, key=lambda e: e.name)


# --------------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------------


def read_kernel(path) -> np.ndarray:
    """Read a blur kernel and normalise it to sum to one.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` holding a 2-D real array, or an image (8/16-bit PNG ...) whose brightness is
        the kernel (colour is averaged to gray; alpha is ignored).

    Returns
    -------
    numpy.ndarray
        float64 ``(h, w)``, non-negative, summing to one.

    Raises
    ------
    UserError
        Unreadable file, not 2-D, non-finite values, negative values beyond a tolerance of
        ``1e-6`` of the kernel's total (smaller ones are clipped to zero), or all zero.
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        data = _read_bytes(p, "kernel")
        try:
            k = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise UserError(
                f"cannot read kernel '{p}': not a valid .npy file ({_brief(e)})"
            ) from None
        if not isinstance(k, np.ndarray) or k.dtype.kind not in "biuf":
            raise UserError(
                f"cannot read kernel '{p}': expected a real numeric array, "
                f"got {getattr(k, 'dtype', type(k))}"
            )
        if k.ndim != 2:
            raise UserError(f"cannot read kernel '{p}': expected a 2-D array, got shape {k.shape}")
        k = k.astype(np.float64)
    else:
        img = read_image(p, max_pixels=64_000_000)
        k = img.pixels.astype(np.float64).mean(axis=2)
    return _normalise_kernel(k, p)


def _normalise_kernel(k: np.ndarray, p: Path) -> np.ndarray:
    if k.size == 0:
        raise UserError(f"cannot read kernel '{p}': it is empty")
    if not np.all(np.isfinite(k)):
        raise UserError(f"cannot read kernel '{p}': it contains NaN or infinite values")
    positive = k[k > 0].sum()
    if positive <= 0:
        raise UserError(f"cannot read kernel '{p}': it is all zero (or negative)")
    if k.min() < -1e-6 * positive:
        raise UserError(
            f"cannot read kernel '{p}': it has negative values (down to {k.min():.3g}); "
            "a blur kernel must be non-negative"
        )
    k = np.clip(k, 0.0, None)
    return k / k.sum()


def write_kernel(path, kernel, overwrite: bool = False, *, upscale: int | None = None) -> Path:
    """Write a blur kernel, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` (exact float64, written as given) or ``.png`` (a viewable 8-bit picture,
        scaled so the largest value is 255; negative values show as 0).
    kernel : numpy.ndarray or torch.Tensor
        2-D kernel (a tensor may carry leading length-1 batch/channel axes).
    overwrite : bool, optional
        Replace an existing file.
    upscale : int, optional
        For ``.png``: enlarge each kernel pixel to an ``upscale x upscale`` block (nearest
        neighbour) so small kernels are visible.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    UserError
        Unknown extension, missing folder, existing file without ``overwrite``, bad ``upscale``.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in KERNEL_EXTENSIONS:
        raise UserError(f"cannot write kernel '{p}': use a .npy or .png extension")
    k = (
        kernel_to_numpy(kernel)
        if isinstance(kernel, torch.Tensor)
        else np.asarray(kernel, dtype=np.float64)
    )
    if k.ndim != 2:
        raise ValueError(f"a kernel to write must be 2-D, got shape {k.shape}")
    if upscale is not None and (not isinstance(upscale, (int, np.integer)) or upscale < 1):
        raise UserError(
            f"cannot write kernel '{p}': upscale must be a positive integer, got {upscale!r}"
        )
    _check_target(p, overwrite, ())
    if ext == ".npy":
        with _atomic_output(p) as f:
            np.save(f, np.ascontiguousarray(k, dtype=np.float64), allow_pickle=False)
        return p
    v = np.nan_to_num(np.clip(k, 0.0, None), nan=0.0, posinf=0.0)
    top = v.max()
    img = (
        np.floor(v / top * 255.0 + 0.5).astype(np.uint8) if top > 0 else np.zeros(v.shape, np.uint8)
    )
    if upscale and upscale > 1:
        img = np.repeat(np.repeat(img, upscale, axis=0), upscale, axis=1)
    with _atomic_output(p) as f:
        Image.fromarray(img, mode="L").save(f, format="PNG")
    return p


def load_kernels(folder) -> list[tuple[str, np.ndarray]]:
    """Read every ``.npy`` and ``.png`` kernel directly in a folder, sorted by file name.

    Parameters
    ----------
    folder : str or os.PathLike

    Returns
    -------
    list of (str, numpy.ndarray)
        ``(name, kernel)`` pairs; the name is the file stem (the full file name where two
        files share a stem). Empty when the folder holds no kernel files.

    Raises
    ------
    UserError
        If the folder does not exist or a kernel file is bad.
    """
    files = _list_files(folder, KERNEL_EXTENSIONS, "kernels")
    stems = [f.stem for f in files]
    return [(f.stem if stems.count(f.stem) == 1 else f.name, read_kernel(f)) for f in files]
