"""unblur: blind deblurring of photos and videos.

Synthesize realistic blur, estimate an unknown blur kernel, remove it, and measure how well that
worked. The core works on ``(B, C, H, W)`` float32 torch tensors in ``[0, 1]``; public functions
also accept numpy arrays (see :mod:`unblur._tensor` for the conventions).

The main entry points are importable from the package itself (loaded on first use, so that
``import unblur`` stays cheap)::

    import unblur
    result = unblur.deblur(image)                    # blind: result.image, result.kernel
    sharp = unblur.deconvolve(image, result.kernel)  # non-blind, kernel known
    clean = unblur.denoise(noisy)                    # shipped learned denoiser
"""
import importlib

__version__ = "0.1.0"

#: Public name -> module defining it.
_EXPORTS = {
    "deblur": "unblur.blind",
    "deconvolve": "unblur.deconv",
    "denoise": "unblur.denoising",
    "estimate_kernel": "unblur.estimate.map_kernel",
    "estimate_noise_level": "unblur.estimate",
    "estimate_gaussian_blur": "unblur.estimate",
    "polyblur": "unblur.estimate",
    "read_image": "unblur.io",
    "write_image": "unblur.io",
    "read_kernel": "unblur.io",
    "write_kernel": "unblur.io",
}

__all__ = [
    "__version__",
    "deblur",
    "deconvolve",
    "denoise",
    "estimate_gaussian_blur",
    "estimate_kernel",
    "estimate_noise_level",
    "polyblur",
    "read_image",
    "read_kernel",
    "write_image",
    "write_kernel",
]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'unblur' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
