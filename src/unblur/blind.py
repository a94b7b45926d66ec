r"""Blind deblurring: estimate the blur of a photo, then remove it.

:func:`deblur` is the product's main entry point (the ``unblur deblur`` command calls it):

1. the noise level is estimated (:func:`unblur.estimate.estimate_noise_level`) unless given;
2. the multi-scale MAP estimator (:mod:`unblur.estimate.map_kernel`) estimates the kernel on the
   luminance. ``auto`` then hands mild blur to Polyblur (:func:`unblur.estimate.polyblur`): when
   the kernel's spread (:func:`unblur.blur.kernels.kernel_spread`, the largest standard deviation
   of its mass) is at most :data:`MILD_SIGMA` px, Polyblur's Gaussian model fits the blur and its
   halo-free polynomial deconvolution removes it. By this rule 19 of the 100 ``lai2016/real``
   photos are mild; by Polyblur's own Gaussian estimate 68 were, strongly shaken ones among them;
3. with a kernel from MAP estimation, every colour channel is deconvolved by the non-blind solver
   (:func:`unblur.deconv.deconvolve`, boundary-aware ``valid`` model): total variation at the
   default ``quality="fast"``; at ``quality="high"`` the mean of that and of plug-and-play with
   the learned denoiser (:data:`QUALITY`), after an estimator that also makes more candidate
   kernels (:data:`QUALITY_ESTIMATOR`). The deconvolution runs in the tone space the blur acted
   in, linear light or the stored values, as :func:`unblur.deconv.space.blur_space` decides with
   the estimated kernel, leaning towards linear light (:data:`LINEAR_MARGIN`), as cameras blur.

   The error of an estimated kernel acts as extra noise (:math:`(\hat k - k) * x`), which a
   regularisation tuned for the true kernel turns into ringing; so the noise level the solver is
   told depends on how well the kernel explains the photo (:func:`misfit_noise`). The estimate
   :math:`\hat\sigma` is first raised to :math:`\sigma = \max(\hat\sigma, \text{floor})`
   (:data:`NOISE_FLOOR`: compressed photos have almost no noise at the finest scale, yet their
   quantisation and compression artefacts must be regularised). A total-variation restoration
   told :math:`\sigma` is blurred again, and its RMS misfit :math:`e` to ``y`` on a central window
   gives the level :math:`\sigma \min(\max(e^2/\sigma^2, 1), 6)`, at least twice the floor: a
   kernel that fits gets the noise as it is, a wrong one more regularisation. Plug-and-play is
   never told less than :func:`solver_noise`, :data:`BLIND_NOISE_SCALE` times :math:`\sigma`
   (:data:`FIXED_FLOOR_SOLVERS`): its learned prior regularises too little otherwise;
4. ``auto`` falls back to Polyblur when deconvolution with the kernel amplifies the input's
   middle and high frequencies more than :data:`MAX_AMPLIFICATION` times, measured twice: before
   the final step on a central window at the fixed noise level (:func:`amplification`), and after
   it on the restoration's central :data:`GUARD_WINDOW` px (:func:`unblur.metrics.band_energy_ratio`);
   each caught a breakdown the other missed. A guard against breakdowns (a speckled kernel that
   turns the photo into coloured noise), not against the milder ringing of a wrong kernel.

The measurements behind these rules and constants, and the variants that were tried and did not
pay, are recorded in ``docs/blind-deblurring.md`` in the source repository.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unblur._tensor import from_bchw, kernel_to_numpy, to_bchw
from unblur.errors import UserError

__all__ = [
    "BLIND_NOISE_SCALE",
    "FIXED_FLOOR_SOLVERS",
    "GUARD_WINDOW",
    "LINEAR_MARGIN",
    "MAX_AMPLIFICATION",
    "MAX_MISFIT_SCALE",
    "METHODS",
    "MILD_SIGMA",
    "NOISE_FLOOR",
    "QUALITY",
    "QUALITY_ESTIMATOR",
    "DeblurResult",
    "amplification",
    "deblur",
    "misfit_noise",
    "solver_noise",
]

METHODS = ("auto", "map", "polyblur")
#: Final non-blind solvers of each ``quality`` setting; the restorations of several are averaged.
QUALITY = {"fast": ("tv",), "high": ("tv", "pnp")}
#: Settings of the MAP estimator at each ``quality`` setting (on top of the caller's).
QUALITY_ESTIMATOR = {"fast": {}, "high": {"alt_thresholds": (12.0,)}}
#: ``auto`` uses Polyblur when the MAP kernel's spread (largest std of its mass) is at most this (px).
MILD_SIGMA = 1.5
#: ``auto`` falls back to Polyblur when the restoration's band energy exceeds this multiple of the input's.
MAX_AMPLIFICATION = 8.0
#: Side of the central window (px) on which ``auto`` measures the amplification of the final restoration.
GUARD_WINDOW = 1024
#: The fixed level (:func:`solver_noise`) is this multiple of the noise level: it decides the tone space,
#: measures the guard (:func:`amplification`) and is the least level of :data:`FIXED_FLOOR_SOLVERS`.
BLIND_NOISE_SCALE = 2.0
#: Final solvers never told less than :func:`solver_noise`, however well the kernel fits (see above).
FIXED_FLOOR_SOLVERS = ("pnp",)
#: The final solver is told at most this multiple of the noise level, however poorly the kernel fits.
MAX_MISFIT_SCALE = 6.0
#: Smallest noise level (std, images in [0, 1]) the final non-blind step is told.
NOISE_FLOOR = 0.005
#: With an estimated kernel, the stored values are deconvolved only when linear light's reblurring
#: error exceeds theirs by this fraction or more (:func:`unblur.deconv.space.blur_space`).
LINEAR_MARGIN = 0.02


def solver_noise(noise: float) -> float:
    """Noise level assumed with an estimated kernel before its misfit is known (see above)."""
    return BLIND_NOISE_SCALE * max(noise, NOISE_FLOOR)


def misfit_noise(y: torch.Tensor, kernel: torch.Tensor, noise: float, space: str) -> float:
    """Noise level given to the final non-blind solver: grows with the kernel's misfit (see above)."""
    from unblur.deconv.space import decision_window
    from unblur.estimate.map_kernel import kernel_misfit

    ratio = kernel_misfit(decision_window(y, kernel), kernel, noise, spaces=(space,))
    return max(max(noise, NOISE_FLOOR) * min(max(ratio * ratio, 1.0), MAX_MISFIT_SCALE), BLIND_NOISE_SCALE * NOISE_FLOOR)


def amplification(y: torch.Tensor, kernel: torch.Tensor, noise: float, space: str) -> float:
    """How much deconvolution with ``kernel`` amplifies the middle and high frequencies of ``y``.

    :func:`unblur.metrics.band_energy_ratio` of the total-variation restoration of the central
    window of :func:`unblur.deconv.space.decision_window`, told the fixed level
    :func:`solver_noise`, to that window: the misfit level of the final step regularises a wrong
    kernel more and would hide a breakdown.
    """
    from unblur.deconv import deconvolve
    from unblur.deconv.space import decision_window
    from unblur.metrics import band_energy_ratio

    window = decision_window(y, kernel)
    return float(band_energy_ratio(deconvolve(window, kernel, method="tv", noise=solver_noise(noise), space=space), window))


@dataclass
class DeblurResult:
    """What :func:`deblur` found: restored image, kernel, and how it got there.

    ``noise`` is the noise std of the input, given or estimated. Polyblur does not use it, so
    after ``method="polyblur"`` it is only estimated when first read (about 40 ms per megapixel).
    """

    image: object
    kernel: object
    method: str
    _noise: float | None = None
    _source: torch.Tensor | None = field(default=None, repr=False)

    @property
    def noise(self) -> float:
        if self._noise is None:
            from unblur.estimate import estimate_noise_level

            self._noise, self._source = float(estimate_noise_level(self._source)), None
        return self._noise


def deblur(image, method: str = "auto", *, kernel_size: int | None = None, noise: float | None = None,
           prior: str = "l0", quality: str = "fast", solver: str | None = None, saturation: float | None = None,
           device=None, **estimator) -> DeblurResult:
    """Blind deblurring of one image (numpy ``(H, W[, C])`` or tensor ``(1, C, H, W)``).

    Parameters
    ----------
    image : ndarray or torch.Tensor
        The blurred photo, values in ``[0, 1]`` (integer arrays are scaled).
    method : {"auto", "map", "polyblur"}
        See the module docstring.
    kernel_size : int, optional
        Kernel support in pixels of ``image`` for MAP estimation (default: automatic, see
        :func:`unblur.estimate.map_kernel.default_kernel_size`). Images whose long side exceeds
        1280 px are estimated on a copy downscaled to that size (``max_side``), with the support
        scaled alike.
    noise : float, optional
        Noise std; estimated when omitted.
    prior : {"l0", "dark"}
        Latent prior of the MAP estimator.
    quality : {"fast", "high"}
        ``fast``: two candidate kernels, total variation (``tv``) as the final step. ``high``: four
        candidate kernels, and the mean of ``tv`` and of plug-and-play with the shipped learned
        denoiser (``pnp``) as the final step; about twice as slow.
    solver : str, optional
        Non-blind solver for the final step (a name of :data:`unblur.deconv.METHODS`); overrides
        the final step of ``quality``, not its estimation.
    saturation : float, optional
        Values at or above this level are clipped highlights (night lights, reflections): the
        final deconvolution leaves their plateaus out of its data term (``saturation`` of
        :func:`unblur.deconv.deconvolve`), and the estimator masks luminance above it (its
        ``saturation`` setting, 0.97 by default). Off by default: on the 100 ``lai-synth`` cases
        with the true kernels it cost 0.49 dB on average, since bright flat regions that were
        never clipped (white paper) are left out too. The Polyblur path ignores it.
    **estimator
        Further :class:`~unblur.estimate.map_kernel.MapEstimator` settings.

    Returns
    -------
    DeblurResult
        ``image`` in the caller's type and layout, ``kernel`` as numpy ``(h, w)`` for numpy input
        and a tensor otherwise.
    """
    from unblur.blur.kernels import crop_kernel, kernel_spread
    from unblur.deconv import check_saturation, deconvolve, resolve_space
    from unblur.deconv.space import central_window
    from unblur.estimate import estimate_noise_level, polyblur
    from unblur.estimate.map_kernel import MapEstimator
    from unblur.metrics import band_energy_ratio

    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if quality not in QUALITY:
        raise UserError(f"unknown quality {quality!r}; choose one of {', '.join(QUALITY)}")
    solvers = QUALITY[quality] if solver is None else (solver,)
    if saturation is not None:
        check_saturation(saturation)
        estimator = estimator | {"saturation": float(saturation)}  # the estimator masks the same level
    y, layout = to_bchw(image, device=device)
    if y.shape[0] != 1:
        raise UserError("deblur takes one image at a time")
    if noise is None and method != "polyblur":
        noise = float(estimate_noise_level(y))
    guarded = method == "auto"
    with torch.no_grad():
        if method in ("auto", "map"):
            try:
                settings = {"noise": noise} | QUALITY_ESTIMATOR[quality] | estimator
                kernel = MapEstimator(kernel_size=kernel_size, prior=prior, **settings).estimate(y)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            if method == "auto":
                method = "polyblur" if kernel_spread(kernel) <= MILD_SIGMA else "map"
        if method == "map":
            # the estimate fills a large square; its empty border only enlarges the solver's domain
            k, s = crop_kernel(kernel).to(y.device), solver_noise(noise)
            space = resolve_space(y, k, s, solvers[0], margin=LINEAR_MARGIN)  # once for all solvers
            if guarded and amplification(y, k, noise, space) > MAX_AMPLIFICATION:
                method = "polyblur"
            else:
                level = misfit_noise(y, k, noise, space)
                restored = sum(deconvolve(y, k, method=m, noise=max(level, s) if m in FIXED_FLOOR_SOLVERS else level,
                                          space=space, saturation=saturation)
                               for m in solvers) / len(solvers)
                if guarded and band_energy_ratio(central_window(restored, GUARD_WINDOW),
                                                 central_window(y, GUARD_WINDOW)) > MAX_AMPLIFICATION:
                    method = "polyblur"
        if method == "polyblur":
            restored, kernel = polyblur(y)
    kernel = kernel_to_numpy(kernel) if layout.kind == "numpy" else kernel
    return DeblurResult(from_bchw(restored, layout), kernel, method, noise, None if noise is not None else y)

