"""Blur forward models, kernel synthesis, sensor noise and dataset synthesis."""
from unblur.blur.operators import (
    MODES,
    Blur,
    blur,
    conv2d,
    conv2d_adjoint,
    fast_length,
    output_shape,
)

__all__ = ["MODES", "Blur", "blur", "conv2d", "conv2d_adjoint", "fast_length", "output_shape"]
