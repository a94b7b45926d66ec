r"""Sensor noise and camera processing for synthetic degradations.

All functions take ``(B, C, H, W)`` float tensors (values nominally in ``[0, 1]``, "image units":
1 is the full scale of the sensor) and return a new tensor of the same shape, dtype and device.

Randomness comes from ``generator``: ``None`` (torch's global CPU generator), an ``int`` seed or a
:class:`torch.Generator`. Random numbers are always drawn on the generator's device (CPU unless you
pass a CUDA generator) and then moved to the tensor's device, so a given seed gives the same noise
on CPU and GPU. Passing one generator to several calls continues its stream.

The camera model of Boracchi & Foi (2012) is, for a blurred image :math:`x = k * u` in image units,

.. math:: y = \frac{1}{\lambda}\Bigl(\mathcal P(\lambda x) + \mathcal N(0, (\lambda\sigma_r)^2)\Bigr)
          = \frac{\mathcal P(\lambda x)}{\lambda} + \mathcal N(0, \sigma_r^2),

with :math:`\lambda` the number of photons collected at full scale (``photons``) and
:math:`\sigma_r` the read noise, **expressed in image units** (fraction of full scale), so that
:math:`\mathbb E[y] = x` and :math:`\mathrm{Var}[y] = x/\lambda + \sigma_r^2`
(:func:`poisson_gaussian_std`). :class:`unblur.blur.synth.Degradation` chains these functions with
blurring in linear light, clipping, quantisation and JPEG in camera order.

References
----------
G. Boracchi and A. Foi, "Modeling the performance of image restoration from motion blur",
IEEE Transactions on Image Processing 21(8):3502-3517, 2012.
A. Foi, M. Trimeche, V. Katkovnik and K. Egiazarian, "Practical Poissonian-Gaussian noise
modeling and fitting for single-image raw-data", IEEE TIP 17(10):1737-1754, 2008.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from unblur.errors import UserError

__all__ = [
    "add_gaussian_noise",
    "add_poisson_gaussian_noise",
    "clip",
    "jpeg_compress",
    "make_generator",
    "poisson_gaussian_std",
    "quantize",
    "saturate",
]


def make_generator(generator=None) -> torch.Generator | None:
    """A :class:`torch.Generator` from ``None`` (returned as is: torch's global generator is used),
    an int seed (a new CPU generator) or a generator (returned as is)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        if int(generator) < 0:
            raise UserError(f"a seed must be non-negative, got {generator}")
        return torch.Generator().manual_seed(int(generator))
    raise UserError(f"generator must be None, an int seed or a torch.Generator, got {type(generator).__name__}")


def _check(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"{name} must be a (B, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise UserError(f"{name} must be a floating-point tensor, got {x.dtype}")


def _per_image(value, x: torch.Tensor, name: str, dtype=None) -> torch.Tensor | float:
    """A scalar, or a ``(B,)`` sequence/tensor viewed as ``(B, 1, 1, 1)`` (one value per image)."""
    if isinstance(value, (torch.Tensor, list, tuple, np.ndarray)):
        t = torch.as_tensor(value, dtype=dtype or torch.float64)
        if t.ndim == 0:
            return float(t)
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise UserError(f"{name} must be a number or have one value per image ({x.shape[0]}), got shape {tuple(t.shape)}")
        return t.view(-1, 1, 1, 1)
    return float(value)


def _nonneg(v, name: str) -> None:
    bad = (v < 0).any() if isinstance(v, torch.Tensor) else not (v >= 0)
    if bad:
        raise UserError(f"{name} must be >= 0, got {v}")


def _randn(shape, generator, dtype=torch.float32) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def add_gaussian_noise(x: torch.Tensor, sigma, generator=None) -> torch.Tensor:
    r"""Add white Gaussian noise: :math:`y = x + \sigma n`, :math:`n \sim \mathcal N(0, I)`.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C, H, W)`` image.
    sigma : float or sequence of B floats
        Standard deviation in image units (0.01 = 1 % of full scale), per image if a sequence.
    generator : None, int or torch.Generator
        Randomness (see the module docstring).

    Returns
    -------
    torch.Tensor
        Noisy image (not clipped).
    """
    _check(x)
    s = _per_image(sigma, x, "sigma")
    _nonneg(s, "sigma")
    if not isinstance(s, torch.Tensor) and s == 0:
        return x.clone()
    g = make_generator(generator)
    n = _randn(x.shape, g).to(device=x.device, dtype=x.dtype)
    if isinstance(s, torch.Tensor):
        s = s.to(device=x.device, dtype=x.dtype)
    return x + s * n


def poisson_gaussian_std(x: torch.Tensor, photons, sigma) -> torch.Tensor:
    r"""Per-pixel standard deviation of :func:`add_poisson_gaussian_noise`:
    :math:`\sqrt{\max(x, 0)/\lambda + \sigma^2}` (``photons=None`` or ``inf``: :math:`\sigma`)."""
    _check(x)
    lam = None if photons is None else _per_image(photons, x, "photons")
    s = _per_image(sigma, x, "sigma")
    var = torch.zeros_like(x, dtype=torch.float64)
    if lam is not None and not (not isinstance(lam, torch.Tensor) and math.isinf(lam)):
        lam = lam.to(x.device) if isinstance(lam, torch.Tensor) else lam
        var = var + x.to(torch.float64).clamp(min=0) / lam
    s = s.to(x.device) if isinstance(s, torch.Tensor) else s
    return (var + s**2).sqrt().to(x.dtype)


def add_poisson_gaussian_noise(x: torch.Tensor, photons, sigma=0.0, generator=None) -> torch.Tensor:
    r"""Poisson-Gaussian sensor noise (Boracchi & Foi 2012; Foi et al. 2008).

    .. math:: y = \frac{\mathcal P(\lambda\,\max(x, 0))}{\lambda} + \mathcal N(0, \sigma^2)

    :math:`\lambda` = ``photons`` is the photon count that reaches full scale (a larger value means
    a brighter scene/longer exposure and relatively less noise; :math:`\lambda = 765000` is the
    nearly noiseless setting of Boracchi & Foi, a few hundred to a few thousand is a dim
    hand-held shot). The read noise ``sigma`` is in **image units** (fraction of full scale, the
    same units as :func:`add_gaussian_noise`); a read noise of :math:`e` electrons is
    ``sigma = e / photons``. Then :math:`\mathbb E[y] = x` for :math:`x \ge 0` and
    :math:`\mathrm{Var}[y] = x/\lambda + \sigma^2`.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C, H, W)`` image (negative values count as zero photons).
    photons : float or sequence of B floats
        :math:`\lambda > 0`; ``None`` or ``inf`` disables the Poisson part.
    sigma : float or sequence of B floats
        Read-noise standard deviation in image units.
    generator : None, int or torch.Generator
        Randomness; the Poisson draw comes first, then the Gaussian one.

    Returns
    -------
    torch.Tensor
        Noisy image (not clipped).
    """
    _check(x)
    g = make_generator(generator)
    y = x
    if photons is not None:
        lam = _per_image(photons, x, "photons")
        bad = (lam <= 0).any() if isinstance(lam, torch.Tensor) else not (lam > 0)
        if bad:
            raise UserError(f"photons must be > 0, got {photons}")
        if isinstance(lam, torch.Tensor) or not math.isinf(lam):
            device = g.device if g is not None else torch.device("cpu")
            lam_d = lam.to(device) if isinstance(lam, torch.Tensor) else lam
            rate = x.detach().to(device=device, dtype=torch.float64).clamp(min=0) * lam_d
            counts = torch.poisson(rate, generator=g)
            y = (counts / lam_d).to(device=x.device, dtype=x.dtype)
    return add_gaussian_noise(y, sigma, generator=g)


def quantize(x: torch.Tensor, bits: int = 8, clip: bool = True) -> torch.Tensor:
    r"""Quantise to :math:`2^b` levels: :math:`y = \mathrm{round}(x (2^b - 1)) / (2^b - 1)`.

    Values are first clipped to ``[0, 1]`` (an ADC saturates) unless ``clip=False``.
    """
    _check(x)
    bits = int(bits)
    if not 1 <= bits <= 32:
        raise UserError(f"bits must be between 1 and 32, got {bits}")
    levels = float(2**bits - 1)
    y = x.clamp(0, 1) if clip else x
    return (y.to(torch.float64) * levels).round().div(levels).to(x.dtype)


def jpeg_compress(x: torch.Tensor, quality: int = 90, subsampling=None) -> torch.Tensor:
    """JPEG round trip through Pillow (8-bit), image by image.

    Parameters
    ----------
    x : torch.Tensor
        ``(B, C, H, W)``; ``C = 1`` is coded as gray, ``C = 3`` as RGB (YCbCr inside the codec);
        any other channel count codes each channel as its own gray image. Values are clipped to
        ``[0, 1]`` and rounded to 8 bits first.
    quality : int
        JPEG quality, 1-100 (Pillow's scale; 75 is Pillow's default, 90 a typical camera).
    subsampling : int or str, optional
        Pillow's chroma subsampling (``0`` = 4:4:4, ``2`` = 4:2:0); default Pillow's choice.

    Returns
    -------
    torch.Tensor
        Decoded image, values multiples of 1/255, same shape/dtype/device as ``x``.
    """
    _check(x)
    quality = int(quality)
    if not 1 <= quality <= 100:
        raise UserError(f"JPEG quality must be between 1 and 100, got {quality}")
    kwargs = {"quality": quality}
    if subsampling is not None:
        kwargs["subsampling"] = subsampling
    a = (x.detach().to("cpu", torch.float64).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    out = np.empty_like(a)

    def roundtrip(img: np.ndarray, mode: str) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", **kwargs)
        buf.seek(0)
        with Image.open(buf) as im:
            return np.asarray(im.convert(mode))

    for b in range(a.shape[0]):
        if a.shape[1] == 3:
            out[b] = np.moveaxis(roundtrip(np.ascontiguousarray(np.moveaxis(a[b], 0, -1)), "RGB"), -1, 0)
        else:
            for c in range(a.shape[1]):
                out[b, c] = roundtrip(np.ascontiguousarray(a[b, c]), "L")
    return torch.from_numpy(out).to(device=x.device, dtype=x.dtype) / 255.0


def saturate(x: torch.Tensor, gain=1.0, level: float = 1.0) -> torch.Tensor:
    r"""Blown highlights: :math:`y = \min(g\,x,\ \ell)`.

    Multiplying by ``gain`` :math:`g > 1` (over-exposure) pushes bright regions above the
    saturation ``level`` :math:`\ell`, where the sensor clips them: the light streaks of blurred
    point lights lose their shape, which breaks the linear blur model. ``gain`` may be one value
    per image.
    """
    _check(x)
    g = _per_image(gain, x, "gain")
    if isinstance(g, torch.Tensor):
        g = g.to(device=x.device, dtype=x.dtype)
    return (x * g).clamp(max=float(level))


def clip(x: torch.Tensor, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """Clip values to ``[low, high]`` (the sensor's and file format's range)."""
    _check(x)
    return x.clamp(float(low), float(high))
