r"""The sRGB transfer function (IEC 61966-2-1), both ways.

Image files store *gamma-encoded* sRGB values; blur happens in *linear* light. These functions
convert between the two with the exact piecewise curve of the standard:

.. math::

    \text{linear} = \begin{cases}
        s / 12.92 & s \le 0.04045 \\
        \left(\dfrac{s + 0.055}{1.055}\right)^{2.4} & s > 0.04045
    \end{cases}
    \qquad
    s = \begin{cases}
        12.92\,\ell & \ell \le 0.0031308 \\
        1.055\,\ell^{1/2.4} - 0.055 & \ell > 0.0031308
    \end{cases}

Both accept numpy arrays (or Python numbers) and torch tensors and return the same type; inputs
are clamped to ``[0, 1]`` first. The torch versions are differentiable (the gradient is zero
where the input was clamped, and finite everywhere).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["linear_to_srgb", "srgb_to_linear", "srgb_to_linear_slope"]

_SRGB_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308
_SLOPE = 12.92
_A = 0.055
_GAMMA = 2.4


def srgb_to_linear(x):
    r"""Decode gamma-encoded sRGB values to linear light.

    .. math::

        \ell = s / 12.92 \ \ (s \le 0.04045), \qquad
        \ell = \left(\frac{s + 0.055}{1.055}\right)^{2.4} \ \ (s > 0.04045)

    Parameters
    ----------
    x : numpy.ndarray, torch.Tensor or float
        sRGB values, clamped to ``[0, 1]``. Integer numpy arrays are scaled by their dtype's
        maximum (``uint8`` 255 -> 1.0).

    Returns
    -------
    numpy.ndarray, torch.Tensor or float
        Linear values in ``[0, 1]``, same type as ``x`` (floating numpy input keeps its dtype,
        integer input gives float32; Python numbers give a float).
    """
    if isinstance(x, torch.Tensor):
        s = _float_tensor(x).clamp(0.0, 1.0)
        curve = ((s.clamp(min=_SRGB_KNEE) + _A) / (1.0 + _A)) ** _GAMMA
        return torch.where(s <= _SRGB_KNEE, s / _SLOPE, curve)
    s, scalar = _float_array(x)
    s = np.clip(s, 0.0, 1.0)
    out = np.where(s <= _SRGB_KNEE, s / _SLOPE, ((s + _A) / (1.0 + _A)) ** _GAMMA).astype(s.dtype)
    return float(out) if scalar else out


def srgb_to_linear_slope(x: torch.Tensor) -> torch.Tensor:
    r"""Derivative of :func:`srgb_to_linear` at the sRGB values ``x`` (a float tensor, clamped to ``[0, 1]``).

    .. math::

        \frac{d\ell}{ds} = 1 / 12.92 \ \ (s \le 0.04045), \qquad
        \frac{d\ell}{ds} = \frac{2.4}{1.055} \left(\frac{s + 0.055}{1.055}\right)^{1.4} \ \ (s > 0.04045)
    """
    s = x.clamp(0.0, 1.0)
    curve = (_GAMMA / (1.0 + _A)) * ((s.clamp(min=_SRGB_KNEE) + _A) / (1.0 + _A)) ** (_GAMMA - 1.0)
    return torch.where(s <= _SRGB_KNEE, torch.full_like(s, 1.0 / _SLOPE), curve)


def linear_to_srgb(x):
    r"""Encode linear light values as gamma-encoded sRGB.

    .. math::

        s = 12.92\,\ell \ \ (\ell \le 0.0031308), \qquad
        s = 1.055\,\ell^{1/2.4} - 0.055 \ \ (\ell > 0.0031308)

    Parameters
    ----------
    x : numpy.ndarray, torch.Tensor or float
        Linear values, clamped to ``[0, 1]``. Integer numpy arrays are scaled by their dtype's
        maximum.

    Returns
    -------
    numpy.ndarray, torch.Tensor or float
        sRGB values in ``[0, 1]``, same type as ``x`` (as for :func:`srgb_to_linear`).
    """
    if isinstance(x, torch.Tensor):
        v = _float_tensor(x).clamp(0.0, 1.0)
        # the clamp keeps the unused branch's gradient finite at 0 (d/dx x^(1/2.4) is inf there)
        curve = (1.0 + _A) * v.clamp(min=_LINEAR_KNEE) ** (1.0 / _GAMMA) - _A
        return torch.where(v <= _LINEAR_KNEE, v * _SLOPE, curve)
    v, scalar = _float_array(x)
    v = np.clip(v, 0.0, 1.0)
    out = np.where(
        v <= _LINEAR_KNEE,
        v * _SLOPE,
        (1.0 + _A) * np.maximum(v, _LINEAR_KNEE) ** (1.0 / _GAMMA) - _A,
    ).astype(v.dtype)
    return float(out) if scalar else out


def _float_tensor(x: torch.Tensor) -> torch.Tensor:
    if x.is_floating_point():
        return x
    if x.dtype == torch.bool:
        return x.to(torch.float32)
    return x.to(torch.float32) / float(torch.iinfo(x.dtype).max)


def _float_array(x) -> tuple[np.ndarray, bool]:
    scalar = np.ndim(x) == 0 and not isinstance(x, np.ndarray)
    a = np.asarray(float(x) if scalar and not isinstance(x, np.generic) else x)
    if a.dtype.kind in "ui":
        a = (a.astype(np.float64) / np.iinfo(a.dtype).max).astype(np.float32)
    elif a.dtype.kind == "b":
        a = a.astype(np.float32)
    elif a.dtype.kind != "f":
        raise TypeError(f"expected a real-valued array, got dtype {a.dtype}")
    return a, scalar
