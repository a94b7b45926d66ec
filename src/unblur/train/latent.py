r"""Train the blind latent predictor: a network that guesses the sharp image behind a blurred one.

The network (the UNet of :mod:`unblur.models.denoiser`, conditioned on the noise level) maps a
blurred, noisy gray image to an estimate of its sharp version without being told the kernel. It
is not used as the restoration: the MAP kernel estimator (:mod:`unblur.estimate.map_kernel`)
fits the kernel by least squares between the predicted sharp gradients and the observed ones,
and the final deconvolution uses that kernel on the photo itself. The idea is that of Chakrabarti
("A neural approach to blind motion deblurring", ECCV 2016) and Schuler, Hirsch, Harmeling &
Schölkopf ("Learning to deblur", IEEE TPAMI 2016): a learned local deblurring step whose output is
only good enough to pin down a global kernel.

Data: random crops of ``natural/cbsd432`` (as luma, also downscaled by 0.75 and 0.6) and
``natural/train400_gray`` under the eight flips/rotations, never the test sets; the last
``val_images`` of cbsd432 and the images drawn by the ``train-shake`` benchmark (our tuning set)
are held out. Each crop is blurred (``valid``) by a kernel drawn from a bank of random kernels of
1 to ``kernel_max`` px (camera shake, Gaussian-process shake, linear motion, Gaussian, defocus,
each under the eight flips/rotations), in linear light for a ``linear_fraction`` of samples
and on the stored values for the rest, then gets white Gaussian noise of a standard deviation
drawn uniformly in ``[0, sigma_max]`` and 8-bit quantisation. The loss is the mean absolute
error of the image plus that of its gradients, away from the border.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unblur.train.denoiser import _LUMA, PatchSampler, TrainConfig, _load_folder, train_model

#: Name of the weights file (``unblur/models/weights/latent.pt`` once shipped).
NAME = "latent"


@dataclass(frozen=True)
class LatentTrainConfig(TrainConfig):
    """:class:`~unblur.train.denoiser.TrainConfig` plus the blur model; ``patch`` is the side of
    the network's input (a ``valid`` blur of a ``patch + kernel_max - 1`` crop)."""

    patch: int = 96
    sigma_max: float = 0.03
    val_sigma: float = 0.01
    gray_fraction: float = 1.0
    kernel_max: int = 41
    kernel_bank: int = 3000
    linear_fraction: float = 0.5
    scales: tuple[float, ...] = (1.0, 0.75, 0.6)


#: ``cpu``: a smoke-sized run (about 10 minutes on 2 cores, not good enough to ship). ``gpu`` and
#: ``gpu-finetune``: one 10-minute call of the lent H100 each (64 crops of 128 px per step in
#: bfloat16, about 58 steps/s). The shipped weights are ``gpu`` for 7000 steps, then ``gpu`` again
#: and ``gpu-finetune``, each started with ``--init`` from the previous weights.
PROFILES = {
    "cpu": LatentTrainConfig(steps=3000, batch=8, lr=5e-4, val_every=500, checkpoint_every=250),
    "gpu": LatentTrainConfig(steps=28_000, batch=64, patch=128, lr=4e-4, lr_min=2e-6, warmup=500, bf16=True,
                             val_every=4000, checkpoint_every=4000),
    "gpu-finetune": LatentTrainConfig(steps=28_000, batch=64, patch=128, lr=1.5e-4, lr_min=2e-6, warmup=300, bf16=True,
                                      val_every=4000, checkpoint_every=4000),
}


def kernel_bank(n: int, kernel_max: int, rng: np.random.Generator) -> torch.Tensor:
    """``(n, kernel_max, kernel_max)`` random kernels, centred and zero-padded to ``kernel_max``.

    Kinds and shares: camera shake 0.5, Gaussian-process shake 0.2, linear motion 0.1, Gaussian
    0.1, defocus 0.06, none (a delta) 0.04; sizes uniform over the odd numbers up to ``kernel_max``.
    """
    from unblur.blur.kernels import KernelSampler, pad_kernel

    kinds = ("camera-shake", "gp-shake", "linear", "gaussian", "defocus", "none")
    shares = (0.5, 0.2, 0.1, 0.1, 0.06, 0.04)
    samplers = {k: KernelSampler(k, size_range=(3, kernel_max), rng=rng) for k in kinds[:-1]}
    out = torch.zeros(n, kernel_max, kernel_max)
    c = kernel_max // 2
    for i, kind in enumerate(rng.choice(len(kinds), size=n, p=shares)):
        if kinds[kind] == "none":
            out[i, c, c] = 1
        else:
            out[i] = pad_kernel(samplers[kinds[kind]].sample()[0], kernel_max)
    return out


def blur_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``valid`` blur of ``(B, 1, S, S)`` images by ``(B, K, K)`` kernels (one per image), by FFT."""
    from unblur.blur import conv2d

    return conv2d(x.float(), k[:, None].float(), mode="valid", method="fft")


def dihedral(k: torch.Tensor, which: np.ndarray) -> torch.Tensor:
    """Apply one of the eight flips/rotations (``which[i]`` in 0..7) to each ``(K, K)`` kernel."""
    out = k.clone()
    for t in np.unique(which):
        sel = torch.as_tensor(np.flatnonzero(which == t), device=k.device)
        r = torch.rot90(k[sel], int(t) % 4, dims=(1, 2))
        out[sel] = r.flip(2) if t >= 4 else r
    return out


def degrade_batch(sharp: torch.Tensor, kernels: torch.Tensor, linear: torch.Tensor, sigma: torch.Tensor,
                  generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blur ``(B, 1, S, S)`` sharp crops (``valid``; in linear light where ``linear``), add noise of
    std ``sigma`` and quantise to 8 bits; returns (blurred, aligned sharp target), both
    ``(B, 1, S - K + 1, S - K + 1)``."""
    from unblur.color import linear_to_srgb, srgb_to_linear

    kk = kernels.shape[-1]
    lin = linear.view(-1, 1, 1, 1)
    x = torch.where(lin, srgb_to_linear(sharp), sharp)
    y = blur_valid(x, kernels).clamp(0, 1)
    y = torch.where(lin, linear_to_srgb(y), y)
    y = y + sigma.view(-1, 1, 1, 1) * torch.randn(y.shape, generator=generator, device=y.device)
    y = torch.round(y.clamp(0, 1) * 255) / 255
    c = kk // 2
    return y, sharp[..., c : c + y.shape[-2], c : c + y.shape[-1]]


def gradient_l1(out: torch.Tensor, target: torch.Tensor, border: int = 6) -> torch.Tensor:
    """Mean absolute error of the image and of its horizontal and vertical differences, away
    from a ``border`` where the network cannot know what lies outside the crop."""
    o = out[..., border:-border, border:-border]
    t = target[..., border:-border, border:-border]
    d = o - t
    return d.abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()


def _held_out(data_root: Path) -> set[str]:
    """File names of the cbsd432 images drawn by the ``train-shake`` tuning suite (none when the
    data folder cannot build that suite)."""
    from unblur.bench.suites import get_suite
    from unblur.errors import UserError

    try:
        return {Path(c.source).name for c in get_suite("train-shake", data_root)}
    except UserError:
        return set()


class LatentTask:
    """Training task of the latent predictor for :func:`~unblur.train.denoiser.train_model`."""

    name = NAME

    def __init__(self, data_root: Path, config: LatentTrainConfig, device):
        self.config, self.device = config, torch.device(device)
        folder = data_root / "natural" / "cbsd432"
        from unblur.io import list_images

        files = list_images(folder)
        held = _held_out(data_root)
        color = _load_folder(folder, gray=False)
        val = color[-config.val_images:] if config.val_images else []
        keep = [c for f, c in zip(files[: len(files) - config.val_images], color) if f.name not in held]
        gray = _load_folder(data_root / "natural" / "train400_gray", gray=True)
        crop = config.patch + config.kernel_max - 1
        luma = [(c.float() * _LUMA[0]).sum(0, keepdim=True).round().to(torch.uint8) for c in keep]
        scaled = []
        for s in config.scales:
            for img in luma:
                if s != 1.0 and min(img.shape[1:]) * s >= crop:
                    z = F.interpolate(img[None].float(), scale_factor=s, mode="bilinear", antialias=True)[0]
                    scaled.append(z.round().clamp(0, 255).to(torch.uint8))
                elif s == 1.0:
                    scaled.append(img)
        # every sample is gray: the sampler's luma of these one-channel crops is the crop itself
        self.sampler = PatchSampler(scaled, gray, dataclasses.replace(config, patch=crop, gray_fraction=1.0), device)
        kept = (f"natural/cbsd432 luma at scales {list(config.scales)} (minus the last {config.val_images} and the "
                f"{len(held)} images of the train-shake suite, held out)")
        self.data = [kept, "natural/train400_gray"]
        rng = np.random.default_rng(config.seed + 7)
        self.kernels = kernel_bank(config.kernel_bank, config.kernel_max, rng).to(self.device)
        self.val = self._validation_set(val, rng) if val else None

    def _validation_set(self, images, rng):
        """Fixed validation batch: central crops of the held-out images, each blurred by four bank
        kernels on the stored values, noise ``val_sigma``."""
        c = self.config
        crop = c.patch + c.kernel_max - 1
        sharp = []
        for img in images:
            g = (img.float() / 255 * _LUMA[0]).sum(0, keepdim=True)
            h, w = g.shape[-2:]
            sharp.append(g[:, (h - crop) // 2 : (h - crop) // 2 + crop, (w - crop) // 2 : (w - crop) // 2 + crop])
        sharp = torch.stack(sharp).repeat_interleave(4, 0)
        kernels = self.kernels.cpu()[torch.as_tensor(rng.integers(0, len(self.kernels), len(sharp)))]
        gen = torch.Generator().manual_seed(1234)
        y, target = degrade_batch(sharp, kernels, torch.zeros(len(sharp), dtype=torch.bool),
                                  torch.full((len(sharp),), c.val_sigma), gen)
        return y, target

    def batch(self, rng: np.random.Generator, noise_gen: torch.Generator):
        c = self.config
        crops, _ = self.sampler.sample(rng)
        sharp = crops[:, :1]
        b = len(sharp)
        kernels = dihedral(self.kernels[torch.as_tensor(rng.integers(0, len(self.kernels), b), device=self.device)],
                           rng.integers(0, 8, b))
        linear = torch.as_tensor(rng.random(b) < c.linear_fraction, device=self.device)
        sigma = torch.rand(b, generator=noise_gen, device=self.device) * c.sigma_max
        y, target = degrade_batch(sharp, kernels, linear, sigma, noise_gen)
        return y.expand(-1, 3, -1, -1), sigma, target

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gradient_l1(out.mean(1, keepdim=True), target)

    @torch.no_grad()
    def validate(self, model) -> dict | None:
        """Mean PSNR of the prediction and of the blurred input on the validation batch."""
        from unblur.metrics import psnr

        if self.val is None:
            return None
        model.eval()
        y, target = self.val
        dev = next(model.parameters()).device
        pred = torch.cat([model(y[i : i + 8].to(dev).expand(-1, 3, -1, -1), self.config.val_sigma).mean(1, keepdim=True).cpu()
                          for i in range(0, len(y), 8)])
        model.train()
        b = 6
        crop = (..., slice(b, -b), slice(b, -b))
        return {"predicted": float(psnr(pred[crop].clamp(0, 1), target[crop]).mean()),
                "blurred": float(psnr(y[crop], target[crop]).mean())}


def train_latent(out_dir, config: LatentTrainConfig = PROFILES["cpu"], data_root=None, device="cpu",
                 command: str | None = None, progress: bool = True, init=None) -> Path:
    """Train (or resume) the latent predictor into ``out_dir``; returns the path of ``latent.pt``."""
    return train_model(LatentTask, out_dir, config, data_root, device, command, progress, init)
