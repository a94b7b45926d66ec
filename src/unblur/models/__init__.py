"""Neural networks and the weights that ship with the package (trained by :mod:`unblur.train`)."""
from unblur.models.denoiser import DenoiserNet, load_denoiser, weights_info

__all__ = ["DenoiserNet", "load_denoiser", "weights_info"]
