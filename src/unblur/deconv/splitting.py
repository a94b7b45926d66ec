r"""Variable-splitting deconvolution of ``valid``-blurred images.

All three solvers minimise

.. math:: \tfrac12 \|M K x - y\|^2 + \lambda\, \phi(x)

on the periodic work grid of :class:`~unblur.deconv._domain.ValidDomain`, where :math:`M` keeps
the observed pixels, so pixels near the border are restored from the scene content the kernel
actually saw, without assuming a periodic or reflected scene. Splitting :math:`u = Kx` (handled by
ADMM with a scaled dual, Almeida & Figueiredo 2013) makes the data step a per-pixel division, and
splitting the prior's argument (:math:`w = \nabla x` or :math:`z = x`) makes the prior step a
proximal operator; the :math:`x` step is then a single division in Fourier space:

.. math:: \hat x = \frac{\rho\,\bar{\hat K}\,\widehat{(u - a)} + \beta\, \hat R^*\hat w}
                        {\rho |\hat K|^2 + \beta |\hat R|^2}

with :math:`R = \nabla` (gradient priors) or :math:`R = I` (denoiser priors).

* :func:`hyperlaplacian` follows Krishnan & Fergus (NIPS 2009): half-quadratic splitting with
  :math:`\beta` increased geometrically (continuation) and the lookup-table prox.
* :func:`total_variation` runs ADMM with a fixed :math:`\beta` and a dual for :math:`w`.
* :func:`plug_and_play` runs HQS with a denoiser whose noise level decreases geometrically from
  ``sigma_start`` to the target (DPIR schedule, Zhang et al. TPAMI 2021).
"""
from __future__ import annotations

import numpy as np
import torch

from unblur.deconv._domain import ValidDomain, grad, grad_adjoint
from unblur.deconv.priors import DenoiserPrior, HyperLaplacian, TotalVariation, tv_denoise


def _solve(y, kernel, prior, lam, betas, rho=1.0, dual_prior=False, inner=1, x0=None, dom=None, callback=None,
           grid=False, weight=None, relax=1.0):
    """Shared splitting loop; ``betas`` is the sequence of prior penalties, one per iteration.

    Each iteration takes one prior step and then ``inner`` data and x steps (cheap FFT steps that
    bring ``x`` closer to the exact minimiser for the current prior term). ``rho`` is the penalty
    of :math:`u = Kx`, a number or one value per iteration (the scaled dual is rescaled when it
    changes). ``relax`` is the over-relaxation factor of ADMM (Eckstein & Bertsekas 1992; Boyd et
    al. 2011, section 3.4.3) for :math:`u` and, with ``dual_prior``, for :math:`w`. ``x0`` is a
    starting latent grid (default: ``y`` replicated outwards); ``grid=True`` returns the whole grid.
    ``weight`` (broadcastable to ``y``, in ``[0, 1]``) weighs the data term per pixel.
    """
    dom = ValidDomain(y, kernel, weight=weight) if dom is None else dom
    x = dom.initial(y) if x0 is None else x0
    M, My, K, K2 = dom.mask, dom.My, dom.K, dom.K2
    on_grad = prior.acts_on == "gradient"
    R2 = dom.D2 if on_grad else 1.0
    rhos = [float(rho)] * len(betas) if np.ndim(rho) == 0 else [float(r) for r in rho]
    if len(rhos) != len(betas):
        raise ValueError(f"rho has {len(rhos)} values for {len(betas)} iterations")
    X = dom.fft(x)
    Kx = dom.ifft(K * X)
    a = torch.zeros_like(Kx)
    g = torch.stack(grad(x)) if on_grad else None
    b = torch.zeros_like(g) if dual_prior else 0
    beta_now = rho_now = None
    for it, (beta, r) in enumerate(zip(betas, rhos)):
        if r != rho_now:
            if rho_now is not None:
                a.mul_(rho_now / r)  # the unscaled dual rho * a is what carries over
            # the data step u = (My + r (Kx + a)) / (M + r) with its coefficients
            u_scale = r / (M + r)
            u_offset = My / (M + r)
        if beta != beta_now or r != rho_now:  # Fourier coefficients of the x step
            den = r * K2 + beta * R2
            data_coef = (r * K.conj()) / den
            prior_coef = beta / den
            beta_now, rho_now = beta, r
        # prior step
        if on_grad:
            w = prior.prox(g + b, lam / beta)
            if dual_prior and relax != 1.0:
                w.mul_(relax).add_(g, alpha=1 - relax)
            prior_rhs = dom.fft(grad_adjoint(*(w - b))) * prior_coef
        else:
            w = prior.prox(x, lam / beta)
            prior_rhs = dom.fft(w) * prior_coef
        for _ in range(inner):
            # data step: u = argmin 1/2 |Mu - y|^2 + r/2 |u - (Kx + a)|^2
            u = torch.addcmul(u_offset, u_scale, Kx + a)
            if relax != 1.0:
                u.mul_(relax).add_(Kx, alpha=1 - relax)
            # x step (the Fourier division, with the coefficients above)
            X = data_coef * dom.fft(u - a) + prior_rhs
            x = dom.ifft(X)
            Kx = dom.ifft(K * X)
            a.add_(Kx).sub_(u)
        if on_grad:
            g = torch.stack(grad(x))
            if dual_prior:
                b = b + g - w
        if callback is not None:
            callback(it, dom.crop(x))
    return x if grid else dom.crop(x)


def default_lambda(method: str, sigma: float) -> float:
    r"""Regularisation weight :math:`\lambda` from the noise std :math:`\sigma` (image units).

    The rule is :math:`\lambda = c\,\max(\sigma, \sigma_{min})^p` with :math:`(c, p)` fitted per
    prior on synthetic camera-shake blur of training images (``cbsd432``), see
    ``unblur bench``. ``sigma_min = 0.002`` keeps a little regularisation for clean images.
    """
    c, p = _LAMBDA_RULES[method]
    return c * max(float(sigma), 2e-3) ** p


# (c, p) of default_lambda; tuned on training images (see BENCHMARKS.md for the results they give).
_LAMBDA_RULES = {
    "hyperlaplacian": (0.3, 1.25),
    "tv": (2.0, 1.6),
    "pnp": (0.03, 1.3),
    "pnp-tv": (1.0, 2.0),
}


def hyperlaplacian(y: torch.Tensor, kernel, sigma: float, lam: float | None = None, alpha: float = 2 / 3,
                   beta_start: float = 4.0, beta_max: float = 256.0, beta_rate: float = 4.0,
                   inner: int = 2, rho: float = 1.0, weight: torch.Tensor | None = None, callback=None) -> torch.Tensor:
    r"""Deconvolution with a hyper-Laplacian gradient prior :math:`|\nabla x|^\alpha`.

    Krishnan & Fergus, "Fast image deconvolution using hyper-Laplacian priors", NIPS 2009:
    half-quadratic splitting in which the gradient penalty :math:`\beta` (in units of
    :math:`\lambda`) grows from ``beta_start`` to ``beta_max`` by ``beta_rate``, ``inner`` passes
    each, with the scalar :math:`w` problem solved by lookup table. The data term is the exact
    ``valid`` model with unknown boundaries.

    Parameters
    ----------
    y : torch.Tensor
        Blurred image ``(B, C, H, W)``.
    kernel : torch.Tensor
        Blur kernel.
    sigma : float
        Noise std of ``y``; sets ``lam`` by :func:`default_lambda` when ``lam`` is None.
    alpha : float
        Exponent of the prior, 0.5 to 0.8 for natural images.
    weight : torch.Tensor, optional
        Per-pixel weight of the data term, broadcastable to ``y`` (0 leaves a pixel out, e.g. a
        clipped highlight; see :func:`unblur.deconv.deconvolve`'s ``saturation``).
    """
    lam = default_lambda("hyperlaplacian", sigma) if lam is None else lam
    betas = []
    beta = beta_start
    while beta <= beta_max * (1 + 1e-9):
        betas += [beta * lam] * inner
        beta *= beta_rate
    return _solve(y, kernel, HyperLaplacian(alpha), lam, betas, rho=rho, callback=callback, weight=weight)


#: Number of penalty values in :func:`total_variation`'s schedule (4 steps of 5 iterations gave the
#: same results as a new value every iteration, within 0.01 dB on lai-synth and shake-synth cases).
RHO_LEVELS = 4


def total_variation(y: torch.Tensor, kernel, sigma: float, lam: float | None = None, iterations: int = 20,
                    beta: float | None = None, rho: float = 0.2, rho_start: float | None = None, relax: float = 1.7,
                    weight: torch.Tensor | None = None, callback=None, dom: ValidDomain | None = None,
                    grid: bool = False) -> torch.Tensor:
    r"""Deconvolution with isotropic total variation, by ADMM.

    Minimises :math:`\tfrac12\|MKx - y\|^2 + \lambda\,\mathrm{TV}(x)` with splittings
    :math:`u = Kx`, :math:`w = \nabla x` and scaled duals for both (Afonso, Bioucas-Dias &
    Figueiredo, "Fast image recovery using variable splitting and constrained optimization",
    IEEE TIP 2010). ``beta`` (default :math:`10\lambda`) is the gradient penalty.

    The penalty of :math:`u = Kx` grows geometrically from ``rho_start`` (default
    :math:`\min(2\beta, \rho)`) to ``rho`` in :data:`RHO_LEVELS` steps, and both splittings are
    over-relaxed by ``relax``.
    Where the kernel reaches outside the photo, :math:`u` is unobserved and each x step only
    moves :math:`x` there by about :math:`\beta / \rho` of the way to what the prior wants, so a
    constant large :math:`\rho` leaves the border band of large-kernel blur far from converged
    after 20 iterations (on ``lai-synth``, 31-75 px kernels, 200 iterations gave +1.1 dB on the
    band). Starting small fills the band first, ending at 0.2 fits the observed pixels. On every
    8th ``lai-synth`` case, 20 iterations of this schedule gained 0.40 dB (0.84 dB on the border
    band) over a constant 0.2, as much as 80 constant-penalty iterations; on every 6th
    ``shake-synth`` case (11-41 px), results moved by at most 0.04 dB at 0.5, 1 and 2 % noise.
    ``dom`` (a :class:`~unblur.deconv._domain.ValidDomain` of ``y`` and ``kernel``) and ``grid``
    (return the whole latent grid) let :func:`plug_and_play` start from this solution.
    ``weight``: per-pixel weight of the data term (as in :func:`hyperlaplacian`).
    """
    lam = default_lambda("tv", sigma) if lam is None else lam
    beta = 10 * lam if beta is None else beta
    rho_start = min(2 * beta, rho) if rho_start is None else rho_start
    # RHO_LEVELS values, each held for an equal share of the iterations: the x-step coefficients
    # change only that often (recomputing them every iteration cost 11 % of the run time)
    levels = np.geomspace(rho_start, rho, max(1, min(RHO_LEVELS, iterations)))
    rhos = [levels[i * len(levels) // iterations] for i in range(iterations)]
    return _solve(y, kernel, TotalVariation(), lam, [beta] * iterations, rho=rhos, dual_prior=True, relax=relax,
                  callback=callback, dom=dom, grid=grid, weight=weight)


def plug_and_play(y: torch.Tensor, kernel, sigma: float, denoiser="learned", iterations: int = 6,
                  sigma_start: float = 49 / 255, lam: float | None = None, warm_start: int = 20, inner: int = 3,
                  rho: float = 1.0, weight: torch.Tensor | None = None, srgb_slope: float | None = None,
                  callback=None) -> torch.Tensor:
    r"""Plug-and-play half-quadratic splitting with a denoiser as the prior step.

    With :math:`z = x`, the prior step is ``denoiser(x, s_t)``; the denoiser strength :math:`s_t`
    decreases geometrically from ``sigma_start`` to :math:`\max(\sigma, 0.005)` over
    ``iterations`` steps, and the penalty is :math:`\beta_t = \lambda / s_t^2`, so that the
    x-step weighs the data term against :math:`\|x - z\|^2` as a MAP step at noise level
    :math:`s_t` would (Zhang et al., "Plug-and-play image restoration with deep denoiser prior",
    TPAMI 2021, whose deblurring schedule runs 8 iterations from 49/255; from the warm start below,
    6 did better, by 0.1 dB on 36 training images, and 11 worse).

    Two changes for the ``valid`` model, whose border pixels the data constrain only partly:

    * the loop starts from ``warm_start`` iterations of :func:`total_variation` instead of the
      replicated input. From the plain start the first steps (small :math:`\beta_t`) fill the
      partly observed border band with ringing that the denoiser, trained on white noise, does not
      remove (0.39 dB below the warm start on 12 training images, mostly in that band);
    * each denoiser call is followed by ``inner`` data and x steps (FFT only), so the splitting of
      the masked data term gets near the exact x-step of DPIR's circular model (``rho`` is the
      penalty of :math:`u = Kx`).

    ``srgb_slope`` (not None) says that ``y`` is linear light decoded from sRGB values, as
    :func:`unblur.deconv.deconvolve` makes it when the blur acted in linear light, and that
    ``sigma`` was converted from the stored values' noise level with this mean slope of the
    decoding curve (:func:`~unblur.deconv.space.linear_noise`). The prior step then averages the
    denoiser's output on :math:`x` (clamped to ``[0, 1]``) and on its sRGB encoding, told
    :math:`s_t /` ``srgb_slope`` and decoded back (:func:`two_domain_denoiser`).

    ``denoiser`` is ``"learned"`` (the shipped network, :func:`unblur.denoising.learned_denoiser`),
    ``"tv"`` (total variation denoising, :func:`~unblur.deconv.priors.tv_denoise`), or any
    callable ``f(x, s)`` on ``(B, C, H, W)`` tensors. ``lam`` defaults to
    :func:`default_lambda` with the rule of that denoiser (``"pnp"`` for the learned one,
    ``"pnp-tv"`` for TV; a callable uses ``"pnp"``). ``weight``: per-pixel weight of the
    data term (as in :func:`hyperlaplacian`).
    """
    if denoiser == "learned":
        from unblur.denoising import learned_denoiser

        denoiser, rule = learned_denoiser(y.device), "pnp"
    elif denoiser == "tv":
        denoiser, rule = tv_denoise, "pnp-tv"
    elif callable(denoiser):
        rule = "pnp"
    else:
        raise ValueError(f"denoiser must be 'learned', 'tv' or a callable, got {denoiser!r}")
    lam = default_lambda(rule, sigma) if lam is None else lam
    if srgb_slope is not None:
        denoiser = two_domain_denoiser(denoiser, srgb_slope)
    sigmas = np.geomspace(max(sigma_start, sigma), max(sigma, 0.005), iterations)
    betas = [lam / s**2 for s in sigmas]
    dom = ValidDomain(y, kernel, weight=weight)
    x0 = total_variation(y, kernel, sigma, iterations=warm_start, dom=dom, grid=True) if warm_start else None
    return _solve(y, kernel, DenoiserPrior(denoiser), lam, betas, rho=rho, inner=inner, x0=x0, dom=dom,
                  callback=callback)


def two_domain_denoiser(denoiser, srgb_slope: float):
    r"""Prior step for linear light of sRGB-coded images: the mean of ``denoiser`` in both tone spaces.

    Returns ``f(x, s) = (D(clip(x), s) + decode(D(encode(x), s / srgb_slope))) / 2`` for a
    linear-light estimate :math:`x`, where ``encode``/``decode`` are the sRGB curve
    (:func:`~unblur.color.linear_to_srgb`, which clips to ``[0, 1]``, and
    :func:`~unblur.color.srgb_to_linear`) and ``srgb_slope`` converts the linear noise level back
    to the stored values (the mean slope of the decoding curve over the image, as
    :func:`~unblur.deconv.space.linear_noise` uses it).

    The learned denoiser was trained on sRGB-coded photos with noise of one level everywhere. In
    linear light a dark photo is a nearly black image whose noise is far from uniform (the
    decoding curve is up to 30 times steeper at white than in the deep shadows, so one noise
    level converted by the mean slope is too low for the bright parts), and plug-and-play in
    linear light with the plain denoiser broke down on such photos: on three dark
    ``train-shake`` images at 2 % noise (mean slope 0.24-0.31) it gave 24.0-24.6 dB with the
    true kernel, below total variation (25.8-27.2 dB). On the encoded image the denoiser sees
    what it was trained on: 29.7-32.4 dB. But alone it lost up to 2 dB on brighter photos with
    41 px kernels, where the linear-light denoiser did better. The mean of both, on 14 such
    training cases (7 with 41 px kernels, 7 with 21 px ones including the three dark ones),
    gained on 13 (28.5-29.9 dB on the dark ones) and lost 0.03 dB on one; on 32 compact
    camera-shake cases (11-41 px, 0.5-2 % noise, true kernels) it raised plug-and-play from
    27.59 to 28.57 dB. Clipping the linear-light input alone (without the encoded branch) gave
    26.3-26.4 dB on two of the dark cases. Each step calls the denoiser twice. On the
    benchmarks (true kernels) ``pnp`` rose from 26.57 to 27.43 dB on ``shake-synth`` (blurred
    in linear light; at 2 % noise from 24.21 to 25.27 dB, where it had been below ``tv``) and
    from 24.66 to 24.67 dB on ``lai-synth`` (blurred on sRGB values, so mostly solved on the
    stored values, where nothing changes); a 1 MP photo took 11.7 s instead of 4.7 s.
    """
    from unblur.color import linear_to_srgb, srgb_to_linear

    def f(x: torch.Tensor, s: float) -> torch.Tensor:
        encoded = srgb_to_linear(denoiser(linear_to_srgb(x), s / srgb_slope))
        return (denoiser(x.clamp(0, 1), s) + encoded) / 2

    return f
