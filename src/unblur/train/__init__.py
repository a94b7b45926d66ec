"""Training code for the models that ship with the package (see :mod:`unblur.models`)."""
from unblur.train.denoiser import PROFILES, TrainConfig, train_denoiser

__all__ = ["PROFILES", "TrainConfig", "train_denoiser"]
