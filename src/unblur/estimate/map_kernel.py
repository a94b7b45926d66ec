r"""Multi-scale MAP estimation of a blur kernel from a single blurred image.

The kernel :math:`k` and a latent sharp image :math:`x` are estimated by alternating

.. math::
    x &\leftarrow \arg\min_x \|M(k * x - y)\|^2 + \lambda \|\nabla x\|_0
         \; [+\, \mu \|\mathcal{D}(x)\|_0] \\
    k &\leftarrow \arg\min_{k \ge 0,\, \sum k = 1} \|M(k * \nabla x - \nabla y)\|^2 + \gamma \|k\|^2

coarse to fine over an image pyramid (Fergus et al. 2006; Cho & Lee 2009):

* the :math:`L_0` gradient prior of Xu, Zheng & Jia ("Unnatural L0 sparse representation for
  natural image deblurring", CVPR 2013), minimised by half-quadratic splitting with an increasing
  penalty (Xu, Lu, Xu & Jia, "Image smoothing via L0 gradient minimization", SIGGRAPH Asia 2011).
  The latent image keeps only salient edges, which is what makes the kernel step well posed;
* optionally the dark-channel term :math:`\mu\|\mathcal{D}(x)\|_0` of Pan, Sun, Pfister & Yang
  ("Blind image deblurring using dark channel prior", CVPR 2016), which favours latent images
  whose local minima are zero (blur raises them); its half-quadratic step zeroes the pixels that are
  the minimum of their patch when they are dark enough;
* the kernel step in the gradient domain: least squares on the observed pixels only, by conjugate
  gradients with FFT-based products, followed by clipping of negative values, removal of taps
  below ``1/threshold`` (1/8) of the maximum and of every connected fragment but the heaviest
  (camera shake traces one connected path), normalisation, and centring (by the centre of mass)
  between scales. ``quality="high"`` of :func:`unblur.deblur` also runs every start at 1/12
  (``alt_thresholds``), which keeps the faint tail of shake that dwells at one point and then
  moves on; such an estimate wins only when its restoration is clearly sharper
  (``alt_margin``), it is wide (``alt_min_spread``) and it explains the image about as well as the
  best default estimate (``alt_max_misfit``);
* a kernel support that starts at about 3 px on the coarsest scale and grows with the estimate
  from scale to scale, up to the requested size;
* several starts, since the alternation is non-convex: from a horizontal line in linear light
  (undoing the sRGB curve, as a camera blurs) and from a vertical one on the stored values (right
  where the blur acted after the tone curve, and close to it where a camera's curve departs from
  sRGB). The kernel whose deconvolution is sharpest by the normalised sparsity measure of Krishnan,
  Tay & Fergus (CVPR 2011) is kept (:func:`select_kernel`);
* at the small scales (supports up to ``guide_max`` = 15 px), a learned guide first: the shipped
  latent predictor (:mod:`unblur.models.latent`, trained by :mod:`unblur.train.latent`) guesses the
  sharp window without knowing the kernel, and one kernel step fits the kernel between the
  guess's gradients and the observed ones before the alternations refine it. This borrows the
  learned-then-least-squares kernel fit of Chakrabarti ("A neural approach to blind motion
  deblurring", ECCV 2016): the guess only has to be right where the edges are, which an
  :math:`L_0` latent image from a 3-tap start often is not at the coarse scales, where the
  kernel's shape is decided.

Before any of this the estimation window is denoised with the project's learned denoiser
(:func:`unblur.denoising.learned_denoiser`), told 0.75 of the image's noise level: noise in
:math:`y` passes straight through the least-squares kernel step as speckle around the true trace
(Zhong, Cho, Metaxas, Paris & Wang, "Handling noise in single image deblurring using directional
filters", CVPR 2013, prefilter for the same reason), while a blurred image has little fine detail
for the denoiser to remove along with the noise. The coarse scales then get ``iterations`` (8)
alternations and the finest, which costs as much as all the others, ``finest_iterations`` (3).

The observation is a ``valid`` blur (:class:`unblur.deconv._domain.ValidDomain`); the data term is
masked to the observed pixels, and saturated pixels and their neighbourhood are masked out too
(light streaks do not obey the linear model). Estimation runs on the luminance (in linear light or
on the stored values, per start), on the most informative window of large images, so its cost
does not grow with megapixels. Photos whose long side exceeds 1280 px are estimated on a copy
downscaled to that size, and the kernel is enlarged back (:meth:`MapEstimator._estimate_downscaled`).

The measurements behind these choices, and the many variants that were tried and did not pay
(other thresholds and fragment rules, more starts, data and kernel weights, selection scores, a
last kernel step from a better latent image), are recorded in ``docs/kernel-estimation.md`` in the
source repository.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import threading
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F

from unblur._runtime import run_concurrently
from unblur.blur.kernels import center_kernel, crop_kernel, kernel_spread, resize_kernel
from unblur.color import srgb_to_linear
from unblur.deconv._domain import ValidDomain, grad, grad_adjoint
from unblur.estimate.noise_level import estimate_noise_level

__all__ = [
    "MapEstimator",
    "default_kernel_size",
    "estimate_kernel",
    "kernel_misfit",
    "luminance",
    "normalized_sparsity",
    "select_kernel",
    "select_region",
]


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Rec. 709 luminance of a ``(B, 3, H, W)`` tensor (gray images pass through)."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=x.dtype, device=x.device)
    return (x * w[None, :, None, None]).sum(1, keepdim=True)


def default_kernel_size(shape: tuple[int, int]) -> int:
    """Automatic kernel size: 15 % of the long side, odd, clamped to ``[25, 77]`` pixels.

    Camera shake on hand-held photos spans a few percent of the frame, and up to 15 % in the
    benchmark of Lai et al. (CVPR 2016: 75 px kernels on 512 px images). The support starts at
    about 3 px and only grows as far as the estimate reaches, so a size larger than the blur costs
    little, while a smaller one cannot recover the blur.
    """
    n = round(0.15 * max(shape))
    n = min(77, max(25, n))
    return n | 1


def select_region(y: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window with the most informative edges.

    The score of a window is the sum, over four edge orientations, of the square root of that
    orientation's gradient energy: a window only counts as informative when it has strong edges
    in several directions (a kernel cannot be estimated along an edge).
    """
    H, W = y.shape[-2:]
    if H <= size and W <= size:
        return 0, 0
    g = luminance(y)
    gx, gy = grad(g)
    gx, gy = gx[..., :-1, :-1], gy[..., :-1, :-1]
    hs, ws = min(size, H - 1), min(size, W - 1)
    stride = max(8, size // 8)
    # window means from stride x stride block means (linear in the pixels; pooling the windows
    # directly cost seconds at 12 MP); windows are whole numbers of blocks
    nh, nw = max(1, hs // stride), max(1, ws // stride)
    score = 0
    for theta in (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4):
        e = (math.cos(theta) * gx + math.sin(theta) * gy) ** 2
        blocks = F.avg_pool2d(e, stride, stride)
        score = score + F.avg_pool2d(blocks, (nh, nw), stride=1).clamp_min(0).sqrt()[0, 0]
    idx = int(torch.argmax(score))
    r, c = divmod(idx, score.shape[-1])
    return min(r * stride, max(H - size, 0)), min(c * stride, max(W - size, 0))


@dataclass
class MapEstimator:
    """Settings of the multi-scale MAP kernel estimator (see the module docstring).

    Attributes
    ----------
    kernel_size : int or None
        Kernel support (odd); None picks :func:`default_kernel_size`.
    prior : {"l0", "dark"}
        Latent prior: L0 gradients, or L0 gradients plus the dark channel.
    lambda_grad : float
        Initial weight of the L0 gradient term; divided by ``lambda_decay`` after each
        iteration, down to ``lambda_min``.
    lambda_dark : float
        Weight of the dark-channel term (``prior="dark"``).
    dark_patch : int
        Patch size of the dark channel.
    iterations : int
        Alternations of latent and kernel steps per scale.
    finest_iterations : int
        Alternations at the finest scale, at most ``iterations``. The coarse scales, which are
        cheap, settle the kernel's shape; the finest, which costs as much as all the others
        together, only refines it.
    scale_factor : float
        Pyramid ratio between scales.
    gamma : float
        Weight of :math:`\\|k\\|^2` relative to the gradient energy of the latent image.
    threshold : float
        Kernel taps below ``max / threshold`` are removed.
    alt_thresholds : tuple of float
        Further thresholds: every start is also run with each of these instead of ``threshold``,
        and :func:`select_kernel` picks among all the estimates (``quality="high"`` of
        :func:`unblur.deblur` uses 12; see the module docstring).
    alt_margin : float
        An estimate with an alternative threshold is only picked when the sharpness score of its
        restoration is lower than the best default estimate's by more than this fraction,
    alt_min_spread : float
        and when its spread (:func:`~unblur.blur.kernels.kernel_spread`, px) is at least this,
    alt_max_misfit : float
        and when its reblurring misfit (:func:`kernel_misfit`) is at most this multiple of the
        best default estimate's.
    region : int
        Side of the window used for estimation (the most informative one).
    max_side : int or None
        Images whose long side exceeds this are estimated on a copy downscaled to it, and the
        kernel is enlarged back (see :meth:`estimate`); None estimates at full resolution.
    saturation : float
        Luminance above this value counts as saturated and is masked with its neighbourhood.
    starts : tuple of (float, bool)
        One ``(direction, linear)`` pair per start: the direction (degrees) of the short line the
        coarsest scale starts from, and whether to estimate in linear light (undo the sRGB curve)
        or on the stored values. One estimate is made from each and the sharpest restoration
        picks the kernel (:func:`select_kernel`).
    denoise : float
        Denoise the estimation window with the shipped learned denoiser
        (:func:`unblur.denoising.learned_denoiser`) before estimating, told this fraction of the
        image's noise level (0 or False: no denoising; see the module docstring).
    noise : float or None
        Noise std of the image (for the denoising and the latent predictor); None estimates it
        on the window.
    guide_max : int
        At each scale whose kernel support is at most this many pixels, one kernel step fits the
        kernel to the guess of the latent predictor (:mod:`unblur.models.latent`) before the
        alternations (see the module docstring); 0 turns the guide off.
    """

    kernel_size: int | None = None
    prior: str = "l0"
    lambda_grad: float = 5e-4
    lambda_dark: float = 4e-3
    lambda_decay: float = 1.1
    lambda_min: float = 1e-4
    dark_patch: int = 15
    iterations: int = 8
    finest_iterations: int = 3
    scale_factor: float = math.sqrt(2)
    gamma: float = 0.1
    threshold: float = 8.0
    alt_thresholds: tuple[float, ...] = ()
    alt_margin: float = 0.05
    alt_min_spread: float = 4.0
    alt_max_misfit: float = 1.2
    region: int = 512
    max_side: int | None = 1280
    saturation: float = 0.97
    beta_max: float = 1e5
    beta_rate: float = 2.0
    starts: tuple[tuple[float, bool], ...] = ((0.0, True), (90.0, False))
    denoise: float = 0.75
    noise: float | None = None
    guide_max: int = 15

    def __post_init__(self):
        if self.prior not in ("l0", "dark"):
            raise ValueError(f"prior must be 'l0' or 'dark', got {self.prior!r}")

    # ------------------------------------------------------------------------------------------
    def latent(self, dom: ValidDomain, y: torch.Tensor, weight: torch.Tensor, lam: float):
        """L0-regularised latent image on the work grid (half-quadratic splitting)."""
        K, K2, D2 = dom.K, dom.K2, dom.D2
        Kc = K.conj()
        Wy = dom.embed(y * weight)
        unobserved = 1 - dom.embed(weight)
        x = dom.initial(y)
        Kx = dom.blur(x)
        beta = 2 * lam
        mu = 2 * self.lambda_dark
        while beta < self.beta_max:
            # data: fill the unobserved / masked pixels with the current prediction
            u = Wy + unobserved * Kx
            gx, gy = grad(x)
            keep = (gx * gx + gy * gy) > lam / beta
            gx.mul_(keep)
            gy.mul_(keep)
            rhs = Kc * dom.fft(u) + beta * dom.fft(grad_adjoint(gx, gy))
            den = K2 + beta * D2
            if self.prior == "dark":
                dark_u = self._dark_step(x, self.lambda_dark / mu)
                rhs = rhs + mu * dom.fft(dark_u)
                den = den + mu
                mu = min(mu * self.beta_rate, self.beta_max)
            X = rhs / den
            x = dom.ifft(X)
            Kx = dom.ifft(K * X)
            beta *= self.beta_rate
        return x

    def _dark_step(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Half-quadratic step of the dark channel term: zero dark patch minima below ``sqrt(t)``."""
        p = self.dark_patch
        local_min = _min_filter(_min_filter(x, p, -1), p, -2)
        is_min = x <= local_min + 1e-6
        return torch.where(is_min & (x**2 < t), torch.zeros_like(x), x)

    def kernel_step(self, dom: ValidDomain, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
                    k: torch.Tensor, cg_iterations: int = 20) -> torch.Tensor:
        r"""Gradient-domain least squares for the kernel on its support, then projection.

        Solves :math:`\min_k \sum_{d \in \{h, v\}} \|M_d (k * \partial_d x - \partial_d y)\|^2
        + \gamma E \|k\|^2` over the ``ks`` x ``ks`` support by conjugate gradients (warm-started
        from the current kernel). :math:`M_d` keeps the gradients of observed, unmasked pixels only:
        filling the unobserved border with the current prediction instead would bias the kernel
        towards its current value. :math:`E` is the latent gradient energy.

        The gradients of the :math:`L_0` latent image are used as they are, without the magnitude
        threshold of Cho & Lee (2009) or other data weights (``docs/kernel-estimation.md``).
        """
        ks = k.shape[-1]
        H, W = dom.shape
        m = dom.embed(weight)[0, 0]
        mx, my = m * torch.roll(m, -1, -1), m * torch.roll(m, -1, -2)  # both pixels of a difference observed
        gx, gy = grad(x[0, 0])
        ux, uy = grad(dom.embed(y)[0, 0])
        GX, GY = dom.fft(gx), dom.fft(gy)
        GXc, GYc = GX.conj(), GY.conj()

        def correlate(rx, ry):
            return dom.ifft(GXc * dom.fft(rx) + GYc * dom.fft(ry))[:ks, :ks]

        b = correlate(mx * ux, my * uy)
        lam = self.gamma * float((gx**2 + gy**2).sum())

        def A(p):
            P = torch.fft.rfft2(p, s=(H, W))
            return correlate(mx * dom.ifft(GX * P), my * dom.ifft(GY * P)) + lam * p

        kk = k.clone()
        r = b - A(kk)
        p = r.clone()
        rs = float((r * r).sum())
        tol = 1e-10 * max(float((b * b).sum()), 1e-30)
        for _ in range(cg_iterations):
            Ap = A(p)
            alpha = rs / max(float((p * Ap).sum()), 1e-30)
            kk = kk + alpha * p
            r = r - alpha * Ap
            rs_new = float((r * r).sum())
            if rs_new < tol:
                break
            p = r + (rs_new / rs) * p
            rs = rs_new
        return self.project(kk)

    def project(self, k: torch.Tensor) -> torch.Tensor:
        """Non-negative, thresholded, connected, centred, normalised kernel (same size)."""
        n = k.shape[-1]
        k = k.clamp_min(0)
        if float(k.max()) <= 0:
            k = torch.zeros_like(k)
            k[k.shape[0] // 2, k.shape[1] // 2] = 1
            return k
        k = torch.where(k < k.max() / self.threshold, torch.zeros_like(k), k)
        k = _drop_fragments(k)
        k = k / k.sum()
        return _crop_center(center_kernel(k), n)

    def grown_support(self, k: torch.Tensor) -> int:
        """Support for the next scale: the kernel's extent about its centre plus a growth margin.

        The support starts small at the coarsest scale and only grows as far as the estimated
        kernel reaches (plus ``2 + r / 4`` pixels of radius ``r``), up to the requested size: a
        support much larger than the blur only gives noise room to accumulate in the kernel.
        """
        c = k.shape[-1] // 2
        rows, cols = torch.nonzero(k > k.max() / self.threshold, as_tuple=True)
        r = int(torch.maximum((rows - c).abs().max(), (cols - c).abs().max())) if rows.numel() else 1
        r = r + 2 + r // 4
        return 2 * r + 1

    # ------------------------------------------------------------------------------------------
    def estimate(self, y: torch.Tensor) -> torch.Tensor:
        """Estimate the kernel of a ``valid``-blurred image ``y`` ``(1, C, H, W)`` in ``[0, 1]``.

        With several ``starts`` the estimates are made independently (side by side on a CPU with
        two or more torch threads, one thread each: :func:`unblur._runtime.run_concurrently`) and
        :func:`select_kernel` keeps the one whose deconvolution of the estimation window is
        sharpest. Images whose long side exceeds :attr:`max_side` are estimated on a downscaled
        copy (:meth:`_estimate_downscaled`); the kernel returned is then at the input's scale.
        """
        y = y.to(torch.float32)
        scale = max(y.shape[-2:]) / self.max_side if self.max_side else 1.0
        if scale > 1:
            return self._estimate_downscaled(y, scale)
        ks = self.kernel_size or default_kernel_size(tuple(y.shape[-2:]))
        ks = int(ks) | 1
        if min(y.shape[-2:]) < ks + 8:
            raise ValueError(f"the image ({y.shape[-1]}x{y.shape[-2]}) is too small for a {ks}-pixel kernel")
        size = max(self.region, 2 * ks + 32)
        top, left = select_region(y, size)
        y = y[..., top : top + size, left : left + size]
        g = luminance(y)
        sat = (g >= self.saturation).float()
        work = g
        noise = self.noise if self.noise is not None else float(estimate_noise_level(y))
        if self.denoise:
            from unblur.denoising import learned_denoiser

            work = luminance(learned_denoiser(y.device)(y, float(self.denoise) * noise).clamp(0, 1))
        # mask saturated pixels and the neighbourhood their blur reaches
        weight = 1 + _min_filter(_min_filter(-sat, ks | 1, -1), ks | 1, -2)  # 1 - max filter
        linear = srgb_to_linear(work)
        guide = _LatentGuide(g, noise) if self.guide_max > 0 else None
        estimators = [self] + [dataclasses.replace(self, threshold=t) for t in self.alt_thresholds]
        calls = [functools.partial(est._estimate_from, linear if lin else work, weight, ks, angle, guide, lin)
                 for est in estimators for angle, lin in self.starts]
        kernels = run_concurrently(calls) if y.device.type == "cpu" else [call() for call in calls]
        n = len(self.starts)  # the estimates at ``threshold``; then the wide alternatives compete
        kernels = kernels[:n] + [k for k in kernels[n:] if kernel_spread(k) >= self.alt_min_spread]
        if len(kernels) == 1:
            return kernels[0]
        return kernels[select_kernel(g, kernels, preferred=n, margin=self.alt_margin, max_misfit=self.alt_max_misfit)]

    def _estimate_downscaled(self, y: torch.Tensor, scale: float) -> torch.Tensor:
        r"""Estimate on ``y`` downscaled by ``scale`` (long side :attr:`max_side`), then enlarge the kernel.

        The kernel support (:func:`default_kernel_size` of the small copy, or ``kernel_size``
        divided by ``scale``) and the noise level are those of the small copy. Camera shake grows
        with the pixel count, while the support stops at 77 px and the estimation window at
        :attr:`region` px: at full resolution a 12 MP photo's window holds 2 % of the frame's
        area, with little structure when the photo is soft at the pixel level, and its kernel can
        be at most 2 % of the frame wide. On the ``large`` benchmark image (a photo enlarged 4x,
        blurred by a 31 px shake) the full-resolution estimate was a 40 px smear and TV with it
        gave 17.6 dB on a central 1024 px crop (blurred input 21.7 dB, true kernel 24.3 dB); from
        the copy downscaled to 1280 px it gave 23.0 dB. The price where the full resolution
        holds real detail: on 12 Kodak images (768 x 512, 15-41 px shake, 1 % noise) estimation
        on a copy downscaled twice gained 1.14 dB over the blurred input instead of 1.75 dB.
        Choosing between both estimates by :func:`select_kernel` picked the downscaled one in
        9 of 12 (1.22 dB), so it is not offered as a candidate.
        """
        small = _downscale(y, 1 / scale)
        ks = max(3, round(self.kernel_size / scale)) | 1 if self.kernel_size else None
        k = dataclasses.replace(self, kernel_size=ks, noise=None, max_side=None).estimate(small)
        return resize_kernel(k, scale=scale)

    def _estimate_from(self, g: torch.Tensor, weight: torch.Tensor, ks: int, angle: float,
                       guide: _LatentGuide | None = None, linear: bool = False) -> torch.Tensor:
        """Coarse-to-fine estimation on the work image ``g`` (in linear light if ``linear``) from a
        3-tap line at ``angle``, guided by the latent predictor at the small scales."""
        # pyramid: kernel sizes from ~3 px up to ks
        n_scales = max(1, math.floor(math.log(ks / 3.0) / math.log(self.scale_factor)) + 1)
        k = None
        prev_full = None
        for s in range(n_scales - 1, -1, -1):
            f = self.scale_factor**-s
            full = ks if s == 0 else max(3, round(ks * f) | 1)
            ys = _downscale(g, f)
            ws = weight if s == 0 else (F.interpolate(weight, size=ys.shape[-2:], mode="bilinear", align_corners=False) > 0.99).float()
            if k is None:
                k = _initial_kernel(full, angle, g.device)
            else:
                k = resize_kernel(k, scale=full / prev_full)
                k = self.project(_crop_center(k, min(full, self.grown_support(k))))
            prev_full = full
            lam = self.lambda_grad
            if guide is not None and k.shape[-1] <= self.guide_max:
                # the latent predictor's guess replaces the latent image for one kernel step
                dom = ValidDomain(ys, k)
                x = _place(dom, guide.predict(s, f, linear))
                k = self.kernel_step(dom, x, ys, _erode_border(ws, k.shape[-1] // 2 + 1), k)
            for _ in range(self.iterations if s > 0 else min(self.iterations, self.finest_iterations)):
                dom = ValidDomain(ys, k)
                x = self.latent(dom, ys, ws, lam)
                k = self.kernel_step(dom, x, ys, ws, k)
                lam = max(lam / self.lambda_decay, self.lambda_min)
        return _crop_center(k, ks)


class _LatentGuide:
    """Guesses of the shipped latent predictor (:mod:`unblur.models.latent`) on the pyramid of an
    estimation window ``g`` (stored values), one per scale, shared by the starts."""

    def __init__(self, g: torch.Tensor, noise: float):
        self.g, self.noise, self.cache = g, noise, {}
        self.lock = threading.Lock()  # the starts may run in threads (the first computes, the other waits)

    def predict(self, s: int, f: float, linear: bool) -> torch.Tensor:
        with self.lock:
            if s not in self.cache:
                from unblur.models.latent import predict_latent

                self.cache[s] = predict_latent(_downscale(self.g, f), self.noise * f)  # downsampling by f scales white noise by about f
            x = self.cache[s]
        return srgb_to_linear(x) if linear else x


def _downscale(x: torch.Tensor, f: float) -> torch.Tensor:
    """``x`` resized by ``f <= 1`` (antialiased bilinear; ``x`` itself for 1): the resampling of the
    pyramid, shared by the starts and the latent guide so that their levels match, and of the
    copy of a large photo."""
    return x if f == 1 else F.interpolate(x, scale_factor=f, mode="bilinear", antialias=True, align_corners=False)


def _place(dom: ValidDomain, x: torch.Tensor) -> torch.Tensor:
    """An observation-aligned latent image on ``dom``'s grid, extended by edge replication."""
    H, W = dom.shape
    top, left = dom.kh // 2, dom.kw // 2
    return F.pad(x, (left, W - left - dom.Wy, top, H - top - dom.Hy), mode="replicate")


def _erode_border(w: torch.Tensor, n: int) -> torch.Tensor:
    """``w`` with ``n`` pixels zeroed along each border."""
    out = torch.zeros_like(w)
    if min(w.shape[-2:]) > 2 * n:
        out[..., n:-n, n:-n] = w[..., n:-n, n:-n]
    return out


def normalized_sparsity(x: torch.Tensor, border: int = 12) -> float:
    r"""Normalised sparsity :math:`\|m\|_1 / (\|m\|_2 \sqrt{N})` of the gradient magnitudes :math:`m`.

    Krishnan, Tay & Fergus ("Blind deconvolution using a normalized sparsity measure", CVPR 2011)
    show that this scale-invariant ratio decreases as an image gets sharper, while blur and
    ringing raise it. ``border`` pixels on each side are ignored. Lies in ``(0, 1]``.
    """
    g = luminance(x)
    if min(g.shape[-2:]) > 2 * border + 2:
        g = g[..., border:-border, border:-border]
    gx, gy = grad(g)
    m = torch.sqrt(gx[..., :-1, :-1] ** 2 + gy[..., :-1, :-1] ** 2)
    return float(m.sum() / (torch.sqrt((m**2).sum()) * math.sqrt(m.numel())).clamp_min(1e-12))


def kernel_misfit(y: torch.Tensor, kernel: torch.Tensor, noise: float, spaces: tuple[str, ...] = ("linear", "stored")) -> float:
    """How well ``kernel`` explains ``y``: :func:`unblur.deconv.space.reblur_error` in the tone
    space of ``spaces`` where it is lowest, relative to the noise level (at least
    :data:`unblur.blind.NOISE_FLOOR`). About 1 for a kernel that fits."""
    from unblur.blind import NOISE_FLOOR
    from unblur.deconv.space import reblur_error

    base = max(noise, NOISE_FLOOR)
    k = crop_kernel(kernel).to(y.device)
    return min(reblur_error(y, k, base, space) for space in spaces) / base


def select_kernel(y: torch.Tensor, kernels: list[torch.Tensor], noise: float | None = None,
                  preferred: int | None = None, margin: float = 0.0, max_misfit: float | None = None) -> int:
    """Index of the kernel whose deconvolution of ``y`` is sharpest (lowest :func:`normalized_sparsity`).

    With ``preferred = n``, the first ``n`` kernels are the default candidates and the others
    alternatives. The sharpest alternative wins only when its score is lower than the best default
    one's by more than the fraction ``margin`` and, with ``max_misfit``, when its
    :func:`kernel_misfit` is at most ``max_misfit`` times the best default one's: a sharper
    restoration from a kernel that explains the image clearly worse is more often ringing or
    false detail than a recovered tail.

    Each candidate restores ``y`` as the final step of :func:`unblur.deblur` does at its default
    quality (``QUALITY["fast"]``, ``valid`` model, noise level from :func:`~unblur.blind.solver_noise`). On
    camera-shake blur of training images (24 ``cbsd432`` crops, two estimates from different starts), this picks
    the better kernel in 21 of 24 cases, and it avoids the restorations that ring; it cannot tell
    whether *any* candidate is better than the blurred input, since every deconvolution sharpens.

    Other scores (reblurring fit, MAP objective, denoiser residual) picked worse
    (``docs/kernel-estimation.md``).
    """
    from unblur.blind import QUALITY, solver_noise
    from unblur.deconv import deconvolve

    if noise is None:
        noise = float(estimate_noise_level(y))
    scores = [normalized_sparsity(deconvolve(y, crop_kernel(k).to(y.device), method=QUALITY["fast"][0], noise=solver_noise(noise), space="stored"))
              for k in kernels]
    best = int(np.argmin(scores[:preferred]))
    if preferred is not None and preferred < len(kernels):
        alt = preferred + int(np.argmin(scores[preferred:]))
        if scores[alt] < (1 - margin) * scores[best] and (
                max_misfit is None
                or kernel_misfit(y, kernels[alt], noise) <= max_misfit * kernel_misfit(y, kernels[best], noise)):
            best = alt
    return best


def _min_filter(x: torch.Tensor, p: int, dim: int) -> torch.Tensor:
    """Minimum over a centred window of ``p`` (odd) samples along ``dim``, borders ignored.

    Windows of 2, 4, 8, ... samples are built by taking the minimum of two shifted copies, and
    the ``p`` window is the minimum of two overlapping power-of-two windows: about ``log2(p)``
    elementwise operations instead of ``p`` (``max_pool2d`` with stride 1 is slow on CPU).
    """
    r = p // 2
    pad = [r, r, 0, 0] if dim in (-1, x.dim() - 1) else [0, 0, r, r]
    m = F.pad(x, pad, value=float("inf"))
    n, w = x.shape[dim], 1
    while 2 * w <= p:
        m = torch.minimum(m.narrow(dim, 0, m.shape[dim] - w), m.narrow(dim, w, m.shape[dim] - w))
        w *= 2
    return torch.minimum(m.narrow(dim, 0, n), m.narrow(dim, p - w, n))


def _initial_kernel(n: int, angle: float, device=None) -> torch.Tensor:
    """A 3-tap line through the centre of an ``n`` x ``n`` grid at ``angle`` degrees."""
    k = torch.zeros(n, n, device=device)
    c = n // 2
    dy, dx = round(math.sin(math.radians(angle))), round(math.cos(math.radians(angle)))
    for t in (-1, 0, 1):
        k[c - t * dy, c + t * dx] = 1 / 3
    return k


def _crop_center(k: torch.Tensor, ks: int) -> torch.Tensor:
    """Crop or zero-pad ``k`` to ``ks`` x ``ks`` about its centre index (h // 2, w // 2)."""
    out = torch.zeros(ks, ks, dtype=k.dtype, device=k.device)
    h, w = k.shape[-2:]
    c = ks // 2
    r0, c0 = max(0, h // 2 - c), max(0, w // 2 - c)
    r1, c1 = min(h, h // 2 + (ks - c)), min(w, w // 2 + (ks - c))
    out[c - (h // 2 - r0) : c + (r1 - h // 2), c - (w // 2 - c0) : c + (c1 - w // 2)] = k[r0:r1, c0:c1]
    return out / out.sum().clamp_min(1e-12)


def _drop_fragments(k: torch.Tensor) -> torch.Tensor:
    """Keep only the connected fragment (8-connectivity) of ``k`` with the largest mass."""
    arr = k.detach().cpu().numpy()
    labels, n = scipy.ndimage.label(arr > 0, structure=np.ones((3, 3)))
    if n <= 1:
        return k
    mass = scipy.ndimage.sum(arr, labels, index=np.arange(1, n + 1))
    keep = torch.from_numpy(labels == int(np.argmax(mass)) + 1).to(k.device)
    return k * keep


def estimate_kernel(image, kernel_size: int | None = None, prior: str = "l0", **settings) -> torch.Tensor:
    """Estimate the blur kernel of ``image`` (numpy or torch); returns an ``(h, w)`` tensor.

    See :class:`MapEstimator` for the settings and the module docstring for the method.
    """
    from unblur._tensor import to_bchw

    y, _ = to_bchw(image)
    est = MapEstimator(kernel_size=kernel_size, prior=prior, **settings)
    with torch.no_grad():
        return est.estimate(y[:1].cpu())
