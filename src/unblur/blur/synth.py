r"""Synthesis of blurred/sharp training and test pairs.

The camera model (Boracchi & Foi 2012) followed by :func:`degrade` is

.. math:: y = Q\bigl(\mathrm{sRGB}\bigl(\tfrac{1}{\lambda}\,\mathcal{P}(\lambda\, s\,(k * x_{lin}))
          + \mathcal{N}(0, \sigma_r^2)\bigr) + \mathcal{N}(0, \sigma^2)\bigr)

where :math:`x_{lin}` is the sharp image in linear light, :math:`k` the kernel applied with a
boundary mode (``valid`` by default: the blurred image is smaller by the kernel size minus one and
its ground truth is the centre-aligned crop of the source), :math:`s` an optional exposure gain
that blows highlights when the result is clipped, :math:`\mathcal{P}` Poisson photon noise with
:math:`\lambda` photons at full scale and read noise :math:`\sigma_r` (both optional),
:math:`\sigma` additive Gaussian noise in sRGB units (the usual "1 % noise" of deblurring
benchmarks) and :math:`Q` quantisation (8 or 16 bit) and optional JPEG compression.

:func:`average_frames` makes GoPro-style motion blur (Nah et al., CVPR 2017) by averaging
consecutive high-frame-rate frames in linear light; its ground truth is the middle frame.

:func:`generate_dataset` writes a whole dataset (images, kernels as ``.npy`` and viewable ``.png``,
and a JSON-lines manifest with every parameter); the same arguments give byte-identical files.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from unblur import io
from unblur._tensor import as_kernel
from unblur.blur.kernels import KernelSampler, normalize_kernel
from unblur.blur.noise import (
    add_gaussian_noise,
    add_poisson_gaussian_noise,
    jpeg_compress,
    quantize,
)
from unblur.blur.operators import conv2d
from unblur.color import linear_to_srgb, srgb_to_linear
from unblur.errors import UserError

__all__ = ["Degradation", "aligned_crop", "average_frames", "degrade", "generate_dataset"]


@dataclass(frozen=True)
class Degradation:
    """Parameters of the camera model applied after blurring (see the module docstring).

    Attributes
    ----------
    sigma : float
        Gaussian noise std in sRGB units (0.01 = 1 % of full scale).
    photons : float or None
        Photon count at full scale :math:`\\lambda` for Poisson noise (None: no shot noise).
    read_sigma : float
        Read noise std in linear units, used with ``photons``.
    exposure : float
        Linear gain before clipping; values above 1 saturate highlights.
    bits : int
        Quantisation depth (8 or 16; 0 keeps floats).
    jpeg_quality : int or None
        Re-compress as JPEG at this quality (8-bit only).
    linear : bool
        Blur in linear light (True, physically right) or directly on sRGB values.
    """

    sigma: float = 0.01
    photons: float | None = None
    read_sigma: float = 0.0
    exposure: float = 1.0
    bits: int = 8
    jpeg_quality: int | None = None
    linear: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def aligned_crop(sharp: torch.Tensor, kernel_shape: tuple[int, int]) -> torch.Tensor:
    """The part of ``sharp`` aligned with its ``valid`` blur (centre pixel of each footprint)."""
    kh, kw = kernel_shape
    H, W = sharp.shape[-2:]
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    return sharp[..., top : H - kh // 2, left : W - kw // 2]


def degrade(sharp: torch.Tensor, kernel, degradation: Degradation = Degradation(), mode: str = "valid", generator=None):
    """Blur ``sharp`` (sRGB values, ``(B, C, H, W)``) and apply the camera model.

    Returns the degraded image and its ground truth (the sharp image, cropped to the blurred
    image's footprint for ``mode="valid"``). ``generator`` (int or :class:`torch.Generator`)
    seeds the noise.
    """
    d = degradation
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    kernel = as_kernel(kernel, device=sharp.device, dtype=sharp.dtype)
    x = srgb_to_linear(sharp) if d.linear else sharp
    y = conv2d(x, kernel, mode=mode)
    if d.exposure != 1.0:
        y = y * d.exposure
    if d.photons:
        y = add_poisson_gaussian_noise(y.clamp(0, 1), d.photons, d.read_sigma, generator=generator)
    y = y.clamp(0, 1)
    if d.linear:
        y = linear_to_srgb(y)
    if d.sigma:
        y = add_gaussian_noise(y, d.sigma, generator=generator)
    y = y.clamp(0, 1)
    if d.bits:
        y = quantize(y, d.bits)
    if d.jpeg_quality:
        y = jpeg_compress(y, d.jpeg_quality)
    truth = aligned_crop(sharp, tuple(kernel.shape[-2:])) if mode == "valid" else sharp
    return y, truth


def average_frames(frames: torch.Tensor, linear: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Average consecutive video frames ``(N, C, H, W)`` into one motion-blurred frame.

    Averaging happens in linear light (sRGB decoded, Nah et al. 2017 use a gamma of 2.2; the exact
    sRGB curve is used here). Returns ``(blurred, middle_frame)``, both ``(1, C, H, W)``.
    """
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise ValueError("frames must be a non-empty (N, C, H, W) tensor")
    if linear:
        blurred = linear_to_srgb(srgb_to_linear(frames).mean(0, keepdim=True))
    else:
        blurred = frames.mean(0, keepdim=True)
    mid = frames.shape[0] // 2
    return blurred, frames[mid : mid + 1]


def _parse_range(value, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        lo, hi = value
    else:
        parts = str(value).split("-")
        try:
            lo, hi = (int(parts[0]), int(parts[-1]))
        except ValueError:
            raise UserError(f"{name} must be N or N-M, got {value!r}") from None
    if lo < 1 or hi < lo:
        raise UserError(f"{name} must be a positive range, got {value!r}")
    return int(lo), int(hi)


def _random_crop(img: torch.Tensor, h: int, w: int, rng: np.random.Generator):
    H, W = img.shape[-2:]
    top = int(rng.integers(0, H - h + 1))
    left = int(rng.integers(0, W - w + 1))
    return img[..., top : top + h, left : left + w], (top, left)


def _prepare_out(out_dir: Path, overwrite: bool) -> None:
    if not out_dir.parent.is_dir():
        raise UserError(f"cannot create {out_dir}: folder {out_dir.parent} does not exist")
    if (out_dir / "manifest.jsonl").exists() and not overwrite:
        raise UserError(f"{out_dir} already holds a dataset; pass --overwrite to replace it")
    for sub in ("blurred", "sharp", "kernels"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)


def generate_dataset(
    sharp_dir,
    out_dir,
    *,
    kernel: str = "camera-shake",
    count: int = 100,
    size: int | None = 256,
    kernel_size=(11, 41),
    degradation: Degradation = Degradation(),
    mode: str = "valid",
    frames=None,
    seed: int = 0,
    overwrite: bool = False,
    progress=None,
) -> Path:
    """Write a dataset of blurred/sharp pairs made from the images in ``sharp_dir``.

    Parameters
    ----------
    sharp_dir : path
        Folder of sharp images (any format :mod:`unblur.io` reads), or of consecutive video frames
        when ``frames`` is given.
    out_dir : path
        Output folder: ``blurred/NNNNN.png``, ``sharp/NNNNN.png`` (ground truth aligned with the
        blurred image), ``kernels/NNNNN.npy`` and ``.png`` (viewable), ``manifest.jsonl``.
    kernel : str
        ``camera-shake`` (Boracchi-Foi trajectories), ``gp-shake``, ``gaussian``, ``defocus``,
        ``linear`` or ``folder:PATH`` (kernels read from a folder, drawn at random).
    count : int
        Number of pairs.
    size : int or None
        Side of the square blurred crops (None: whole images).
    kernel_size : (int, int) or "N-M"
        Range of kernel sizes for synthetic kernels.
    degradation : Degradation
        Noise and camera pipeline.
    mode : str
        Boundary model of the blur.
    frames : (int, int), "N-M" or None
        Instead of kernels, average a random number of consecutive frames in this range
        (GoPro-style blur; ground truth is the middle frame).
    seed : int
        Everything random derives from it; equal arguments give byte-identical outputs.
    progress : callable or None
        Called with no argument after each written pair.

    Returns
    -------
    Path
        The manifest's path.
    """
    sharp_dir, out_dir = Path(sharp_dir), Path(out_dir)
    if not sharp_dir.is_dir():
        raise UserError(f"{sharp_dir} is not a folder of images")
    paths = io.list_images(sharp_dir)
    if not paths:
        raise UserError(f"no images found in {sharp_dir}")
    if count < 1:
        raise UserError("--count must be at least 1")
    _prepare_out(out_dir, overwrite)
    rng = np.random.default_rng(seed)
    bits = degradation.bits if degradation.bits in (8, 16) else 8
    records = []
    if frames is not None:
        lo, hi = _parse_range(frames, "--frames")
        if len(paths) < lo:
            raise UserError(f"{sharp_dir} holds {len(paths)} frames, fewer than {lo}")
        sampler, folder_kernels = None, None
    elif kernel.startswith("folder:"):
        folder_kernels = io.load_kernels(kernel.split(":", 1)[1])
        if not folder_kernels:
            raise UserError(f"no kernels found in {kernel.split(':', 1)[1]}")
        sampler = None
    else:
        kmin, kmax = _parse_range(kernel_size, "--kernel-size")
        try:
            sampler = KernelSampler(kernel, size_range=(kmin, kmax), rng=rng)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        folder_kernels = None

    for i in range(count):
        sample_seed = int(rng.integers(2**63 - 1))
        srng = np.random.default_rng(sample_seed)
        record = {"index": i, "seed": sample_seed, "mode": mode, **{f"noise_{k}": v for k, v in degradation.to_dict().items()}}
        name = f"{i:05d}"
        if frames is not None:
            n = int(srng.integers(lo, min(hi, len(paths)) + 1))
            start = int(srng.integers(0, len(paths) - n + 1))
            stack = torch.cat([io.read_image(p).to_tensor() for p in paths[start : start + n]])
            blurred, truth = average_frames(stack, linear=degradation.linear)
            if size:
                both, (top, left) = _random_crop(torch.cat([blurred, truth], 1), size, size, srng)
                blurred, truth = both[:, : stack.shape[1]], both[:, stack.shape[1] :]
                record.update(crop_top=top, crop_left=left)
            noise_only = Degradation(**{**degradation.to_dict(), "linear": False})
            blurred, _ = degrade(blurred, torch.ones(1, 1), noise_only, mode="same", generator=sample_seed)
            record.update(kind="frames", frames=[p.name for p in paths[start : start + n]], num_frames=n)
            k = None
        else:
            if sampler is not None:
                k, params = sampler.sample(srng)
                record.update(kind=kernel, **params)
            else:
                kname, knp = folder_kernels[int(srng.integers(len(folder_kernels)))]
                k = normalize_kernel(torch.from_numpy(knp).float())
                record.update(kind="folder", kernel_source=kname)
            kh, kw = k.shape[-2:]
            path = paths[int(srng.integers(len(paths)))]
            img = io.read_image(path).to_tensor()
            record["source"] = path.name
            if size:
                need_h, need_w = (size + kh - 1, size + kw - 1) if mode == "valid" else (size, size)
                if img.shape[-2] < need_h or img.shape[-1] < need_w:
                    raise UserError(f"{path.name} is {img.shape[-1]}x{img.shape[-2]}, too small for --size {size} with a {kh}x{kw} kernel")
                img, (top, left) = _random_crop(img, need_h, need_w, srng)
                record.update(crop_top=top, crop_left=left)
            blurred, truth = degrade(img, k, degradation, mode=mode, generator=sample_seed)
            io.write_kernel(out_dir / "kernels" / f"{name}.npy", k.double().numpy(), overwrite=True)
            io.write_kernel(out_dir / "kernels" / f"{name}.png", k.double().numpy(), overwrite=True)
            record.update(kernel_shape=[int(kh), int(kw)], kernel=f"kernels/{name}.npy")
        io.write_image(out_dir / "blurred" / f"{name}.png", blurred, bit_depth=bits, overwrite=True)
        io.write_image(out_dir / "sharp" / f"{name}.png", truth, bit_depth=bits, overwrite=True)
        record.update(blurred=f"blurred/{name}.png", sharp=f"sharp/{name}.png")
        records.append(record)
        if progress is not None:
            progress()
    manifest = out_dir / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True, default=_json_default) + "\n" for r in records))
    os.replace(tmp, manifest)
    return manifest


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")
