r"""Gaussian denoising with the shipped learned denoiser (:mod:`unblur.models.denoiser`).

:func:`denoise` is the array-in/array-out entry point; :func:`learned_denoiser` gives the
``f(x, sigma)`` callable that plug-and-play solvers use as their prior step (Venkatakrishnan,
Bouman & Wohlberg, "Plug-and-play priors for model based reconstruction", GlobalSIP 2013; Zhang et
al., "Plug-and-play image restoration with deep denoiser prior", TPAMI 2021).
"""
from __future__ import annotations

import math

import torch

from unblur._tensor import from_bchw, to_bchw
from unblur.errors import UserError

#: Highest noise std the shipped network was trained for; larger requests are clamped to it.
SIGMA_MAX = 50 / 255

#: Images with more pixels than this are denoised in overlapping tiles (bounds memory).
TILE_PIXELS = 2048 * 2048


def learned_denoiser(device=None, model=None):
    """The shipped denoiser as a callable ``f(x, sigma)`` on ``(B, C, H, W)`` tensors.

    Three-channel images go through the network as they are; any other channel count is denoised
    channel by channel as gray (replicated to three channels, output averaged back). ``sigma`` is
    clamped to ``[0, SIGMA_MAX]``.
    """
    if model is None:
        from unblur.models import load_denoiser

        try:
            model = load_denoiser(device or "cpu")
        except FileNotFoundError as exc:
            raise UserError(str(exc)) from exc

    @torch.no_grad()
    def f(x: torch.Tensor, sigma: float) -> torch.Tensor:
        s = min(max(float(sigma), 0.0), SIGMA_MAX)
        dev, dtype = x.device, x.dtype
        z = x.to(next(model.parameters()).device, torch.float32)
        if z.shape[1] == 3:
            out = model(z, s)
        else:
            b, c, h, w = z.shape
            g = z.reshape(b * c, 1, h, w).expand(-1, 3, -1, -1)
            out = model(g, s).mean(1).reshape(b, c, h, w)
        return out.to(dev, dtype)

    return f


def denoise(image, sigma: float | None = None, *, device=None, tile: int | None = None, model=None):
    """Remove white Gaussian noise of std ``sigma`` with the shipped learned denoiser.

    Parameters
    ----------
    image : ndarray or torch.Tensor
        Noisy image (``(H, W)``, ``(H, W, C)`` numpy or ``(B, C, H, W)`` tensor, values in [0, 1]).
    sigma : float, optional
        Noise std in image units (``25/255`` for sigma 25 on a 0-255 scale); estimated per image
        with :func:`unblur.estimate.estimate_noise_level` when omitted.
    device : str or torch.device, optional
        Where to run the network (default: the tensor's device, CPU for numpy).
    tile : int, optional
        Tile side; by default images above 4 MP are processed in 1024 px tiles with a 64 px blended
        overlap, which bounds memory.
    model : DenoiserNet, optional
        A network to use instead of the shipped one.

    Returns
    -------
    Same type and layout as ``image``, clipped to [0, 1].
    """
    y, layout = to_bchw(image, device=device)
    if sigma is None:
        from unblur.estimate import estimate_noise_level

        sigmas = [float(estimate_noise_level(y[i:i + 1])) for i in range(y.shape[0])]
    else:
        if not (math.isfinite(sigma) and sigma >= 0):
            raise UserError(f"sigma must be a non-negative number, got {sigma}")
        sigmas = [float(sigma)] * y.shape[0]
    f = learned_denoiser(y.device, model)
    if tile is None and y.shape[-2] * y.shape[-1] > TILE_PIXELS:
        tile = 1024
    out = []
    for i, s in enumerate(sigmas):
        yi = y[i:i + 1]
        if tile is not None:
            from unblur.deconv import deconvolve_tiled

            out.append(deconvolve_tiled(yi, lambda part, s=s: f(part, s), tile, 64))
        else:
            out.append(f(yi, s))
    return from_bchw(torch.cat(out).clamp(0, 1), layout)
