r"""Image priors for the splitting solvers, each given by its proximal operator.

``prox(v, t)`` returns :math:`\arg\min_w\; t\,\phi(w) + \tfrac12 \|w - v\|^2`.

* :class:`HyperLaplacian`: :math:`\phi(w) = \sum |w|^\alpha` on image gradients, the heavy-tailed
  gradient statistics of natural images (Levin et al. 2007; Krishnan & Fergus, "Fast image
  deconvolution using hyper-Laplacian priors", NIPS 2009).
* :class:`TotalVariation`: isotropic :math:`\phi(w) = \sum_p \|w_p\|_2` on gradients (Rudin, Osher
  & Fatemi 1992).
* :class:`DenoiserPrior`: a plug-and-play prior whose proximal step is a denoiser called with noise
  level :math:`\sqrt{t}` (Venkatakrishnan et al. 2013; Zhang et al., DPIR, TPAMI 2021).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from unblur.deconv._domain import grad, grad_adjoint


class HyperLaplacian:
    r"""Prior :math:`|w|^\alpha`, :math:`0 < \alpha < 1`, acting on image gradients.

    The scalar proximal problem :math:`\min_w t|w|^\alpha + \tfrac12(w - v)^2` is solved through a
    lookup table, as Krishnan & Fergus (2009) propose. The problem is scale invariant: with
    :math:`s = t^{1/(2-\alpha)}` its solution is :math:`s\,h(v/s)` where :math:`h` solves the
    problem for :math:`t = 1`, so a single table of :math:`h` per :math:`\alpha` serves every
    :math:`t`. :math:`h(a)` is 0 below a threshold and otherwise the largest root of
    :math:`\alpha r^{\alpha-1} + r - a = 0`, kept when it has lower energy than 0.
    """

    acts_on = "gradient"
    table_max = 200.0
    table_size = 40001

    def __init__(self, alpha: float = 2 / 3):
        if not 0.3 <= alpha < 1:
            raise ValueError(f"alpha must be in [0.3, 1), got {alpha}")
        self.alpha = float(alpha)
        self._table = _unit_prox_table(self.alpha, self.table_max, self.table_size)
        self._tables = {}

    def _lut(self, device, dtype):
        key = (device, dtype)
        if key not in self._tables:
            self._tables[key] = torch.as_tensor(self._table, device=device, dtype=dtype)
        return self._tables[key]

    def prox(self, v: torch.Tensor, t: float) -> torch.Tensor:
        s = t ** (1.0 / (2.0 - self.alpha))
        lut = self._lut(v.device, v.dtype)
        step = self.table_max / (self.table_size - 1)
        a = v.abs() / s
        pos = a / step
        i0 = pos.long().clamp_(max=self.table_size - 2)
        frac = (pos - i0).clamp_(max=1.0)
        h = torch.lerp(lut[i0], lut[i0 + 1], frac)
        # Beyond the table h(a) ~ a - alpha a^(alpha-1): keep the table's last offset.
        beyond = a - self.table_max
        h = torch.where(beyond > 0, h + beyond, h)
        return torch.copysign(h * s, v)


@functools.lru_cache(maxsize=8)
def _unit_prox_table(alpha: float, vmax: float, n: int) -> np.ndarray:
    a = np.linspace(0.0, vmax, n)
    # g(r) = alpha r^(alpha-1) + r is convex for r > 0 with its minimum at r_min.
    r_min = (alpha * (1 - alpha)) ** (1 / (2 - alpha))
    lo = np.full_like(a, r_min)
    hi = np.maximum(a, r_min)
    for _ in range(80):  # bisection on the increasing branch r >= r_min
        mid = 0.5 * (lo + hi)
        above = alpha * mid ** (alpha - 1) + mid - a > 0
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    r = 0.5 * (lo + hi)
    has_root = alpha * r_min ** (alpha - 1) + r_min <= a
    energy_r = r**alpha + 0.5 * (r - a) ** 2
    energy_0 = 0.5 * a**2
    return np.where(has_root & (energy_r < energy_0), r, 0.0)


class TotalVariation:
    r"""Isotropic total variation :math:`\sum_p \|(\nabla x)_p\|_2`, per colour channel."""

    acts_on = "gradient"

    def prox(self, v: torch.Tensor, t: float) -> torch.Tensor:
        # v stacks the two gradient components on a leading axis: (2, B, C, H, W).
        shrink = torch.hypot(v[0], v[1]).clamp_min_(1e-12)
        shrink = shrink.reciprocal_().mul_(-t).add_(1).clamp_min_(0)  # 1 - t / |v|, at least 0
        return v * shrink


class DenoiserPrior:
    """Plug-and-play prior: the proximal step is ``denoiser(v, sigma)`` with ``sigma = sqrt(t)``.

    ``denoiser`` maps a ``(B, C, H, W)`` tensor and a noise std (float) to a denoised tensor.
    """

    acts_on = "image"

    def __init__(self, denoiser: Callable[[torch.Tensor, float], torch.Tensor]):
        self.denoiser = denoiser

    def prox(self, v: torch.Tensor, t: float) -> torch.Tensor:
        return self.denoiser(v, math.sqrt(t))


def tv_denoise(y: torch.Tensor, sigma: float, iterations: int = 10) -> torch.Tensor:
    r"""Total-variation denoising by Chambolle's dual projection algorithm.

    Solves :math:`\min_x \tfrac12\|x - y\|^2 + \lambda\,\mathrm{TV}(x)` with
    :math:`\lambda = 0.9\,\sigma` (A. Chambolle, "An algorithm for total variation minimization
    and applications", JMIV 2004), with a fixed number of dual iterations. Used as the default
    plug-and-play denoiser, so that the PnP solver works without a learned model.
    """
    lam = max(float(sigma), 1e-6) * 0.9
    px = torch.zeros_like(y)
    py = torch.zeros_like(y)
    tau = 0.249
    for _ in range(iterations):
        div = -grad_adjoint(px, py)
        gx, gy = grad(div - y / lam)
        norm = 1 + tau * torch.sqrt(gx**2 + gy**2)
        px = (px + tau * gx) / norm
        py = (py + tau * gy) / norm
    return y + lam * grad_adjoint(px, py)
