r"""The tone space a blur acted in: linear light, or the stored values.

A camera blurs light: the sensor integrates linear intensities, and the sRGB curve (or the
camera's own tone curve) is applied afterwards. A photo file therefore holds
:math:`y = f(k * x_{lin}) + n`, with :math:`f` the sRGB encoding, not :math:`k * f(x_{lin})`. Where
an edge joins dark and bright, the two differ by up to a quarter of the range (a black-white edge
blurred in linear light crosses the middle at sRGB 0.74, not 0.5), and a solver that deconvolves
the stored values must explain that difference with ringing. Other images were blurred on their
stored values: data that are linear to begin with (microscopy, astronomy, raw sensor values), and
synthetic blur applied to sRGB files (the benchmark of Lai et al., CVPR 2016).

``space="linear"`` decodes the sRGB values, deconvolves in linear light and encodes the result;
``"stored"`` deconvolves the values as they are; ``"auto"`` (:func:`blur_space`) tells the two
apart from the image and the kernel. In linear light the noise is no longer uniform (the decoding
scales it by the curve's slope, :math:`1/12.92` in the shadows to 2.3 at white); the solver is
told the stored noise level times the mean slope over the image (:func:`linear_noise`). Weighting
the data term per pixel by the inverse squared slope as well moved the mean by at most 0.07 dB
on ``shake-synth`` (tv, true kernels), so it is not done.
"""
from __future__ import annotations

import torch

from unblur.color import linear_to_srgb, srgb_to_linear, srgb_to_linear_slope
from unblur.errors import UserError

__all__ = ["DECISION_WINDOW", "SPACES", "blur_space", "central_window", "check_space", "decision_window", "linear_noise", "reblur_error"]

#: Accepted values of ``space``.
SPACES = ("auto", "linear", "stored")
#: Side (px) of the central window on which :func:`blur_space` decides (at least 4 kernel widths).
DECISION_WINDOW = 256


def check_space(space: str) -> None:
    """Raise :class:`~unblur.errors.UserError` unless ``space`` is one of :data:`SPACES`."""
    if space not in SPACES:
        raise UserError(f"unknown blur space {space!r}; choose one of {', '.join(SPACES)}")


def linear_noise(y: torch.Tensor, noise: float) -> float:
    """Noise std of ``srgb_to_linear(y)`` for noise ``noise`` on the stored values ``y``: ``noise``
    times the mean slope of the decoding curve over ``y``."""
    return float(noise * srgb_to_linear_slope(y).mean())


def reblur_error(y: torch.Tensor, kernel: torch.Tensor, noise: float, space: str) -> float:
    r"""RMS difference between ``y`` and its total-variation restoration blurred again, in ``space``.

    The restoration (:func:`~unblur.deconv.splitting.total_variation`, ``valid`` model) is made in
    ``space`` (``"linear"`` or ``"stored"``), clipped to the range of light, ``[0, 1]``, blurred
    again, brought back to the stored values and compared with ``y`` on the pixels at least half
    a kernel from the border (nearer ones also see the restoration's unconstrained margin).
    """
    from unblur.deconv._domain import ValidDomain
    from unblur.deconv.splitting import total_variation

    linear = space == "linear"
    work = srgb_to_linear(y) if linear else y
    dom = ValidDomain(work, kernel)
    x = total_variation(work, kernel, linear_noise(y, noise) if linear else noise, dom=dom, grid=True)
    fit = dom.blur(x.clamp(0, 1))[..., dom.obs[0], dom.obs[1]].clamp(0, 1)
    fit = linear_to_srgb(fit) if linear else fit
    h, w = dom.kh // 2, dom.kw // 2
    inner = (..., slice(h, fit.shape[-2] - h), slice(w, fit.shape[-1] - w))
    return float(((fit - y)[inner] ** 2).mean().sqrt())


def central_window(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` px of ``x`` (all of a side shorter than ``size``)."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


def decision_window(y: torch.Tensor, kernel: torch.Tensor, window: int = DECISION_WINDOW) -> torch.Tensor:
    """The central ``window`` x ``window`` px (at least 4 kernel widths) of ``y``'s middle channel
    (green for RGB), on which :func:`blur_space` decides."""
    return central_window(y[:, y.shape[1] // 2 :][:, :1], max(window, 4 * max(kernel.shape[-2:])))


def blur_space(y: torch.Tensor, kernel: torch.Tensor, noise: float, window: int = DECISION_WINDOW,
               margin: float = 0.0) -> str:
    r"""``"linear"`` or ``"stored"``: the space whose restoration explains ``y`` better.

    Each space gets a total-variation restoration of the central ``window`` x ``window`` px of
    ``y`` (at least 4 kernel widths; the middle channel of colour images, green for RGB), and the
    one whose restoration, clipped to ``[0, 1]`` and blurred again, lies closer to ``y``
    (:func:`reblur_error`) wins. In the wrong space an edge's blurred profile is only explained
    by overshoot beyond black and white, which the clipping takes away. Without the clipping, or
    over the whole observation including the border band, the misfit of the noise dominated, and
    the decision was right in only 26-27 of the 34 ``lai-synth`` cases below and 41-42 of the 48
    ``shake-synth`` ones (all channels). With the true kernels, on every third case of
    ``shake-synth`` (blurred in linear light) this picks linear light in 45 of 48, and on every
    third case of ``lai-synth`` (blurred on sRGB values) the stored values in 34 of 34. On
    training images (``cbsd432``, 11-61 px camera shake, 0.5-2 % noise) it was right in 64 of 72
    linear-light cases and 21 of 24 sRGB ones; in the mistakes neither space fitted clearly better
    (error ratios of 0.98 to 1.10). Deciding on all three channels instead of green changed at most
    one decision per set, at three times the cost. ``y`` is a ``(B, C, H, W)`` batch; the decision
    is taken for the batch as a whole.

    ``margin`` leans the decision towards linear light, as cameras blur: the stored values win
    only when linear light's error exceeds theirs by this fraction or more
    (:data:`unblur.blind.LINEAR_MARGIN`; ``docs/blind-deblurring.md`` explains why a blind estimate needs one).
    """
    part = decision_window(y, kernel, window)
    errors = {s: reblur_error(part, kernel, noise, s) for s in ("linear", "stored")}
    return "linear" if errors["linear"] < (1 + margin) * errors["stored"] else "stored"
