"""Training code for the models that ship with the package (see :mod:`unblur.models`)."""
from unblur.train.denoiser import PROFILES, TrainConfig, train_denoiser, train_model
from unblur.train.latent import PROFILES as LATENT_PROFILES
from unblur.train.latent import LatentTrainConfig, train_latent

__all__ = ["LATENT_PROFILES", "PROFILES", "LatentTrainConfig", "TrainConfig", "train_denoiser", "train_latent", "train_model"]
