"""Pictures for people: before/after comparisons with the estimated kernel."""
from __future__ import annotations

import numpy as np
import torch

from unblur._tensor import to_bchw

__all__ = ["comparison_image"]


def comparison_image(before, after, kernel=None, gap: int = 8) -> np.ndarray:
    """Side-by-side ``before | after`` image with the kernel drawn in the top-right corner.

    ``before`` and ``after`` are images of the same size (numpy or tensors); ``kernel`` (optional)
    is scaled to its maximum and enlarged to a quarter of the image height. Returns an
    ``(H, 2W + gap, C)`` float32 array in ``[0, 1]``.
    """
    b, _ = to_bchw(before)
    a, _ = to_bchw(after)
    if b.shape != a.shape:
        raise ValueError(f"before {tuple(b.shape)} and after {tuple(a.shape)} differ in size")
    C, H, W = b.shape[1:]
    canvas = torch.ones(C, H, 2 * W + gap)
    canvas[:, :, :W] = b[0]
    canvas[:, :, W + gap :] = a[0].clamp(0, 1)
    if kernel is not None:
        k = torch.as_tensor(np.asarray(kernel, dtype=np.float32) if not isinstance(kernel, torch.Tensor) else kernel).float()
        while k.ndim > 2:
            k = k[0]
        side = max(16, H // 4)
        img = torch.nn.functional.interpolate((k / k.max().clamp_min(1e-12))[None, None], size=(side, side), mode="nearest")[0, 0]
        canvas[:, 2 : side + 2, -side - 2 : -2] = img
    return np.moveaxis(canvas.numpy(), 0, -1)
