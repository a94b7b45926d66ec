"""Neural networks and the weights that ship with the package (trained by :mod:`unblur.train`)."""
from unblur.models.denoiser import DenoiserNet, load_denoiser, weights_info
from unblur.models.latent import load_latent_predictor, predict_latent

__all__ = ["DenoiserNet", "load_denoiser", "load_latent_predictor", "predict_latent", "weights_info"]
