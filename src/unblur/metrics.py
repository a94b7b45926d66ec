r"""Image and kernel quality metrics for evaluating (blind) deblurring.

Image metrics
-------------
:func:`psnr` and :func:`ssim` compare a restored image with its reference pixel by pixel.
A blind deconvolution result is only defined up to a translation (a kernel shifted by
:math:`t` and a latent image shifted by :math:`-t` explain the blurred image equally well), so
benchmarks such as Levin et al. (2009), Köhler et al. (2012) and Lai et al. (2016) score a result
*up to shift*: :func:`align_to_reference` finds the translation of the result that best matches the
reference and :func:`psnr_shift_invariant` / :func:`ssim_shift_invariant` score the aligned pair.
:func:`band_energy_ratio` needs no ground truth: it says how much a restoration amplified the
mid and high frequencies of its input.

Kernel metrics
--------------
:func:`kernel_similarity` (maximum normalised cross-correlation) and :func:`kernel_error`
(relative :math:`\ell_2` error) compare an estimated blur kernel with the true one, also up to
shift and for kernels of different sizes.

Return types
------------
One rule for every function of this module: a **batched input** -- ``x`` (or ``k_est``) given as a
4-D ``(B, C, H, W)`` torch tensor -- gives a ``(B,)`` tensor of per-image values on the input's
device (float64, float32 on devices without double support); a **single image** -- a numpy array,
or a 2-D ``(H, W)`` / 3-D ``(C, H, W)`` tensor (a 2-D kernel) -- gives a python ``float``.
Inputs are converted with :func:`unblur._tensor.to_bchw` (integer images are scaled to
``[0, 1]``), and metrics are computed in float64 where the device supports it.

References
----------
Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality assessment: from error
visibility to structural similarity", IEEE Transactions on Image Processing 13(4):600-612, 2004.

A. Levin, Y. Weiss, F. Durand and W. T. Freeman, "Understanding and evaluating blind deconvolution
algorithms", CVPR 2009.

R. Köhler, M. Hirsch, B. Mohler, B. Schölkopf and S. Harmeling, "Recording and playback of camera
shake: benchmarking blind deconvolution with a real-world database", ECCV 2012.

W.-S. Lai, J.-B. Huang, Z. Hu, N. Ahuja and M.-H. Yang, "A comparative study for single image
blind deblurring", CVPR 2016.

Z. Hu and M.-H. Yang, "Good regions to deblur", ECCV 2012 (kernel similarity as the maximum
normalised cross-correlation).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ._tensor import ImageLayout, as_kernel, from_bchw, to_bchw
from .errors import UserError

__all__ = [
    "Alignment",
    "align_to_reference",
    "band_energy_ratio",
    "crop_border",
    "kernel_error",
    "kernel_similarity",
    "psnr",
    "psnr_shift_invariant",
    "ssim",
    "ssim_shift_invariant",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _work_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device supports it (everything but Apple's MPS), else float32."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _pair(x, ref) -> tuple[torch.Tensor, torch.Tensor, ImageLayout]:
    """Convert ``x`` and ``ref`` to ``(B, C, H, W)`` tensors of the working dtype on x's device."""
    xt, layout = to_bchw(x)
    dt = _work_dtype(xt.device)
    xt = xt if xt.dtype == dt else to_bchw(x, dtype=dt)[0]
    rt, _ = to_bchw(ref, device=xt.device, dtype=dt)
    if rt.shape[1:] != xt.shape[1:] or rt.shape[0] not in (1, xt.shape[0]):
        raise UserError(
            f"image and reference differ in shape: {tuple(xt.shape)} vs {tuple(rt.shape)} "
            "(as (B, C, H, W)); crop them to the same size first"
        )
    return xt, rt.expand_as(xt), layout


def _batched(layout: ImageLayout) -> bool:
    return layout.kind == "torch" and layout.ndim == 4


def _out(values: torch.Tensor, layout: ImageLayout):
    """Per-image values ``(B,)``: a tensor for batched input, else a python float."""
    return values if _batched(layout) else float(values[0])


def _out_shift(shift: torch.Tensor, layout: ImageLayout):
    """Per-image shifts ``(B, 2)``: a tensor for batched input, else a ``(dy, dx)`` float tuple."""
    if _batched(layout):
        return shift
    return (float(shift[0, 0]), float(shift[0, 1]))


# --------------------------------------------------------------------------------------------
# No-reference: band energy
# --------------------------------------------------------------------------------------------
def band_energy_ratio(x, ref, band: tuple[float, float] = (0.01, 0.45)):
    r"""Energy of ``x`` over the energy of ``ref`` in a band of spatial frequencies.

    .. math:: R(x, y) = \frac{\sum_{f \in B} |\mathcal{F}[w\,(\bar x - \langle \bar x\rangle)](f)|^2}
                             {\sum_{f \in B} |\mathcal{F}[w\,(\bar y - \langle \bar y\rangle)](f)|^2},
              \qquad B = \{f : f_0 \le |f| \le f_1\},

    with :math:`\bar x` the channel mean, :math:`w` a separable Hann window (so that the image
    borders add no energy) and :math:`|f|` in cycles per pixel. For a restored image ``x`` and its
    blurred input ``ref`` this is the amplification of the band by the restoration. A natural
    image's spectrum falls as :math:`1/|f|^2`, so the ratio is dominated by the middle frequencies,
    where a correct deconvolution recovers contrast and a wrong kernel builds ringing and speckle.

    Parameters
    ----------
    x, ref : array_like or torch.Tensor
        Two images of the same shape (see the module's conventions).
    band : (float, float)
        :math:`(f_0, f_1)` in cycles per pixel, within ``(0, 0.5 * sqrt(2)]``.

    Returns
    -------
    float or torch.Tensor
        The ratio (a ``(B,)`` tensor for a 4-D tensor ``x``); 1 for identical images, 4 for an
        image whose deviation from its mean was doubled.
    """
    xt, rt, layout = _pair(x, ref)
    h, w = xt.shape[-2:]
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=xt.dtype, device=xt.device),
                      torch.hann_window(w, periodic=False, dtype=xt.dtype, device=xt.device))
    fy = torch.fft.fftfreq(h, dtype=xt.dtype, device=xt.device)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=xt.dtype, device=xt.device)[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    inside = (radius >= band[0]) & (radius <= band[1])
    # rfft2 stores the columns 1..w/2 once for a pair of conjugate frequencies: count them twice.
    weight = inside * torch.where((fx > 0) & (fx < 0.5), 2.0, 1.0)

    def energy(img: torch.Tensor) -> torch.Tensor:
        lum = img.mean(dim=1)
        lum = lum - lum.mean(dim=(-2, -1), keepdim=True)
        return (torch.fft.rfft2(lum * win).abs().pow(2) * weight).sum(dim=(-2, -1))

    return _out(energy(xt) / energy(rt).clamp_min(torch.finfo(xt.dtype).tiny), layout)


# --------------------------------------------------------------------------------------------
# PSNR and SSIM
# --------------------------------------------------------------------------------------------
def _psnr_t(x: torch.Tensor, ref: torch.Tensor, data_range: float) -> torch.Tensor:
    mse = (x - ref).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr(x, ref, data_range: float = 1.0):
    r"""Peak signal-to-noise ratio in dB.

    .. math:: \mathrm{PSNR}(x, y) = 10 \log_{10} \frac{R^2}{\mathrm{MSE}(x, y)}, \qquad
              \mathrm{MSE}(x, y) = \frac{1}{CHW} \sum_{c, i, j} (x_{cij} - y_{cij})^2,

    with :math:`R` the ``data_range``; the mean runs over all channels and pixels of each image
    (one PSNR per image, not an average of per-channel PSNRs).

    Parameters
    ----------
    x, ref : array_like or torch.Tensor
        Image and reference of the same shape (see the module's conventions).
        ``ref`` may also have batch size 1 and is then compared with every image of ``x``.
    data_range : float, optional
        Peak-to-peak range :math:`R` of the signal, 1 for images in ``[0, 1]``.

    Returns
    -------
    float or torch.Tensor
        PSNR in dB (a ``(B,)`` tensor for a 4-D tensor ``x``). Identical images give ``inf``
        (the MSE is zero); no cap is applied.

    Examples
    --------
    A constant error of 0.1 has MSE 0.01 and so a PSNR of 20 dB; additive Gaussian noise of
    standard deviation :math:`\sigma` gives about :math:`-20 \log_{10} \sigma` dB.
    """
    xt, rt, layout = _pair(x, ref)
    return _out(_psnr_t(xt, rt, float(data_range)), layout)


def _gaussian_window(sigma: float, truncate: float, dtype, device) -> torch.Tensor:
    """1-D normalised Gaussian of radius ``int(truncate * sigma + 0.5)`` (as scipy.ndimage)."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _filter_valid(img: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of every channel of ``(B, C, H, W)`` with the 1-D window w."""
    b, c, h, wd = img.shape
    y = img.reshape(b * c, 1, h, wd)
    y = F.conv2d(y, w.view(1, 1, 1, -1))
    y = F.conv2d(y, w.view(1, 1, -1, 1))
    return y.reshape(b, c, y.shape[-2], y.shape[-1])


def _ssim_t(x, ref, data_range, sigma=1.5, k1=0.01, k2=0.03, truncate=3.5) -> torch.Tensor:
    w = _gaussian_window(sigma, truncate, x.dtype, x.device)
    if min(x.shape[-2:]) < w.numel():
        raise UserError(
            f"SSIM needs images of at least {w.numel()}x{w.numel()} pixels, got "
            f"{x.shape[-2]}x{x.shape[-1]}"
        )
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu_x = _filter_valid(x, w)
    mu_y = _filter_valid(ref, w)
    var_x = _filter_valid(x * x, w) - mu_x**2
    var_y = _filter_valid(ref * ref, w) - mu_y**2
    cov = _filter_valid(x * ref, w) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    # mean over the valid region of each channel, then over the channels
    return (num / den).mean(dim=(2, 3)).mean(dim=1)


def ssim(x, ref, data_range: float = 1.0, *, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03):
    r"""Structural similarity index (Wang et al. 2004), Gaussian-weighted.

    For every pixel, local statistics are Gaussian-weighted averages
    (:math:`\sigma = 1.5`, an 11 x 11 window truncated at 3.5 sigma):

    .. math::
        \mathrm{SSIM}(x, y) = \frac{(2 \mu_x \mu_y + C_1)(2 \sigma_{xy} + C_2)}
                                   {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \qquad C_1 = (K_1 R)^2,\; C_2 = (K_2 R)^2,

    with population (weighted, not sample-corrected) variances and covariance,
    :math:`K_1 = 0.01`, :math:`K_2 = 0.03` and :math:`R` the ``data_range``. The SSIM map is
    averaged over the *valid* region (pixels whose whole window lies inside the image, i.e. a
    5-pixel strip is ignored) and, for colour images, over the channels (the mean of the
    per-channel SSIMs; no colour conversion). This reproduces
    ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=R, channel_axis=-1)``.

    Parameters
    ----------
    x, ref : array_like or torch.Tensor
        Image and reference of the same shape, at least 11 x 11 pixels.
    data_range : float, optional
        Peak-to-peak range :math:`R` of the signal, 1 for images in ``[0, 1]``.
    sigma, k1, k2 : float, optional
        Window width and the stabilising constants :math:`K_1, K_2` (keyword only).

    Returns
    -------
    float or torch.Tensor
        SSIM in :math:`[-1, 1]`, 1 for identical images (a ``(B,)`` tensor for a 4-D tensor ``x``).
    """
    xt, rt, layout = _pair(x, ref)
    return _out(_ssim_t(xt, rt, float(data_range), sigma, k1, k2), layout)


# --------------------------------------------------------------------------------------------
# evaluation up to shift
# --------------------------------------------------------------------------------------------
class Alignment(NamedTuple):
    """Result of :func:`align_to_reference`.

    Attributes
    ----------
    x : array_like or torch.Tensor
        The central ``(H - 2 border) x (W - 2 border)`` region of the image after translating it
        by ``-shift`` (so that it lines up with ``ref``), in the caller's type and layout.
    ref : array_like or torch.Tensor
        The same region of the reference.
    shift : tuple of float or torch.Tensor
        ``(dy, dx)``: the image's content is the reference's moved by ``dy`` pixels down and ``dx``
        pixels right, ``x[i, j] ~ ref[i - dy, j - dx]``; a ``(B, 2)`` tensor for batched input.
    """

    x: object
    ref: object
    shift: object


def crop_border(x, b: int):
    """Remove a strip of ``b`` pixels from every side of an image.

    Parameters
    ----------
    x : array_like or torch.Tensor
        A numpy ``(H, W)`` / ``(H, W, C)`` array or a tensor whose last two axes are ``H, W``.
    b : int
        Border width (``b >= 0``, ``2 b`` smaller than both sides).

    Returns
    -------
    array_like or torch.Tensor
        ``x[..., b:H-b, b:W-b]`` (a view) in the input's type, layout and dtype.
    """
    b = int(b)
    is_torch = isinstance(x, torch.Tensor)
    a = x if is_torch else np.asarray(x)
    if a.ndim < 2:
        raise UserError(f"expected an image, got shape {tuple(a.shape)}")
    hw_axes = (-2, -1) if is_torch or a.ndim == 2 else (0, 1)
    h, w = a.shape[hw_axes[0]], a.shape[hw_axes[1]]
    if b < 0 or 2 * b >= min(h, w):
        raise UserError(f"cannot crop a border of {b} px from a {h}x{w} image")
    if b == 0:
        return a
    if hw_axes == (0, 1):
        return a[b:h - b, b:w - b]
    return a[..., b:h - b, b:w - b]


def _fourier_shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    r"""Band-limited translation: ``out[b, c, i, j] = x[b, c, i + dy[b], j + dx[b]]``.

    Each image is reflect-padded by ``pad`` pixels (to an odd size, so there is no ambiguous
    Nyquist frequency) before multiplying its spectrum by the phase ramp
    :math:`e^{2\pi i (k_y d_y / N_y + k_x d_x / N_x)}`, which keeps the periodic wrap-around away
    from the image. Unlike bilinear interpolation this does not low-pass (denoise) the image,
    so sub-pixel alignment cannot raise the PSNR by smoothing.
    """
    h, w = x.shape[-2:]
    top, bottom = _odd_padding(h, pad)
    left, right = _odd_padding(w, pad)
    xp = F.pad(x, (left, right, top, bottom), mode="reflect")
    ny, nx = xp.shape[-2:]
    ky = torch.fft.fftfreq(ny, device=x.device, dtype=x.dtype)
    kx = torch.fft.rfftfreq(nx, device=x.device, dtype=x.dtype)
    phase = 2 * math.pi * (ky.view(1, -1, 1) * dy.view(-1, 1, 1) + kx.view(1, 1, -1) * dx.view(-1, 1, 1))
    ramp = torch.polar(torch.ones_like(phase), phase)[:, None]  # (B, 1, ny, nx//2+1)
    out = torch.fft.irfft2(torch.fft.rfft2(xp) * ramp, s=(ny, nx))
    return out[..., top:top + h, left:left + w]


def _odd_padding(n: int, pad: int) -> tuple[int, int]:
    """Reflect padding ``(before, after)`` of about ``pad`` making ``n + before + after`` odd."""
    before = after = min(pad, n - 1)
    if (n + before + after) % 2 == 0:
        after = after + 1 if after + 1 <= n - 1 else after - 1
    return before, after


def _crop_shifted(x: torch.Tensor, border: int, iy: torch.Tensor, ix: torch.Tensor) -> torch.Tensor:
    """Central crop of each image of x taken ``(iy[b], ix[b])`` pixels down/right (integer)."""
    h, w = x.shape[-2:]
    out = [
        x[b:b + 1, :, border + int(iy[b]):h - border + int(iy[b]),
          border + int(ix[b]):w - border + int(ix[b])]
        for b in range(x.shape[0])
    ]
    return torch.cat(out, dim=0)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).mean(dim=(1, 2, 3))


def _parabola_vertex(em: torch.Tensor, e0: torch.Tensor, ep: torch.Tensor,
                     limit: float = 0.5) -> torch.Tensor:
    """Offset (clamped to ``[-limit, limit]``) of the vertex of the parabola through
    ``(-1, em), (0, e0), (1, ep)``; 0 where the parabola is not convex."""
    curv = em - 2 * e0 + ep
    off = torch.where(curv > 0, 0.5 * (em - ep) / curv.clamp_min(1e-300), torch.zeros_like(e0))
    return off.clamp(-limit, limit)


def _integer_error_surface(xt: torch.Tensor, ref_c: torch.Tensor, border: int, m: int):
    r"""Mean squared error of the central crop for every integer shift in ``[-m, m]^2``.

    ``err[b, m + dy, m + dx]`` compares ``x[b, :, border + dy + i, border + dx + j]`` with
    ``ref_c[b, :, i, j]``. Computed as :math:`\sum x^2 - 2 \sum x r + \sum r^2` with the
    cross term for all shifts from one FFT correlation and the energy term from an integral
    image, i.e. in :math:`O(HW \log(HW))` instead of :math:`O(m^2 HW)`.
    """
    c, hc, wc = ref_c.shape[1:]
    h, w = xt.shape[-2:]
    xw = xt[..., border - m:h - border + m, border - m:w - border + m]  # (B, C, hc+2m, wc+2m)
    size = xw.shape[-2:]
    cross = torch.fft.irfft2(
        torch.fft.rfft2(xw, s=size) * torch.fft.rfft2(ref_c, s=size).conj(), s=size
    ).sum(dim=1)[:, :2 * m + 1, :2 * m + 1]
    sq = F.pad((xw * xw).sum(dim=1), (1, 0, 1, 0)).cumsum(1).cumsum(2)  # integral image
    n = 2 * m + 1
    sxx = sq[:, hc:hc + n, wc:wc + n] - sq[:, :n, wc:wc + n] - sq[:, hc:hc + n, :n] + sq[:, :n, :n]
    srr = (ref_c * ref_c).sum(dim=(1, 2, 3))
    return (sxx - 2 * cross + srr[:, None, None]).clamp_min(0) / (c * hc * wc)


def _align(xt: torch.Tensor, rt: torch.Tensor, max_shift: int, border: int, subpixel: bool):
    """Core of :func:`align_to_reference` on tensors: (aligned crop, ref crop, shifts (B, 2))."""
    b, _, h, w = xt.shape
    m = int(max_shift)
    if m < 0:
        raise UserError(f"max_shift must be >= 0, got {max_shift}")
    if border < m:
        raise UserError(f"border ({border}) must be at least max_shift ({m})")
    if 2 * border >= min(h, w):
        raise UserError(f"border {border} leaves nothing of a {h}x{w} image")
    ref_c = rt[..., border:h - border, border:w - border]
    n = 2 * m + 1
    err = _integer_error_surface(xt, ref_c, border, m)  # (B, n, n)
    flat = err.view(b, -1).argmin(dim=1)
    iy = torch.div(flat, n, rounding_mode="floor")
    ix = flat % n
    shift = torch.stack([iy - m, ix - m], dim=1).to(xt.dtype)
    best = _crop_shifted(xt, border, iy - m, ix - m)
    if not subpixel:
        return best, ref_c, shift
    best_err = _mse(best, ref_c)  # exact (the surface comes from FFTs)
    bidx = torch.arange(b, device=xt.device)

    def neighbours(i0, j0, di, dj):
        ii = (i0 + di).clamp(0, n - 1)
        jj = (j0 + dj).clamp(0, n - 1)
        return err[bidx, ii, jj]

    # stage 1: separable parabolic fit of the integer error surface (only inside the search box)
    e0 = best_err
    oy = _parabola_vertex(neighbours(iy, ix, -1, 0), e0, neighbours(iy, ix, 1, 0))
    ox = _parabola_vertex(neighbours(iy, ix, 0, -1), e0, neighbours(iy, ix, 0, 1))
    oy = torch.where((iy > 0) & (iy < n - 1), oy, torch.zeros_like(oy))
    ox = torch.where((ix > 0) & (ix < n - 1), ox, torch.zeros_like(ox))
    pad = min(16, max(4, m + 2))

    def evaluate(sy, sx):
        xs = _fourier_shift(xt, sy, sx, pad)
        xs = xs[..., border:h - border, border:w - border]
        return xs, _mse(xs, ref_c)

    cand = shift + torch.stack([oy, ox], dim=1)
    # stage 2: one more parabolic step on Fourier-shifted images, step 1/4 px in each axis
    step = 0.25
    cy, cx = cand[:, 0], cand[:, 1]
    xs_c, e_c = evaluate(cy, cx)
    e_ym = evaluate(cy - step, cx)[1]
    e_yp = evaluate(cy + step, cx)[1]
    e_xm = evaluate(cy, cx - step)[1]
    e_xp = evaluate(cy, cx + step)[1]
    ry = cy + step * _parabola_vertex(e_ym, e_c, e_yp, limit=1.0)
    rx = cx + step * _parabola_vertex(e_xm, e_c, e_xp, limit=1.0)
    # clamp the refinement to within half a pixel of the integer optimum
    ry = torch.minimum(torch.maximum(ry, shift[:, 0] - 0.5), shift[:, 0] + 0.5)
    rx = torch.minimum(torch.maximum(rx, shift[:, 1] - 0.5), shift[:, 1] + 0.5)
    xs_r, e_r = evaluate(ry, rx)
    # keep, per image, the best of: integer optimum, stage-1 estimate, stage-2 estimate
    errs = torch.stack([best_err, e_c, e_r], dim=1)
    pick = errs.argmin(dim=1)
    shifts = torch.stack([shift, torch.stack([cy, cx], 1), torch.stack([ry, rx], 1)], dim=1)
    out_shift = shifts[bidx, pick]
    crops = torch.stack([best, xs_c, xs_r], dim=1)
    out_x = crops[bidx, pick]
    return out_x, ref_c, out_shift


def _default_border(max_shift: int, border) -> int:
    return int(max_shift) + 2 if border is None else int(border)


def align_to_reference(x, ref, max_shift: int = 10, border: int | None = None,
                       subpixel: bool = True) -> Alignment:
    r"""Find the translation of ``x`` that best matches ``ref`` and return the aligned pair.

    Following Levin et al. (2009), the image is compared with the reference on the central region
    :math:`\Omega` left after removing ``border`` pixels on every side, for every integer shift
    :math:`(d_y, d_x) \in [-m, m]^2` (:math:`m` = ``max_shift``):

    .. math:: E(d_y, d_x) = \frac{1}{|\Omega|\,C} \sum_{c} \sum_{(i, j) \in \Omega}
              \bigl(x_c(i + d_y, j + d_x) - r_c(i, j)\bigr)^2,

    and the minimiser is kept. With ``subpixel=True`` it is refined to a fraction of a pixel in
    two steps: the vertex of a parabola fitted (separately along :math:`y` and :math:`x`) to
    :math:`E` at the integer optimum and its two neighbours, then a second parabolic step using
    :math:`E` evaluated at :math:`\pm 1/4` pixel around that estimate; fractional translations are
    band-limited (Fourier phase ramp on a reflect-padded image), which, unlike bilinear
    interpolation, does not smooth away noise. The shift with the lowest error among the integer
    optimum and the two refinements is returned, never more than half a pixel from the integer
    optimum.

    Intensities are used as they are: no gain or offset is fitted, so a global brightness or
    contrast change is counted as error. Each image of a batch gets its own shift.

    Parameters
    ----------
    x : array_like or torch.Tensor
        The image to align (e.g. a deblurred result).
    ref : array_like or torch.Tensor
        The reference (sharp) image, the same size as ``x`` (crop a 'valid'-blur reference first).
    max_shift : int, optional
        Largest translation searched, in pixels, along each axis.
    border : int, optional
        Pixels ignored along every side (must be ``>= max_shift``, so that every compared pixel
        of ``x`` exists). Defaults to ``max_shift + 2``.
    subpixel : bool, optional
        Refine the shift below a pixel.

    Returns
    -------
    Alignment
        ``(x, ref, shift)``: the aligned central region of ``x``, the same region of ``ref``
        (both ``(H - 2 border) x (W - 2 border)``, in the caller's layout) and the shift
        ``(dy, dx)`` with ``x[i, j] ~ ref[i - dy, j - dx]`` (see :class:`Alignment`).

    Notes
    -----
    An optimum on the edge of the search box (:math:`|d| = m`) suggests that ``max_shift`` is too
    small; it is not refined beyond the box.
    """
    xt, rt, layout = _pair(x, ref)
    border = _default_border(max_shift, border)
    ax, ar, shift = _align(xt, rt, max_shift, border, subpixel)
    ref_layout = (ImageLayout("torch", ref.ndim, ref.dtype) if isinstance(ref, torch.Tensor)
                  else ImageLayout("numpy", np.ndim(ref)))
    return Alignment(from_bchw(ax, layout), from_bchw(ar, ref_layout), _out_shift(shift, layout))


def psnr_shift_invariant(x, ref, max_shift: int = 10, border: int | None = None,
                         subpixel: bool = True, data_range: float = 1.0,
                         return_shift: bool = False):
    r"""PSNR up to a translation: the PSNR of the best-aligned central region.

    .. math:: \mathrm{PSNR}_{\text{shift}}(x, r) = 10 \log_{10} \frac{R^2}
              {\min_{d} E(d)},

    with :math:`E(d)` the mean squared error on the central region for the shift :math:`d`
    found by :func:`align_to_reference` (integer search in :math:`[-m, m]^2`, then sub-pixel
    refinement). This is the error measure of Levin et al. (2009) and Köhler et al. (2012),
    expressed in dB.

    Parameters
    ----------
    x, ref : array_like or torch.Tensor
        Image and reference of the same size.
    max_shift, border, subpixel
        See :func:`align_to_reference` (``border`` defaults to ``max_shift + 2``).
    data_range : float, optional
        Peak-to-peak signal range :math:`R`.
    return_shift : bool, optional
        Also return the shift ``(dy, dx)`` (``x[i, j] ~ ref[i - dy, j - dx]``).

    Returns
    -------
    value : float or torch.Tensor
        PSNR in dB (``(B,)`` tensor for batched input); ``inf`` for a perfect match.
    shift : tuple of float or torch.Tensor
        Only with ``return_shift=True``: ``(dy, dx)``, or a ``(B, 2)`` tensor.
    """
    xt, rt, layout = _pair(x, ref)
    ax, ar, shift = _align(xt, rt, max_shift, _default_border(max_shift, border), subpixel)
    value = _out(_psnr_t(ax, ar, float(data_range)), layout)
    return (value, _out_shift(shift, layout)) if return_shift else value


def ssim_shift_invariant(x, ref, max_shift: int = 10, border: int | None = None,
                         subpixel: bool = True, data_range: float = 1.0,
                         return_shift: bool = False):
    r"""SSIM up to a translation.

    The image is aligned to the reference by minimising the mean squared error
    (:func:`align_to_reference`, as in Köhler et al. 2012 and Lai et al. 2016, rather than by
    searching the SSIM itself), then :func:`ssim` of the aligned central regions is returned.

    Parameters
    ----------
    x, ref : array_like or torch.Tensor
        Image and reference of the same size; the central region must be at least 11 x 11.
    max_shift, border, subpixel
        See :func:`align_to_reference` (``border`` defaults to ``max_shift + 2``).
    data_range : float, optional
        Peak-to-peak signal range.
    return_shift : bool, optional
        Also return the shift ``(dy, dx)`` (``x[i, j] ~ ref[i - dy, j - dx]``).

    Returns
    -------
    value : float or torch.Tensor
        SSIM (``(B,)`` tensor for batched input).
    shift : tuple of float or torch.Tensor
        Only with ``return_shift=True``.
    """
    xt, rt, layout = _pair(x, ref)
    ax, ar, shift = _align(xt, rt, max_shift, _default_border(max_shift, border), subpixel)
    value = _out(_ssim_t(ax, ar, float(data_range)), layout)
    return (value, _out_shift(shift, layout)) if return_shift else value


# --------------------------------------------------------------------------------------------
# kernel metrics
# --------------------------------------------------------------------------------------------
def _kernel_pair(k_est, k_true):
    """Both kernels as ``(N, h, w)`` float tensors on one device, and whether the input was batched.

    2-D kernels give ``N = 1``; ``(B, C, h, w)`` kernels are broadcast against each other over
    ``(B, C)`` and flattened, and the per-(image, channel) values are later averaged over C.
    """
    dev = next((k.device for k in (k_est, k_true) if isinstance(k, torch.Tensor)),
               torch.device("cpu"))
    dt = _work_dtype(dev)
    ke = as_kernel(k_est, device=dev, dtype=dt)
    kt = as_kernel(k_true, device=dev, dtype=dt)
    batched = ke.ndim == 4 or kt.ndim == 4
    ke4 = ke if ke.ndim == 4 else ke[None, None]
    kt4 = kt if kt.ndim == 4 else kt[None, None]
    try:
        bc = torch.broadcast_shapes(ke4.shape[:2], kt4.shape[:2])
    except RuntimeError as exc:
        raise UserError(
            f"kernel batch shapes do not match: {tuple(ke.shape)} vs {tuple(kt.shape)}") from exc
    ke4 = ke4.expand(*bc, *ke4.shape[2:])
    kt4 = kt4.expand(*bc, *kt4.shape[2:])
    return ke4.reshape(-1, *ke4.shape[2:]), kt4.reshape(-1, *kt4.shape[2:]), bc, batched


def _xcorr_full(k1: torch.Tensor, k2: torch.Tensor):
    r"""Full cross-correlation :math:`c[s, t] = \sum_{i, j} k_1[i, j]\, k_2[i + s, j + t]`.

    Returns the correlations ``(N, Sy, Sx)`` (circular index, no aliasing since
    ``Sy = h1 + h2 - 1``) and a function mapping a circular index to the shift ``s``.
    """
    h1, w1 = k1.shape[-2:]
    h2, w2 = k2.shape[-2:]
    sy, sx = h1 + h2 - 1, w1 + w2 - 1
    c = torch.fft.irfft2(
        torch.fft.rfft2(k2, s=(sy, sx)) * torch.fft.rfft2(k1, s=(sy, sx)).conj(), s=(sy, sx))

    def to_shift(u, v):
        s = u if u <= h2 - 1 else u - sy
        t = v if v <= w2 - 1 else v - sx
        return s, t

    return c, to_shift


def _kernel_out(values: torch.Tensor, bc, batched: bool):
    if not batched:
        return float(values[0])
    return values.view(*bc).mean(dim=1)


def kernel_similarity(k_est, k_true):
    r"""Maximum normalised cross-correlation of two blur kernels.

    .. math:: \mathrm{sim}(k_1, k_2) = \max_{s, t} \frac{\sum_{i, j} k_1[i, j]\, k_2[i + s, j + t]}
              {\lVert k_1 \rVert_2 \, \lVert k_2 \rVert_2},

    the maximum over *all* relative translations, the kernels being zero outside their support
    (so kernels of different sizes can be compared). It is 1 for identical kernels and for
    translated copies, invariant to scaling either kernel, symmetric in its arguments, and lies
    in ``[0, 1]`` for non-negative kernels (the value is clamped to ``[0, 1]``). This is the
    kernel similarity of Hu & Yang (2012), also used by Lai et al. (2016).

    Parameters
    ----------
    k_est, k_true : array_like or torch.Tensor
        Kernels of shape ``(h, w)`` (any sizes), or ``(B, C, h, w)`` / ``(B, 1, h, w)`` tensors,
        broadcast against each other.

    Returns
    -------
    float or torch.Tensor
        The similarity; for 4-D input a ``(B,)`` tensor (mean over channels). ``nan`` where a
        kernel is all zeros.
    """
    ke, kt, bc, batched = _kernel_pair(k_est, k_true)
    c, _ = _xcorr_full(ke, kt)
    norms = ke.flatten(1).norm(dim=1) * kt.flatten(1).norm(dim=1)
    sim = c.flatten(1).amax(dim=1) / norms
    sim = torch.where(norms > 0, sim.clamp(0.0, 1.0), torch.full_like(sim, float("nan")))
    return _kernel_out(sim, bc, batched)


def kernel_error(k_est, k_true, normalize: bool = True):
    r"""Relative :math:`\ell_2` error of an estimated kernel after aligning it by the best shift.

    .. math:: \mathrm{err}(\hat k, k) = \min_{s, t} \frac{\lVert \hat k(\cdot - (s, t)) - k
              \rVert_2}{\lVert k \rVert_2},

    where the minimising shift is the maximiser of the cross-correlation
    :math:`\sum \hat k[i, j]\, k[i + s, j + t]` (since
    :math:`\lVert \hat k_{s,t} - k\rVert^2 = \lVert \hat k\rVert^2 + \lVert k\rVert^2 - 2 c[s, t]`),
    the kernels being zero-padded so that sizes may differ; the error itself is then computed
    exactly on the aligned, zero-padded kernels (0 for identical or translated copies).

    Parameters
    ----------
    k_est, k_true : array_like or torch.Tensor
        Kernels of shape ``(h, w)`` or ``(B, C, h, w)`` tensors (broadcast against each other).
    normalize : bool, optional
        Divide each kernel by its sum first (blur kernels are defined up to this scale; a kernel
        summing to zero is left as is). With ``False`` the raw values are compared.

    Returns
    -------
    float or torch.Tensor
        The relative error (``(B,)`` tensor, mean over channels, for 4-D input).

    Raises
    ------
    UserError
        If ``k_true`` is all zeros.
    """
    ke, kt, bc, batched = _kernel_pair(k_est, k_true)
    if normalize:
        se = ke.sum(dim=(1, 2), keepdim=True)
        st = kt.sum(dim=(1, 2), keepdim=True)
        ke = torch.where(se != 0, ke / torch.where(se != 0, se, 1), ke)
        kt = torch.where(st != 0, kt / torch.where(st != 0, st, 1), kt)
    nt = kt.flatten(1).norm(dim=1)
    if bool((nt == 0).any()):
        raise UserError("the reference kernel is all zeros")
    c, to_shift = _xcorr_full(ke, kt)
    h1, w1 = ke.shape[-2:]
    h2, w2 = kt.shape[-2:]
    best = c.flatten(1).argmax(dim=1)
    sxn = c.shape[-1]
    errs = []
    for i in range(ke.shape[0]):
        u, v = divmod(int(best[i]), sxn)
        s, t = to_shift(u, v)
        # canvas holding k_true at offset (h1-1, w1-1) and k_est moved by (-s, -t) relative to it:
        # k_est[i, j] lands on top of k_true[i + s, j + t]
        canvas_t = ke.new_zeros(h2 + 2 * (h1 - 1), w2 + 2 * (w1 - 1))
        canvas_e = torch.zeros_like(canvas_t)
        canvas_t[h1 - 1:h1 - 1 + h2, w1 - 1:w1 - 1 + w2] = kt[i]
        oy, ox = h1 - 1 + s, w1 - 1 + t
        canvas_e[oy:oy + h1, ox:ox + w1] = ke[i]
        errs.append((canvas_e - canvas_t).norm() / nt[i])
    return _kernel_out(torch.stack(errs), bc, batched)
