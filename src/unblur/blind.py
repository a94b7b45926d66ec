r"""Blind deblurring: estimate the blur of a photo, then remove it.

:func:`deblur` is the product's main entry point (the ``unblur deblur`` command calls it):

1. the noise level is estimated (:func:`unblur.estimate.estimate_noise_level`) unless given;
2. the multi-scale MAP estimator (:mod:`unblur.estimate.map_kernel`) estimates the kernel on the
   luminance. ``auto`` then hands mild blur to Polyblur: when the estimated kernel's spread
   (:func:`unblur.blur.kernels.kernel_spread`, the largest standard deviation of its mass) is at
   most :data:`MILD_SIGMA` px, Polyblur's Gaussian model fits the blur and its halo-free
   polynomial deconvolution removes it; otherwise the kernel is used. The rule used to be
   Polyblur's own Gaussian estimate (:func:`unblur.estimate.estimate_gaussian_blur`), which is
   cheap, but on the 100 ``lai2016/real`` photos, all of them shaken, it found a "mild" blur
   (at most 1.5 px) in 68, among them strongly shaken ones that Polyblur left blurred (bridge,
   church, coke, girls, outdoor). By the spread of the MAP kernel 19 of the 100 are mild. The
   price: every image pays for MAP estimation, and among the photos that moved to MAP a few come
   out with ringing (face, street1, sydney_opera, topresso) where Polyblur had left them blurred;
3. with a kernel from MAP estimation, every colour channel is deconvolved by the non-blind solver
   (:func:`unblur.deconv.deconvolve`, boundary-aware ``valid`` model): total variation by default;
   at ``quality="high"`` the mean of that and of plug-and-play with the learned denoiser
   (:data:`QUALITY`). The solver is told a noise
   level :data:`BLIND_NOISE_SCALE` times the estimated one: the error of an estimated kernel
   acts as extra noise (:math:`(\hat k - k) * x`), and a regularisation tuned for the true kernel
   turns it into ringing. On the ``shake-synth`` cases this costs about 0.15 dB where the kernel
   is good (similarity ~0.8) and gains about 1.5 dB where the estimate failed. The noise level
   is first raised to at least :data:`NOISE_FLOOR`: compressed photos (JPEG, video) have almost
   no noise at the finest scale, where the estimator looks (the median estimate on the 100
   ``lai2016/real`` photos is 0.03 %, on GoPro frames 0.1 %), yet quantisation, compression
   artefacts and the kernel error still have to be regularised; without the floor such photos
   come out covered in amplified grain. The level then follows
   how well the kernel explains the photo (:func:`misfit_noise`): a total-variation restoration
   told the noise level :math:`\sigma = \max(\hat\sigma, \text{floor})` is blurred again, and the
   RMS misfit :math:`e` to ``y`` on the central window where :func:`unblur.deconv.space.blur_space`
   decides gives the level :math:`\sigma \min(\max(e^2/\sigma^2, 1), 6)` (at least twice the
   floor). With a kernel that fits (:math:`e \approx \sigma`) the solver is told the noise as it
   is; the misfit of a wrong kernel, which the restoration would turn into ringing, raises it.
   With the kernels of ``high`` on 128 ``train-shake`` cases (64 compact, 64 support-filling),
   TV's best multiple of :data:`BLIND_NOISE_SCALE` times the noise went from about 0.5 (kernel
   similarity above 0.85; 0.5 is the least tried) to 2 to 3 (below 0.6), with an oracle choice
   per case 0.48 dB above the fixed level. The rule (chosen on the 64 even-index cases: the
   multiplier, the exponent 2 and the cap) gained 0.27 dB there and 0.12 dB on the 64 held-out
   ones; a fixed 1.5 times the noise 0.09 and 0.06 dB, the misfit at twice the noise level
   (which the space decision computes anyway) 0.20 and 0.03 dB. It costs one more
   total-variation restoration of the window (256 px). Plug-and-play is never told less than the
   fixed level (:data:`FIXED_FLOOR_SOLVERS`): told the misfit level as well, ``high``'s
   TV/plug-and-play mean fell by 0.05 dB on 45 ``shake-synth`` cases (at 2 % noise by 0.23 dB),
   although on the 128 training cases it rose from 23.38 to 23.61 dB: where the kernel fits, the
   learned prior told the noise as it is regularises too little at 2 % noise (training cases:
   22.13 against 22.89 dB at twice the level). With the level raised to the fixed one, the mean
   rose to 23.50 dB there, and on ``shake-synth`` from 24.08 to 24.14 dB (0.5, 1 and 2 % noise:
   +0.13, +0.05 and +0.02 dB; 62 cases better, 62 worse). On the whole
   benchmarks the misfit level raised ``fast`` from 23.64 to 23.76 dB on ``shake-synth`` (at 1 % noise from 23.76
   to 23.91 dB; 77 cases better, 47 worse), from 16.62 to 16.68 dB on ``lai-synth`` (32 better,
   57 worse, mostly by little) and from 29.73 to 29.75 dB on ``gopro``. On real photos whose
   wrong kernel rang (``lai2016/real`` face and topresso) the level rose from 1 % to 3 % and
   most of the ringing went. What ``quality="high"`` gains depends on the kernel: on
   128 cases of training images (64 with 31-61 px shake kernels that fill their support, 1 %
   noise; 64 with 11-41 px ones, 0.5-2 % noise), plug-and-play gained 0.14 dB over TV with the
   estimated kernel on the first half and lost 0.02 dB on the second. By kernel similarity it
   gained 0.8 / 0.7 dB above 0.85, +0.1 / -0.25 dB at 0.7-0.85 and -0.4 / -0.7 dB below: the learned prior
   restores more detail with a good kernel and more artefacts with a poor one. Telling it 3 or 4
   times the noise level instead of 2 moved the mean by at most 0.1 dB. With the true kernel it
   gains 1.5 / 0.9 dB. Hence ``high`` averages both restorations, whose errors differ: on 80
   ``train-shake`` cases (index ``i`` in each half with ``i % 4 == 0`` or ``i % 8`` in 1-3;
   kernels estimated at the default settings, noise estimated) TV gave 23.07 dB, plug-and-play
   23.30 and their mean 23.48. By kernel similarity (below 0.7, 0.7-0.85, above 0.85; 15, 30
   and 35 cases): TV 21.12, 23.25 and 23.75 dB, plug-and-play 20.27, 23.32 and 24.59, the mean
   20.98, 23.56 and 24.49. Weights of 0.3 to 0.8 on plug-and-play gave 23.39 to 23.49 dB.
   Nor did a weaker plug-and-play inside the mean carry over: half its default :math:`\lambda`
   raised the mean by 0.12 dB on 48 ``train-shake`` cases (kernels of ``high``) and by 0.01 dB
   on 40 others, but on ``shake-synth`` ``high`` fell from 23.99 to 23.92 dB (at 1 % noise
   +0.02 dB, at 0.5 % -0.17 dB). Cycling the denoiser's input through flips and rotations
   from one iteration to the next (DPIR's periodic self-ensemble) gained 0.02 dB. Other members
   of the mean (kernels of ``high`` on 48 tuning and 40 held-out ``train-shake`` cases, 64 of
   them compact, linear light): plug-and-play told 0.7 times its usual noise level moved the
   compact cases by +0.02 and +0.01 dB; means of three of TV, plug-and-play at 0.7, 1 and 1.5
   times the level, TV at 1.5 times, hyper-Laplacian, RL-TV and Wiener by -0.9 to +0.13 dB.
   ``high`` also estimates more candidate kernels (:data:`QUALITY_ESTIMATOR`): each start of the
   MAP estimator runs once more with taps pruned below 1/12 of the maximum instead of 1/8, which
   keeps the faint tail of kernels that dwell at one point and then move on; such an estimate
   replaces the default one only when it is clearly sharper and wide (see
   :mod:`unblur.estimate.map_kernel`). At about twice the time, on the whole benchmarks ``high``
   gained over ``fast`` 0.62 dB on ``lai-synth`` (before the extra candidates: 0.06 dB) and
   0.43 dB on ``shake-synth`` (0.39 dB), and was level on the real motion blur of ``gopro``
   (29.72 against 29.73 dB; before: 29.57 dB). With :data:`LINEAR_MARGIN` (below) the gains
   are 0.57 and 0.42 dB (0.45 dB at 1 % noise). The plug-and-play prior that also denoises
   the sRGB encoding (:func:`unblur.deconv.splitting.two_domain_denoiser`), worth 0.86 dB with
   the true kernels of ``shake-synth``, moved ``high`` there from 24.06 to 24.08 dB (still
   0.45 dB over ``fast`` at 1 % noise) and on ``lai-synth`` by 0.00 dB: with an estimated kernel
   and twice the noise level the restoration is limited by the kernel's error, not the prior
   (on 32 + 32 compact ``train-shake`` cases the TV/plug-and-play mean rose by 0.05 and 0.06 dB).
   Averaging in the restorations with the runner-up candidate kernel (the next sharpest,
   translated onto the best one by cross-correlation) did not carry over: on ``train-shake``
   cases (kernels of ``high``; 32 compact linear-light and 32 support-filling sRGB cases of
   even index for tuning, as many of odd index held out) the TV/plug-and-play mean rose from
   24.13 to 24.37 and from 23.39 to 23.53 dB, and from 24.17 to 24.33 and from 21.74 to
   21.75 dB, but on ``shake-synth`` ``high`` fell from 24.06 to 24.02 dB (at 1 % noise from
   24.21 to 24.15 dB): it gained 0.24 dB where the best kernel's similarity was below 0.7 (33
   cases) and lost 0.21 dB above 0.85 (68 cases), where the runner-up is the worse estimate.
   Gating by the ratio of the two sharpness scores did not separate those cases on the
   training ones. Averaging TV over the two candidates of ``fast`` lost 0.3-0.6 dB on the sRGB
   cases, whose linear-light candidate is wrong.
   The deconvolution runs in the tone space the blur acted in, linear light or the stored values,
   as :func:`unblur.deconv.space.blur_space` decides with the estimated kernel (once, for all the
   solvers of a ``quality``). On 32 cases of 31-61 px kernels that
   fill their support (half blurred in linear light, half on sRGB values) and 32 of compact 11-41 px
   ones (linear light), training images, the gain over the blurred input rose from 2.26 to 2.62 dB
   and from 1.23 to 1.70 dB over deconvolving the stored values. With an estimated kernel the
   decision is less sure than with the true one (linear light for 53-56 % of the linear-light
   cases, and for 31 % of the sRGB ones); always deconvolving in linear light gave 2.19 and
   1.82 dB, the space of the start whose kernel was selected 2.59 and 1.59 dB. Hedging at
   ``quality="high"`` by averaging the restorations of both spaces (four instead of two) raised
   32 compact linear-light training cases by 0.25 dB but lowered 16 support-filling ones, half
   blurred on the stored values, by 0.66 dB (kernels of ``high``, TV/plug-and-play mean). What
   helped instead is leaning the decision towards linear light, as cameras blur
   (:data:`LINEAR_MARGIN`): with an estimated kernel the reblurring errors of the two spaces
   bunch within a few percent of each other, and the stored values then win about as often as
   not. With a margin of 2 % (kernels of ``high``, TV/plug-and-play mean) the decision was right
   for 62 instead of 47 % of 32 compact linear-light training cases and rose from 23.88 to
   24.13 dB, and for 91 instead of 72 % of 32 held-out ones (24.05 to 24.17 dB); TV alone
   rose alike (23.54 to 23.72 and 23.55 to 23.67 dB). 24 support-filling cases, half blurred on
   sRGB values, moved by 0.00 and -0.03 dB; on 32 ``lai-synth`` cases (sRGB) one decision of 32
   changed (-0.005 dB): where the stored values fitted better (25 cases), they did so by 1.8 %
   up to a factor of 5.9. Margins of 5 and 10 % gained 0.06-0.09 dB more on the compact cases
   but lost 0.03-0.44 dB on the support-filling ones (5 %: -0.08 dB on ``lai-synth``). With the
   true kernel no margin is needed (the decision is right in 45 of 48 ``shake-synth`` cases), so
   :func:`unblur.deconv.deconvolve` keeps none. On the whole benchmarks the margin raised
   ``deblur`` on ``shake-synth`` from 23.56 to 23.64 dB (``high``: 23.99 to 24.06 dB), moved
   ``lai-synth`` from 16.63 to 16.62 dB (``high``: 17.25 to 17.19 dB) and left ``gopro`` as it
   was (29.73 dB);
4. ``auto`` falls back to Polyblur when that restoration amplified the input's middle and high
   frequencies more than :data:`MAX_AMPLIFICATION` times (:func:`unblur.metrics.band_energy_ratio`
   on the central :data:`GUARD_WINDOW` px). The TV step amplified them at most 2.8 times with the
   true kernel (16 training images, camera shake of 11 to 75 px) and at most 3.1 times with the
   estimated one (48 training images); on the 100 ``lai2016/real`` photos at most 4.9 times,
   except cross_stitch, whose estimate is a speckled cloud that turned the photo into coloured
   noise (21 times). The guard catches such breakdowns only, not the milder ringing of a wrong
   kernel.
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
#: Side of the central window (px) on which ``auto`` measures the amplification.
GUARD_WINDOW = 1024
#: The final non-blind step after MAP estimation assumes this multiple of the noise level.
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
    from unblur.deconv.space import decision_window, reblur_error

    base = max(noise, NOISE_FLOOR)
    ratio = reblur_error(decision_window(y, kernel), kernel, base, space) / base
    return max(base * min(max(ratio * ratio, 1.0), MAX_MISFIT_SCALE), BLIND_NOISE_SCALE * NOISE_FLOOR)


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
            level = misfit_noise(y, k, noise, space)
            restored = sum(deconvolve(y, k, method=m, noise=max(level, s) if m in FIXED_FLOOR_SOLVERS else level,
                                      space=space, saturation=saturation)
                           for m in solvers) / len(solvers)
            if guarded and band_energy_ratio(_central(restored), _central(y)) > MAX_AMPLIFICATION:
                method = "polyblur"
        if method == "polyblur":
            restored, kernel = polyblur(y)
    kernel = kernel_to_numpy(kernel) if layout.kind == "numpy" else kernel
    return DeblurResult(from_bchw(restored, layout), kernel, method, noise, None if noise is not None else y)


def _central(x: torch.Tensor, size: int = GUARD_WINDOW) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]
