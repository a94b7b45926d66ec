r"""The periodic work domain in which the deconvolution solvers run.

A photo ``y`` of size :math:`H_y \times W_y` is the ``valid`` blur of a larger latent image
:math:`x` of size :math:`(H_y + h - 1) \times (W_y + w - 1)`. Solvers work on a periodic grid of
fast FFT size :math:`N \ge H_y + h - 1` holding :math:`x` plus a margin. On this grid the blur is a
circular convolution :math:`K` (diagonal in Fourier space), and the observation is
:math:`y = M K x` where the mask :math:`M` keeps exactly the pixels whose kernel footprint lies
inside the latent image. Pixels outside the photo are unknowns that only the prior constrains, so
no boundary condition is imposed on the scene (Almeida & Figueiredo, "Deconvolving images with
unknown boundaries using the alternating direction method of multipliers", IEEE TIP 2013;
Reeves, "Fast image restoration without boundary artifacts", IEEE TIP 2005).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from unblur.blur.operators import fast_length


class ValidDomain:
    """Circular work grid for a ``valid``-blurred observation.

    Parameters
    ----------
    y : torch.Tensor
        Observation ``(B, C, Hy, Wy)``.
    kernel : torch.Tensor
        ``(h, w)``, ``(B, 1, h, w)`` or ``(B, C, h, w)`` kernel.
    margin : int
        Extra rows/columns of free pixels beyond the latent image before wrapping around
        (default: half the kernel size), which decouples opposite borders.
    periodic : bool
        Instead, take ``y`` itself as one period of a circularly blurred scene (grid = ``y``'s
        size): the textbook assumption, wrong for photos, kept for comparisons.
    weight : torch.Tensor, optional
        Per-pixel weight of the observation in ``[0, 1]``, broadcastable to ``y``; 0 leaves a pixel
        out of the data term (e.g. clipped highlights, see :func:`unsaturated`). It multiplies the
        mask :math:`M`.
    """

    def __init__(self, y: torch.Tensor, kernel: torch.Tensor, margin: int | None = None, periodic: bool = False,
                 weight: torch.Tensor | None = None):
        k = kernel.to(device=y.device, dtype=y.dtype)
        if k.ndim == 2:
            k = k[None, None]
        self.kernel = k
        self.kh, self.kw = k.shape[-2:]
        self.Hy, self.Wy = y.shape[-2:]
        self.Hx, self.Wx = self.Hy + self.kh - 1, self.Wy + self.kw - 1
        if margin is None:
            margin = max(self.kh, self.kw) // 2
        if periodic:
            self.shape = (self.Hy, self.Wy)
        else:
            self.shape = (fast_length(self.Hx + margin), fast_length(self.Wx + margin))
        H, W = self.shape
        self.periodic = periodic
        # Kernel with its first tap at the origin: (k (*) x)[i] = sum_j k[j] x[i - j].
        self.K = torch.fft.rfft2(k, s=self.shape)
        self.K2 = self.K.real**2 + self.K.imag**2
        # The observed pixels sit at [kh-1, Hx) x [kw-1, Wx) of the grid (periodic: shifted by
        # the same offset modulo the grid, i.e. y is one whole period).
        self.obs = (slice(self.kh - 1, self.Hx), slice(self.kw - 1, self.Wx))
        mask = torch.zeros(1, 1, H, W, dtype=y.dtype, device=y.device)
        mask[..., self.obs[0], self.obs[1]] = 1
        self.mask = torch.ones_like(mask) if periodic else mask
        self.My = self.embed(y)
        if weight is not None:
            self.mask = self.embed(weight.to(y).expand_as(y))
            self.My = self.My * self.mask
        # Finite differences (forward, periodic) in Fourier space.
        fy = torch.fft.fftfreq(H, device=y.device, dtype=y.dtype)[:, None]
        fx = torch.fft.rfftfreq(W, device=y.device, dtype=y.dtype)[None, :]
        self.Dx = torch.exp(2j * torch.pi * fx) - 1  # x[i, j+1] - x[i, j]
        self.Dy = torch.exp(2j * torch.pi * fy) - 1
        self.D2 = (self.Dx.real**2 + self.Dx.imag**2) + (self.Dy.real**2 + self.Dy.imag**2)

    # -- data placement ------------------------------------------------------------------------
    def embed(self, y: torch.Tensor) -> torch.Tensor:
        """Place an observation-sized image at the observed pixels of a zero grid."""
        H, W = self.shape
        if self.periodic:
            return torch.roll(y, (self.kh - 1, self.kw - 1), (-2, -1))
        out = torch.zeros(*y.shape[:2], H, W, dtype=y.dtype, device=y.device)
        out[..., self.obs[0], self.obs[1]] = y
        return out

    def initial(self, y: torch.Tensor) -> torch.Tensor:
        """A starting latent image: ``y`` extended by edge replication over the whole grid."""
        if self.periodic:
            return self.embed(y)
        H, W = self.shape
        top, left = self.kh - 1, self.kw - 1
        pad = (left, W - left - self.Wy, top, H - top - self.Hy)
        return F.pad(y, pad, mode="replicate")

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The part of the latent grid aligned with the observation (same size as ``y``)."""
        top, left = self.kh // 2, self.kw // 2
        if self.periodic:
            return torch.roll(x, (-top, -left), (-2, -1))
        return x[..., top : top + self.Hy, left : left + self.Wy]

    # -- operators -------------------------------------------------------------------------------
    def fft(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(x)

    def ifft(self, X: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(X, s=self.shape)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        """Circular blur on the grid."""
        return self.ifft(self.fft(x) * self.K)

    def blur_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.ifft(self.fft(y) * self.K.conj())


def unsaturated(y: torch.Tensor, level: float) -> torch.Tensor:
    """Weight that leaves clipped highlights out of the data term: 0 on plateaus of pixels at or
    above ``level`` and on a 1-pixel ring around them, 1 elsewhere.

    Clipped highlights (street lights, reflections) break the linear blur model: their true value
    is unknown, and fitting the clipped one rings with dark halos around every light. Dropping
    them as outliers (Cho, Wang & Lee, "Handling outliers in non-blind image deconvolution", ICCV
    2011) lets the prior and the unclipped neighbours decide the latent image there. Only whole
    3 x 3 plateaus count as clipped (a morphological opening): a bright but unclipped area, such as
    white paper with noise, reaches the level at scattered pixels only, and leaving those out
    would leave the area without data.
    """
    hit = (y >= level).to(y.dtype)
    core = -F.max_pool2d(-hit, 3, stride=1, padding=1)  # erosion: inside a 3 x 3 plateau
    return 1 - F.max_pool2d(core, 5, stride=1, padding=2)  # the plateau and one more pixel


def grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences with periodic wrap: ``(x[:, j+1] - x[:, j], x[i+1] - x[i])``."""
    if _tracked(x):
        return torch.roll(x, -1, -1) - x, torch.roll(x, -1, -2) - x
    # written into preallocated outputs: one pass each instead of a rolled copy and a difference
    gx, gy = torch.empty_like(x), torch.empty_like(x)
    torch.sub(x[..., 1:], x[..., :-1], out=gx[..., :-1])
    torch.sub(x[..., :1], x[..., -1:], out=gx[..., -1:])
    torch.sub(x[..., 1:, :], x[..., :-1, :], out=gy[..., :-1, :])
    torch.sub(x[..., :1, :], x[..., -1:, :], out=gy[..., -1:, :])
    return gx, gy


def grad_adjoint(gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`grad` (minus the divergence)."""
    if _tracked(gx) or _tracked(gy):
        return (torch.roll(gx, 1, -1) - gx) + (torch.roll(gy, 1, -2) - gy)
    out = torch.empty_like(gx)
    torch.sub(gx[..., :-1], gx[..., 1:], out=out[..., 1:])
    torch.sub(gx[..., -1:], gx[..., :1], out=out[..., :1])
    out[..., 1:, :] += gy[..., :-1, :] - gy[..., 1:, :]  # same rounding as the rolled form
    out[..., :1, :] += gy[..., -1:, :] - gy[..., :1, :]
    return out


def _tracked(x: torch.Tensor) -> bool:
    """Whether autograd records operations on ``x`` (the ``out=`` fast paths do not support it)."""
    return x.requires_grad and torch.is_grad_enabled()
