"""Estimation of degradation parameters from a single observed image.

* :func:`estimate_noise_level` -- standard deviation of additive white Gaussian noise, from the
  eigenvalues of the covariance of weakly textured patches (Chen et al. 2015, Liu et al. 2013).
* :func:`estimate_gaussian_blur`, :func:`polyblur`, :func:`polyblur_deblur` -- Polyblur
  (Delbracio et al. 2021): anisotropic Gaussian blur from maximal directional gradients, and
  blind removal of mild blur by polynomial reblurring (:mod:`unblur.estimate.polyblur`).
"""
from .noise_level import estimate_noise_level

__all__ = ["estimate_noise_level"]

# Polyblur (Delbracio et al. 2021): Gaussian blur estimation and polynomial deblurring of mild blur
from .polyblur import (
    GaussianBlurEstimate,
    PolyblurResult,
    estimate_gaussian_blur,
    polyblur,
    polyblur_deblur,
)

__all__ += [
    "GaussianBlurEstimate",
    "PolyblurResult",
    "estimate_gaussian_blur",
    "polyblur",
    "polyblur_deblur",
]
