"""Conversions between the public array types and the internal ``(B, C, H, W)`` tensors.

Conventions used throughout unblur
----------------------------------
* Images are ``torch.float32`` tensors of shape ``(B, C, H, W)`` with values in ``[0, 1]``.
* Public functions also accept numpy arrays laid out as ``(H, W)`` (gray) or ``(H, W, C)``
  (channels last), and torch tensors of shape ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)``.
  Integer numpy arrays are scaled to ``[0, 1]`` by the maximum of their dtype. Results come
  back in the caller's type and layout (float32 for numpy input).
* Kernels are in *convolution* convention (``blurred = conv2(sharp, k)``), non-negative, summing
  to one, with their centre at index ``(h // 2, w // 2)``; odd sizes are preferred.
  A kernel is a tensor of shape ``(h, w)`` (shared by all images), or ``(B, 1, h, w)`` /
  ``(B, C, h, w)`` (one per image / per image and channel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ImageLayout", "as_kernel", "from_bchw", "kernel_to_numpy", "to_bchw"]


@dataclass(frozen=True)
class ImageLayout:
    """How an input image was laid out, so a result can be returned the same way."""

    kind: str  # "numpy" or "torch"
    ndim: int
    dtype: object = None


def to_bchw(image, device=None, dtype=torch.float32) -> tuple[torch.Tensor, ImageLayout]:
    """Convert a numpy array or tensor to a ``(B, C, H, W)`` float tensor.

    Returns the tensor and an :class:`ImageLayout` for :func:`from_bchw`.
    """
    if isinstance(image, torch.Tensor):
        t = image
        layout = ImageLayout("torch", t.ndim, t.dtype)
        if t.ndim == 2:
            t = t[None, None]
        elif t.ndim == 3:
            t = t[None]
        elif t.ndim != 4:
            raise ValueError(f"expected a tensor with 2, 3 or 4 dimensions, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            t = t.to(torch.float64) / _int_max(t.dtype)
        return t.to(device=device if device is not None else t.device, dtype=dtype), layout
    a = np.asarray(image)
    layout = ImageLayout("numpy", a.ndim, a.dtype)
    if a.dtype.kind in "ui":
        a = a.astype(np.float64) / np.iinfo(a.dtype).max
    elif a.dtype.kind == "b":
        a = a.astype(np.float64)
    elif a.dtype.kind != "f":
        raise ValueError(f"unsupported array dtype {a.dtype}")
    if a.ndim == 2:
        a = a[None, None]
    elif a.ndim == 3:
        a = np.moveaxis(a, -1, 0)[None]
    else:
        raise ValueError(f"expected an (H, W) or (H, W, C) array, got shape {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=dtype)
    return t, layout


def from_bchw(t: torch.Tensor, layout: ImageLayout):
    """Inverse of :func:`to_bchw`: return ``t`` in the layout the caller used."""
    if layout.kind == "torch":
        if layout.ndim == 2:
            return t[0, 0]
        if layout.ndim == 3:
            return t[0]
        return t
    a = t.detach().to("cpu", torch.float32).numpy()
    if layout.ndim == 2:
        return a[0, 0]
    return np.moveaxis(a[0], 0, -1)


def as_kernel(kernel, device=None, dtype=None) -> torch.Tensor:
    """Convert a kernel (numpy or torch, ``(h, w)`` or ``(B, C, h, w)``) to a float tensor.

    ``dtype=None`` keeps a floating tensor's dtype and gives float32 otherwise.
    """
    if isinstance(kernel, torch.Tensor):
        k = kernel
    else:
        k = torch.from_numpy(np.ascontiguousarray(np.asarray(kernel, dtype=np.float64)))
        if dtype is None:
            k = k.float()
    if dtype is None:
        dtype = k.dtype if k.is_floating_point() else torch.float32
    if k.ndim not in (2, 4):
        raise ValueError(f"a kernel has shape (h, w) or (B, C, h, w), got {tuple(k.shape)}")
    return k.to(device=device if device is not None else k.device, dtype=dtype)


def kernel_to_numpy(kernel: torch.Tensor) -> np.ndarray:
    """A kernel tensor as a float64 numpy array (squeezing a single batch/channel)."""
    k = kernel.detach().to("cpu", torch.float64)
    while k.ndim > 2 and k.shape[0] == 1:
        k = k[0]
    return k.numpy()


def _int_max(dtype: torch.dtype) -> float:
    return float(torch.iinfo(dtype).max)
