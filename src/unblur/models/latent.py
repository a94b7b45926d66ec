"""The blind latent predictor: a network that guesses the sharp image behind a blurred one.

It is the UNet of :mod:`unblur.models.denoiser` (noise-conditioned, gray images replicated to
three channels), trained by :mod:`unblur.train.latent` on crops blurred by random kernels of up
to 41 px, without being told the kernel. Its guess is not a restoration to show anyone: the MAP
kernel estimator fits the kernel between the guess's gradients and the photo's at the coarse scales
of its pyramid (:mod:`unblur.estimate.map_kernel`).
"""
from __future__ import annotations

import torch

from unblur.models.denoiser import DenoiserNet, load_shipped

#: Name of the shipped weights inside ``unblur/models/weights``.
WEIGHTS = "latent.pt"


def load_latent_predictor(device: torch.device | str = "cpu") -> DenoiserNet:
    """The shipped latent predictor on ``device`` (loaded once per device, offline)."""
    return load_shipped(WEIGHTS, device)


@torch.no_grad()
def predict_latent(y: torch.Tensor, sigma: float, model: DenoiserNet | None = None) -> torch.Tensor:
    """Sharp guess of a blurred gray image ``y`` ``(B, 1, H, W)`` with noise std ``sigma``.

    ``sigma`` is clamped to the training range ``[0, 0.03]``; the output is clipped to [0, 1].
    """
    if y.ndim != 4 or y.shape[1] != 1:
        raise ValueError(f"expected a (B, 1, H, W) gray image, got shape {tuple(y.shape)}")
    net = model if model is not None else load_latent_predictor(y.device)
    x = y.to(torch.float32).expand(-1, 3, -1, -1)
    return net(x, min(max(float(sigma), 0.0), 0.03)).mean(1, keepdim=True).clamp(0, 1).to(y.dtype)
