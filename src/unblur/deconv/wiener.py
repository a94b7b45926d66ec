r"""Wiener deconvolution with a natural-image spectrum model.

The Wiener filter :math:`\hat x = \bar{\hat K}\hat y / (|\hat K|^2 + \sigma^2/S_x)` needs the
power spectrum :math:`S_x` of the sharp image. Natural images have a spectrum falling as
:math:`1/|\omega|^2` (Field 1987; van der Schaaf & van Hateren 1996), i.e. their gradients are
roughly white with power :math:`c`: :math:`S_x(\omega) = c / |\hat D(\omega)|^2`, with
:math:`|\hat D|^2` the finite-difference (gradient) spectrum. With white noise of std
:math:`\sigma`, the blurred image's gradient power per pixel is
:math:`E|\nabla y|^2 = c\,\overline{|\hat K|^2} + \sigma^2\,\overline{|\hat D|^2}`, which gives
:math:`c` from the observation itself, and the filter

.. math:: \hat x = \frac{\bar{\hat K}\,\hat y}{|\hat K|^2 + (\sigma^2 / c)\,|\hat D|^2}.

No constant is set by hand. The observation is a ``valid`` blur, so before filtering it is
extended periodically over the work grid with a smooth fill whose values are re-blurred, which
suppresses the ringing a hard periodic boundary causes (cf. Liu & Jia, "Reducing boundary
artifacts in image deconvolution", ICIP 2008).
"""
from __future__ import annotations

import torch

from unblur.deconv._domain import ValidDomain, grad


def smooth_extension(y: torch.Tensor, dom: ValidDomain) -> torch.Tensor:
    """Extend ``y`` over the periodic grid so that it wraps around without a jump.

    Outside the observed window each row (then column) is a cosine blend of the replicated
    right/bottom edge and the wrapped-around left/top edge; the fill is then blurred by the kernel,
    so that it looks like the rest of the observation.
    """
    H, W = dom.shape
    x = dom.initial(y)  # edge replication around the observed window
    top, left = dom.kh - 1, dom.kw - 1
    bottom, right = top + dom.Hy, left + dom.Wy
    # columns outside [left, right): blend right edge -> left edge going around the wrap
    gap = W - dom.Wy
    t = torch.arange(1, gap + 1, device=y.device, dtype=y.dtype) / (gap + 1)
    wgt = 0.5 - 0.5 * torch.cos(torch.pi * t)  # 0 near the right edge, 1 near the left edge
    cols = (right + torch.arange(gap, device=y.device)) % W
    x[..., :, cols] = (1 - wgt) * x[..., :, right - 1 : right] + wgt * x[..., :, left : left + 1]
    gap = H - dom.Hy
    t = torch.arange(1, gap + 1, device=y.device, dtype=y.dtype) / (gap + 1)
    wgt = (0.5 - 0.5 * torch.cos(torch.pi * t))[:, None]
    rows = (bottom + torch.arange(gap, device=y.device)) % H
    x[..., rows, :] = (1 - wgt) * x[..., bottom - 1 : bottom, :] + wgt * x[..., top : top + 1, :]
    blurred = dom.blur(x)
    return dom.mask * x + (1 - dom.mask) * blurred


def wiener(y: torch.Tensor, kernel, sigma: float, nsr: float | None = None, boundary: str = "valid") -> torch.Tensor:
    r"""Wiener deconvolution with the :math:`1/|\omega|^2` spectrum model (see module docstring).

    Parameters
    ----------
    y : torch.Tensor
        ``valid``-blurred image ``(B, C, H, W)``.
    kernel : torch.Tensor
        The blur kernel.
    sigma : float
        Noise std of ``y``.
    nsr : float, optional
        Override of :math:`\sigma^2 / c` (the noise-to-signal ratio of gradients).
    boundary : {"valid", "circular"}
        ``"circular"`` treats ``y`` as periodic (no extension): the textbook filter, kept to show
        what a periodic assumption does to real images.
    """
    if boundary not in ("valid", "circular"):
        raise ValueError(f"boundary must be 'valid' or 'circular', got {boundary!r}")
    dom = ValidDomain(y, kernel, periodic=boundary == "circular")
    if nsr is None:
        gx, gy = grad(y)
        grad_power = (gx[..., :, :-1] ** 2).mean() + (gy[..., :-1, :] ** 2).mean()
        k2_mean = float((dom.kernel**2).sum(dim=(-2, -1)).mean())  # Parseval: mean |K|^2
        noise_power = 4.0 * sigma**2  # mean |D|^2 = 4 for the two forward differences
        c = max(float(grad_power) - noise_power, 1e-6) / k2_mean
        nsr = max(sigma, 1e-3) ** 2 / c
    ext = smooth_extension(y, dom) if boundary == "valid" else dom.embed(y)
    X = dom.K.conj() * dom.fft(ext) / (dom.K2 + nsr * dom.D2)
    return dom.crop(dom.ifft(X))
