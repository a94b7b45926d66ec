r"""Blind estimation of the level of additive white Gaussian noise from one image.

Method
------
Let :math:`y = x + n` be the observed image, :math:`n` white Gaussian noise of standard deviation
:math:`\sigma` (the same in every channel). Collect the :math:`r \times r \times C` patches of
:math:`y` as vectors of dimension :math:`d = r^2 C`. Their covariance is

.. math:: \Sigma_y = \Sigma_x + \sigma^2 I_d .

Natural-image patches -- and even more so *blurred* ones, whose high frequencies are gone -- lie
close to a low-dimensional subspace, so the smallest eigenvalues of :math:`\Sigma_x` are close to
zero and the smallest eigenvalues of :math:`\Sigma_y` all estimate :math:`\sigma^2`. With a finite
number of patches these "noise eigenvalues" are spread around :math:`\sigma^2` (Marchenko-Pastur)
but their *mean* stays :math:`\sigma^2`, while signal eigenvalues are larger. Following
Chen, Zhu & Heng (2015), with :math:`\lambda_1 \ge \dots \ge \lambda_d` the eigenvalues of the
sample covariance, the estimate is

.. math:: \hat\sigma^2 = \tau_{i^*}, \qquad \tau_i = \frac{1}{d - i + 1}\sum_{j = i}^{d}
          \lambda_j, \qquad i^* = \min\{\, i : \tau_i \le \operatorname{median}(\lambda_i,
          \dots, \lambda_d) \,\},

i.e. the mean of the largest tail of small eigenvalues whose distribution is no longer skewed
upwards by signal eigenvalues (mean not above median).

Two refinements make it robust on sharp, textured photos:

* **Weak-texture patches** (in the spirit of Liu, Tanaka & Okutomi 2013): only the fraction
  ``weak_texture_fraction`` of patches with the least local structure is used. Structure is
  measured on a Gaussian-smoothed copy (:math:`\rho = 2` px),
  :math:`g(P) = \sum_{(i,j) \in P} \sum_c \lVert \nabla (G_\rho * y_c)(i, j) \rVert^2`;
  smoothing removes almost all of the noise (its variance drops by about
  :math:`1 / (8 \pi \rho^2) \approx 1/100`), so the selection depends on the image content but
  hardly on the noise realisation and does not bias the noise statistics of the chosen patches
  (selecting on noisy gradients with a :math:`\sigma`-dependent threshold, as Liu et al. do,
  biases the estimate low).
* **Clipped patches** -- any pixel at or beyond the ends of the ``saturation`` range in any
  channel -- are left out, since clipping removes noise.

Colour channels are stacked in one patch vector, which exploits the strong correlation of the
channels of natural images (texture is largely shared between channels, noise is not).

Accuracy
--------
Measured on BSD68 photos (16 colour and 16 gray, 481 x 321), noise
:math:`\sigma \in \{0.005, 0.01, 0.02, 0.05\}`, clipped to ``[0, 1]``:

* blurred with a Gaussian (std 1.5 to 3 px): relative error within 4 % on every image, with or
  without 8-bit quantisation (quantisation adds its own :math:`1/(255\sqrt{12}) \approx 0.0011`
  of noise, which is part of the estimate: about +2.5 % at :math:`\sigma = 0.005`); a slight low
  bias (about -1 %) otherwise;
* sharp colour photos: within 10 %;
* sharp gray photos: overestimated when the noise is weak compared with fine texture (texture
  and noise cannot be told apart in one channel): median error about +130 % at
  :math:`\sigma = 0.005`, +40 % at 0.01, +10 % at 0.02 and +2 % at 0.05, several times more on
  images covered by fine texture. Estimate on a blurred or colour version when possible.

The estimator assumes signal-independent white noise; for Poisson-Gaussian (signal-dependent)
noise it returns an average level over the selected, mostly flat, patches, and spatially
correlated noise (demosaicking, JPEG, denoising) is underestimated.

References
----------
G. Chen, F. Zhu and P. A. Heng, "An efficient statistical method for image noise level
estimation", ICCV 2015.

X. Liu, M. Tanaka and M. Okutomi, "Single-image noise level estimation for blind denoising",
IEEE Transactions on Image Processing 22(12):5226-5237, 2013.

D. L. Donoho, "De-noising by soft-thresholding", IEEE Transactions on Information Theory
41(3):613-627, 1995 (the median-absolute-deviation fallback for very small images).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._tensor import to_bchw
from ..errors import UserError

__all__ = ["estimate_noise_level"]

_SMOOTH_SIGMA = 2.0  # px, width of the smoothing used to measure local structure
_MIN_PATCHES_PER_DIM = 30  # patches per patch dimension wanted (fewer skew the eigenvalues)
#: Images with more pixels than this are estimated on a mosaic of ``_BLOCK`` px blocks spread
#: evenly over them (about 3 MP): the smoothing that ranks the patches then costs the same on a
#: 12 MP photo as on a 3 MP one. Block seams are strong edges, so their patches are not chosen.
MAX_PIXELS = 4_000_000
_BLOCK = 256


def estimate_noise_level(
    image,
    *,
    patch_size: int = 7,
    weak_texture_fraction: float = 0.3,
    max_patches: int = 60000,
    saturation: tuple[float, float] | None = (0.0, 1.0),
):
    r"""Estimate the standard deviation of additive white Gaussian noise in an image.

    Principal-component method of Chen et al. (2015) on the weakly textured, unclipped patches of
    the image (see the module documentation for the model and the measured accuracy).

    Parameters
    ----------
    image : array_like or torch.Tensor
        Image(s) in the conventions of :mod:`unblur._tensor` (values in ``[0, 1]``; integer arrays
        are scaled by their dtype's maximum). Colour channels share one noise level.
    patch_size : int, optional
        Side :math:`r` of the square patches (patch dimension :math:`d = r^2 C`). It is reduced
        automatically (down to 3) for images too small to give enough patches; below that the
        median absolute deviation of the finest diagonal Haar wavelet coefficients,
        :math:`\operatorname{median}|HH| / 0.6745` (Donoho 1995), is used.
    weak_texture_fraction : float, optional
        Fraction of the usable patches, those with the least smoothed-gradient energy, that enter
        the covariance (``1`` uses them all). At least :math:`8 d` patches are kept if available.
    max_patches : int, optional
        Images above :data:`MAX_PIXELS` are first reduced to a mosaic of evenly spread blocks.
        Patches are taken on a grid of stride :math:`s = \lceil \sqrt{N / \text{max\_patches}}
        \rceil` (:math:`N` the number of patch positions), which bounds time and memory on large
        images.
    saturation : (float, float) or None, optional
        Values at or below the first / at or above the second are treated as clipped and their
        patches ignored; ``None`` keeps every patch.

    Returns
    -------
    float or torch.Tensor
        :math:`\hat\sigma` in image units (e.g. ``0.01`` for :math:`\sigma = 2.55` on a 0-255
        scale): a python float for a single image (numpy array, 2-D or 3-D tensor), a ``(B,)``
        tensor (float64; float32 on devices without double support) for a 4-D tensor.

    Raises
    ------
    UserError
        If the image is smaller than 2 x 2 pixels or has non-finite values, or on a bad
        parameter.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.ndimage import gaussian_filter
    >>> rng = np.random.default_rng(0)
    >>> sharp = gaussian_filter(rng.random((128, 128)), 3)          # doctest: +SKIP
    >>> estimate_noise_level(sharp + 0.02 * rng.standard_normal(sharp.shape))  # doctest: +SKIP
    0.0199...
    """
    if int(patch_size) < 2:
        raise UserError(f"patch_size must be at least 2, got {patch_size}")
    if not 0.0 < float(weak_texture_fraction) <= 1.0:
        raise UserError(f"weak_texture_fraction must be in (0, 1], got {weak_texture_fraction}")
    if int(max_patches) < 1:
        raise UserError(f"max_patches must be positive, got {max_patches}")
    t, layout = to_bchw(image)  # float32: the ranking of patches; their covariance is in float64
    if min(t.shape[-2:]) < 2:
        raise UserError(f"image of {t.shape[-2]}x{t.shape[-1]} px is too small to estimate noise")
    if not bool(torch.isfinite(t).all()):
        raise UserError("image has non-finite values (nan or inf)")
    sig = torch.stack([
        _estimate_one(_sample_blocks(t[b]), int(patch_size), float(weak_texture_fraction), int(max_patches),
                      saturation)
        for b in range(t.shape[0])
    ])
    if layout.kind == "torch" and layout.ndim == 4:
        return sig
    return float(sig[0])


def _sample_blocks(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself up to :data:`MAX_PIXELS`, else a mosaic of blocks spread evenly over it."""
    h, w = x.shape[-2:]
    if h * w <= MAX_PIXELS:
        return x
    bh, bw = min(_BLOCK, h), min(_BLOCK, w)
    n = math.isqrt(MAX_PIXELS) // _BLOCK
    rows = [round(v) for v in torch.linspace(0, h - bh, min(n, h // bh)).tolist()]
    cols = [round(v) for v in torch.linspace(0, w - bw, min(n, w // bw)).tolist()]
    return torch.cat([torch.cat([x[:, r : r + bh, q : q + bw] for q in cols], -1) for r in rows], -2)


def _estimate_one(x: torch.Tensor, r: int, frac: float, max_patches: int, saturation) -> torch.Tensor:
    """Noise std of one ``(C, H, W)`` image, as a 0-d tensor."""
    c, h, w = x.shape
    energy = _structure_energy(x)
    if saturation is None:
        clipped = torch.zeros(1, 1, h, w, dtype=x.dtype, device=x.device)
    else:
        lo, hi = saturation
        clipped = ((x <= lo) | (x >= hi)).any(dim=0).to(x.dtype)[None, None]
    # the requested patch size, or smaller ones on images too small to give enough patches
    sizes = list(range(min(r, h, w), 2, -2 if r % 2 else -1))
    for k, rr in enumerate(sizes):
        d = rr * rr * c
        npos = (h - rr + 1) * (w - rr + 1)
        stride = max(1, math.ceil(math.sqrt(npos / max_patches)))
        bad = F.max_pool2d(clipped, rr, stride=stride).flatten() > 0
        n_ok = int((~bad).sum())
        last = k == len(sizes) - 1
        if n_ok < (2 * d + 2 if last else _MIN_PATCHES_PER_DIM * d):
            continue
        g = F.avg_pool2d(energy, rr, stride=stride).flatten()
        g = torch.where(bad, torch.full_like(g, math.inf), g)
        keep = min(n_ok, max(math.ceil(frac * n_ok), _MIN_PATCHES_PER_DIM * d))
        idx = torch.topk(g, keep, largest=False).indices
        patches = _gather_patches(x, rr, stride, w, idx)  # (d, keep)
        return _pca_noise_std(patches.to(torch.float32 if x.device.type == "mps" else torch.float64))
    return _haar_mad_std(x)


def _gather_patches(x: torch.Tensor, r: int, stride: int, w: int, idx: torch.Tensor) -> torch.Tensor:
    """The ``r x r x C`` patches at grid positions ``idx`` (row-major on the stride grid), ``(d, n)``.

    Same ordering as ``F.unfold(x[None], r, stride=stride)[0][:, idx]`` without building the
    patches that are not used.
    """
    nx = (w - r) // stride + 1
    py = torch.div(idx, nx, rounding_mode="floor") * stride
    px = (idx % nx) * stride
    off = torch.arange(r, device=x.device)
    rows = (py[:, None] + off[None, :])[:, :, None]  # (n, r, 1)
    cols = (px[:, None] + off[None, :])[:, None, :]  # (n, 1, r)
    p = x[:, rows, cols]  # (C, n, r, r)
    return p.permute(0, 2, 3, 1).reshape(-1, idx.numel())


def _structure_energy(x: torch.Tensor) -> torch.Tensor:
    """Squared gradient magnitude of the smoothed image, summed over channels, (1,1,H,W).

    The smoothing is two passes of a 5 x 5 box filter: variance 2 x (5^2 - 1) / 12 = 4 per axis,
    the variance of a Gaussian of std ``_SMOOTH_SIGMA``, at a fraction of a convolution's cost.
    Each pass is separable and sums five shifted slices (7x faster than ``avg_pool2d`` on a CPU).
    """
    h, w = x.shape[-2:]
    y = F.pad(x[:, None], (4, 4, 4, 4), mode="replicate")[:, 0]
    for _ in range(2):
        y = sum(y[..., i : y.shape[-1] - 4 + i] for i in range(5)) * 0.2
        y = sum(y[..., i : y.shape[-2] - 4 + i, :] for i in range(5)) * 0.2
    gx = torch.zeros_like(y)
    gy = torch.zeros_like(y)
    if w > 2:
        gx[:, :, 1:-1] = 0.5 * (y[:, :, 2:] - y[:, :, :-2])
    if h > 2:
        gy[:, 1:-1, :] = 0.5 * (y[:, 2:, :] - y[:, :-2, :])
    return (gx * gx + gy * gy).sum(dim=0)[None, None]


def _pca_noise_std(patches: torch.Tensor) -> torch.Tensor:
    """Chen et al.'s estimate from patch vectors ``(d, n)``: see the module documentation."""
    n = patches.shape[1]
    p = patches - patches.mean(dim=1, keepdim=True)
    cov = (p @ p.T) / max(n - 1, 1)
    ev = torch.linalg.eigvalsh(cov).clamp_min(0).flip(0)  # descending
    d = ev.numel()
    # tau[i] = mean(ev[i:]), and the numbers of tail eigenvalues above / below it
    tail_sum = ev.flip(0).cumsum(0).flip(0)
    counts = torch.arange(d, 0, -1, dtype=ev.dtype, device=ev.device)
    tau = tail_sum / counts
    in_tail = torch.ones(d, d, dtype=torch.bool, device=ev.device).triu()  # [i, j]: j >= i
    above = ((ev[None, :] > tau[:, None]) & in_tail).sum(dim=1)
    below = ((ev[None, :] < tau[:, None]) & in_tail).sum(dim=1)
    ok = above >= below  # mean not above the median; always true for the last eigenvalue
    i_star = int(torch.nonzero(ok)[0])
    return tau[i_star].sqrt()


def _haar_mad_std(x: torch.Tensor) -> torch.Tensor:
    r"""Donoho's estimate :math:`\operatorname{median}|HH| / 0.6745` over all channels."""
    h2, w2 = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    y = x[:, :h2, :w2]
    hh = 0.5 * (y[:, 0::2, 0::2] - y[:, 0::2, 1::2] - y[:, 1::2, 0::2] + y[:, 1::2, 1::2])
    return hh.abs().flatten().median() / 0.6744897501960817
