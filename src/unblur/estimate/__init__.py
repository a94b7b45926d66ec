"""Estimation of degradation parameters from a single observed image.

* :func:`estimate_noise_level` -- standard deviation of additive white Gaussian noise, from the
  eigenvalues of the covariance of weakly textured patches (Chen et al. 2015, Liu et al. 2013).
"""
from .noise_level import estimate_noise_level

__all__ = ["estimate_noise_level"]
