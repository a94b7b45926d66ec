r"""Convolution forward models with exact adjoints.

A blur is the linear operator :math:`A x = k * x` (convolution, not correlation). What happens at
the image border is part of the model and is named by ``mode``:

``"valid"``
    Only output pixels whose whole kernel footprint lies inside ``x`` are kept: the output is
    smaller by ``kernel size - 1`` in each dimension. This is what a camera produces (the border
    pixels of a photo were blurred with scene content outside the frame), and the model every
    solver in unblur uses for real images.
``"same"``
    ``x`` is first extended by ``pad`` (``"reflect"``, ``"replicate"`` or ``"zeros"``, default
    ``"reflect"``) by ``h - 1 - h // 2`` rows above, ``h // 2`` below (likewise for columns),
    then blurred in ``valid`` mode: output and input have the same size and are aligned with the
    kernel centre ``(h // 2, w // 2)``.
``"circular"``
    Periodic convolution (the image wraps around), size preserved. Convenient for analysis and
    synthetic tests; real photos are not periodic.

Every mode has an exact adjoint :math:`A^\top` (:func:`conv2d_adjoint`), so that
:math:`\langle A x, y\rangle = \langle x, A^\top y\rangle` holds to floating-point precision.
Large kernels are applied with real FFTs padded to fast (5-smooth) lengths; tiny ones with
direct convolution.

Kernels follow the conventions of :mod:`unblur._tensor`: shape ``(h, w)`` (shared by the
batch), ``(B, 1, h, w)`` (one per image) or ``(B, C, h, w)`` (one per image and channel); the
leading dimensions broadcast against the image's ``(B, C)``.
"""
from __future__ import annotations

import scipy.fft
import torch
import torch.nn.functional as F

from unblur._tensor import as_kernel, from_bchw, to_bchw

__all__ = [
    "MODES",
    "Blur",
    "blur",
    "conv2d",
    "conv2d_adjoint",
    "fast_length",
    "output_shape",
]

MODES = ("valid", "same", "circular")
PADS = ("reflect", "replicate", "zeros")
#: Kernels with at most this many taps are applied by direct convolution when ``method="auto"``.
DIRECT_MAX_TAPS = 49


def fast_length(n: int) -> int:
    """Smallest even 5-smooth length ``>= n``: real FFTs of it are among the fastest.

    Odd lengths are avoided although 5-smooth: torch's real FFT of 225 or 375 points took twice
    as long per point here as of 240 or 384 (one thread), so the larger even length is faster.
    """
    m = int(scipy.fft.next_fast_len(int(n), real=True))
    while m % 2:
        m = int(scipy.fft.next_fast_len(m + 1, real=True))
    return m


def output_shape(shape: tuple[int, int], kernel_shape: tuple[int, int], mode: str) -> tuple[int, int]:
    """Spatial size of ``A x`` for an image of size ``shape``."""
    _check_mode(mode)
    if mode == "valid":
        return shape[0] - kernel_shape[0] + 1, shape[1] - kernel_shape[1] + 1
    return tuple(shape)


def _check_mode(mode: str, pad: str = "reflect") -> None:
    if mode not in MODES:
        raise ValueError(f"unknown boundary mode {mode!r}; choose one of {', '.join(MODES)}")
    if pad not in PADS:
        raise ValueError(f"unknown padding {pad!r}; choose one of {', '.join(PADS)}")


def _prepare(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Check shapes and return the kernel as a ``(Bk, Ck, h, w)`` tensor on ``x``'s device."""
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    k = k.to(device=x.device, dtype=x.dtype)
    if k.ndim == 2:
        k = k[None, None]
    if k.ndim != 4:
        raise ValueError(f"a kernel has shape (h, w) or (B, C, h, w), got {tuple(k.shape)}")
    for nk, nx in zip(k.shape[:2], x.shape[:2], strict=True):
        if nk not in (1, nx):
            raise ValueError(
                f"kernel batch/channel shape {tuple(k.shape[:2])} does not broadcast against "
                f"image shape {tuple(x.shape[:2])}"
            )
    return k


def _pad_amounts(kh: int, kw: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that makes ``same`` = pad then ``valid``."""
    return kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2


def _pad(x: torch.Tensor, amounts, pad: str) -> torch.Tensor:
    if pad == "zeros":
        return F.pad(x, amounts)
    if pad == "reflect" and (max(amounts[2:]) >= x.shape[-2] or max(amounts[:2]) >= x.shape[-1]):
        raise ValueError("reflect padding needs an image larger than half the kernel")
    return F.pad(x, amounts, mode=pad)


def _pad_adjoint(y: torch.Tensor, amounts, pad: str) -> torch.Tensor:
    """Exact adjoint of :func:`_pad` (folds the padded margins back onto the image)."""
    left, right, top, bottom = amounts
    H, W = y.shape[-2] - top - bottom, y.shape[-1] - left - right
    if pad == "zeros":
        return y[..., top : top + H, left : left + W]
    # Padding is linear; its adjoint is the vector-Jacobian product, which is exact.
    x0 = torch.zeros(*y.shape[:-2], H, W, dtype=y.dtype, device=y.device)
    _, vjp = torch.func.vjp(lambda z: F.pad(z, amounts, mode=pad), x0)
    return vjp(y)[0]


def _use_direct(k: torch.Tensor, method: str) -> bool:
    if method not in ("auto", "fft", "direct"):
        raise ValueError(f"unknown method {method!r}; choose auto, fft or direct")
    if method == "auto":
        return k.shape[-2] * k.shape[-1] <= DIRECT_MAX_TAPS
    return method == "direct"


# ---------------------------------------------------------------------------------------------
# valid mode: the core; `same` is pad + valid.
# ---------------------------------------------------------------------------------------------


def _grouped(x: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reshape for a grouped conv: image (1, B*C, H, W), weights (B*C, 1, h, w)."""
    B, C = x.shape[:2]
    w = k.expand(B, C, *k.shape[-2:]).reshape(B * C, 1, *k.shape[-2:])
    return x.reshape(1, B * C, *x.shape[-2:]), w


def _valid_direct(x, k):
    B, C = x.shape[:2]
    xg, w = _grouped(x, k)
    y = F.conv2d(xg, torch.flip(w, (-2, -1)), groups=B * C)
    return y.reshape(B, C, *y.shape[-2:])


def _valid_direct_adjoint(y, k):
    B, C = y.shape[:2]
    yg, w = _grouped(y, k)
    x = F.conv_transpose2d(yg, torch.flip(w, (-2, -1)), groups=B * C)
    return x.reshape(B, C, *x.shape[-2:])


def _fft_sizes(H: int, W: int) -> tuple[int, int]:
    return fast_length(H), fast_length(W)


def _valid_fft(x, k):
    H, W = x.shape[-2:]
    kh, kw = k.shape[-2:]
    n = _fft_sizes(H, W)
    # Circular convolution of length >= H only aliases into the first kh-1 rows, which `valid`
    # discards, so no padding to H + kh - 1 is needed.
    Y = torch.fft.rfft2(x, s=n) * torch.fft.rfft2(k, s=n)
    y = torch.fft.irfft2(Y, s=n)
    return y[..., kh - 1 : H, kw - 1 : W]


def _valid_fft_adjoint(y, k):
    kh, kw = k.shape[-2:]
    H, W = y.shape[-2] + kh - 1, y.shape[-1] + kw - 1
    n = _fft_sizes(H, W)
    yp = F.pad(y, (kw - 1, n[1] - W, kh - 1, n[0] - H))
    X = torch.fft.rfft2(yp) * torch.conj(torch.fft.rfft2(k, s=n))
    return torch.fft.irfft2(X, s=n)[..., :H, :W]


def _circular_spectrum(k: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """rFFT of the kernel placed with its centre ``(h//2, w//2)`` at the origin."""
    kh, kw = k.shape[-2:]
    H, W = shape
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh}x{kw} is larger than the image {H}x{W}")
    kp = F.pad(k, (0, W - kw, 0, H - kh))
    kp = torch.roll(kp, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.rfft2(kp)


def conv2d(x: torch.Tensor, kernel, mode: str = "valid", pad: str = "reflect", method: str = "auto"):
    """Blur ``x`` with ``kernel``: :math:`y = k * x` under a boundary ``mode``.

    Parameters
    ----------
    x : torch.Tensor
        Images, shape ``(B, C, H, W)``.
    kernel : torch.Tensor or ndarray
        ``(h, w)``, ``(B, 1, h, w)`` or ``(B, C, h, w)``, in convolution convention.
    mode : {"valid", "same", "circular"}
        Boundary model (see the module docstring).
    pad : {"reflect", "replicate", "zeros"}
        Extension used by ``mode="same"``.
    method : {"auto", "fft", "direct"}
        ``auto`` uses direct convolution for kernels of at most ``DIRECT_MAX_TAPS`` taps.

    Returns
    -------
    torch.Tensor
        ``(B, C, H', W')`` with ``(H', W') = output_shape((H, W), (h, w), mode)``.
    """
    _check_mode(mode, pad)
    k = _prepare(x, as_kernel(kernel, device=x.device, dtype=x.dtype))
    kh, kw = k.shape[-2:]
    if mode == "circular":
        H, W = x.shape[-2:]
        return torch.fft.irfft2(torch.fft.rfft2(x) * _circular_spectrum(k, (H, W)), s=(H, W))
    if mode == "same":
        x = _pad(x, _pad_amounts(kh, kw), pad)
    if kh > x.shape[-2] or kw > x.shape[-1]:
        raise ValueError(f"kernel {kh}x{kw} is larger than the image {tuple(x.shape[-2:])}")
    return _valid_direct(x, k) if _use_direct(k, method) else _valid_fft(x, k)


def conv2d_adjoint(y: torch.Tensor, kernel, mode: str = "valid", pad: str = "reflect", method: str = "auto"):
    r"""Adjoint of :func:`conv2d`: :math:`A^\top y`, the correlation with ``kernel``.

    For ``mode="valid"`` the result is larger than ``y`` by ``kernel size - 1`` (the size of the
    image that produced ``y``); for the other modes it has the size of ``y``.
    """
    _check_mode(mode, pad)
    k = _prepare(y, as_kernel(kernel, device=y.device, dtype=y.dtype))
    kh, kw = k.shape[-2:]
    if mode == "circular":
        H, W = y.shape[-2:]
        Y = torch.fft.rfft2(y) * torch.conj(_circular_spectrum(k, (H, W)))
        return torch.fft.irfft2(Y, s=(H, W))
    x = _valid_direct_adjoint(y, k) if _use_direct(k, method) else _valid_fft_adjoint(y, k)
    if mode == "same":
        x = _pad_adjoint(x, _pad_amounts(kh, kw), pad)
    return x


def blur(image, kernel, mode: str = "valid", pad: str = "reflect"):
    """Blur an image given as a numpy array or tensor; returns the same kind.

    A convenience wrapper of :func:`conv2d` for arrays laid out as ``(H, W)`` or ``(H, W, C)``.
    """
    x, layout = to_bchw(image)
    return from_bchw(conv2d(x, as_kernel(kernel, device=x.device), mode=mode, pad=pad), layout)


class Blur(torch.nn.Module):
    r"""A convolution forward model :math:`A` with its adjoint, as an object.

    ``Blur(kernel, mode)`` stores the kernel and boundary model; ``A(x)`` (also ``forward``)
    applies the blur, ``A_adjoint(y)`` its exact adjoint and ``A_normal(x)`` computes
    :math:`A^\top A x`. Modelled on the physics operators of deepinv.

    Examples
    --------
    >>> import torch
    >>> from unblur.blur import Blur
    >>> op = Blur(torch.ones(3, 3) / 9, mode="valid")
    >>> op(torch.rand(1, 1, 16, 16)).shape
    torch.Size([1, 1, 14, 14])
    """

    def __init__(self, kernel, mode: str = "valid", pad: str = "reflect", method: str = "auto"):
        super().__init__()
        _check_mode(mode, pad)
        self.register_buffer("kernel", as_kernel(kernel))
        self.mode, self.pad, self.method = mode, pad, method

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d(x, self.kernel, self.mode, self.pad, self.method)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return conv2d_adjoint(y, self.kernel, self.mode, self.pad, self.method)

    def A_normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(self.A(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def output_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        return output_shape(shape, tuple(self.kernel.shape[-2:]), self.mode)

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}, mode={self.mode!r}, pad={self.pad!r}"
