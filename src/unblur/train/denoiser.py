"""Train the noise-level-conditioned denoiser of :mod:`unblur.models.denoiser`.

Data: ``natural/cbsd432`` (colour) and ``natural/train400_gray`` (gray) of the reference data
folder, never the test sets. The last ``val_images`` of cbsd432 (sorted by name) are held out for
validation. Each training sample is a random ``patch`` x ``patch`` crop under one of the eight
flips/rotations; a ``gray_fraction`` of samples are gray (a train400 image, or the luma of a colour
one) replicated to three channels. Noise is white Gaussian with a standard deviation drawn
uniformly in ``[0, sigma_max]`` per sample, unclipped. The loss is the mean absolute error; Adam
with a linear warm-up and a cosine decay of the learning rate.

Runs are deterministic for a given seed on a given machine and resume from ``checkpoint.pt`` in the
output folder. Each run writes ``train.log`` (one JSON line per report) and, at the end,
``denoiser.pt``: float16 inference weights with the training record, the file that ships in
``unblur/models/weights``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unblur.errors import UserError
from unblur.metrics import psnr
from unblur.models.denoiser import DenoiserConfig, DenoiserNet, save_weights

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (every field can be set from a JSON/TOML config)."""

    steps: int = 5000
    batch: int = 16
    patch: int = 96
    lr: float = 5e-4
    lr_min: float = 1e-5
    warmup: int = 200
    clip_grad: float = 1.0
    sigma_max: float = 50 / 255
    gray_fraction: float = 0.35
    val_images: int = 8
    val_sigma: float = 25 / 255
    val_every: int = 1000
    checkpoint_every: int = 250
    seed: int = 0
    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 2
    bf16: bool = False  # bfloat16 autocast on CUDA (ignored on the CPU)

    @classmethod
    def from_file(cls, path, base: TrainConfig | None = None) -> TrainConfig:
        """Override ``base`` (default: the CPU profile) with the keys of a JSON or TOML file."""
        path = Path(path)
        try:
            text = path.read_text()
            if path.suffix == ".toml":
                import tomllib

                values = tomllib.loads(text)
            else:
                values = json.loads(text)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read config {path}: {exc}") from exc
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise UserError(f"unknown config keys in {path}: {', '.join(sorted(unknown))}")
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return dataclasses.replace(base or cls(), **values)


#: Named profiles. ``cpu`` finishes in about an hour on a 2-core machine. ``gpu`` and
#: ``gpu-finetune`` are each sized for one 10-minute call of the lent H100 (128 patches of 128 px
#: per step in bfloat16, about 75 steps/s). The shipped weights are the ``cpu`` run fine-tuned by
#: ``gpu``, then by ``gpu-finetune`` twice, the second time on 192 px patches (each stage started
#: with ``--init`` from the previous weights; the README lists the commands).
PROFILES = {
    "cpu": TrainConfig(),
    "gpu": TrainConfig(steps=20_000, batch=128, patch=128, lr=2e-4, lr_min=1e-6, warmup=300, bf16=True,
                       val_every=2500, checkpoint_every=5000),
    "gpu-finetune": TrainConfig(steps=30_000, batch=128, patch=128, lr=1e-4, lr_min=1e-6, warmup=300, bf16=True,
                                val_every=2500, checkpoint_every=5000),
}


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def _load_folder(folder: Path, gray: bool) -> list[torch.Tensor]:
    from unblur.io import list_images, read_image

    files = list_images(folder)
    if not files:
        raise UserError(f"no training images in {folder}")
    out = []
    for f in files:
        px = torch.from_numpy(np.ascontiguousarray(read_image(f).pixels)).permute(2, 0, 1)
        px = px.mean(0, keepdim=True) if gray else (px if px.shape[0] == 3 else px[:1].expand(3, -1, -1))
        out.append((px * 255 + 0.5).clamp(0, 255).to(torch.uint8).contiguous())
    return out


def _stack_by_shape(images: list[torch.Tensor], patch: int, device: torch.device) -> list[torch.Tensor]:
    """Group uint8 ``(C, H, W)`` images into ``(N, C, H, W)`` stacks of one shape on ``device``.

    Portrait images are transposed to landscape (the eight-fold flip/rotation augmentation makes
    orientation irrelevant) and images smaller than ``patch`` are enlarged, so that a photo
    collection falls into a few stacks and crops can be gathered in one indexing operation.
    """
    groups: dict[tuple[int, int], list[torch.Tensor]] = {}
    for img in images:
        if img.shape[1] > img.shape[2]:
            img = img.transpose(1, 2)
        if min(img.shape[1:]) < patch:
            scale = patch / min(img.shape[1:]) + 1e-3
            img = F.interpolate(img[None].float(), scale_factor=scale, mode="bilinear")[0].round().to(torch.uint8)
        groups.setdefault(tuple(img.shape[1:]), []).append(img.contiguous())
    return [torch.stack(groups[k]).to(device) for k in sorted(groups)]


class PatchSampler:
    """Random training patches from colour and gray image lists (uint8 ``(C, H, W)`` tensors).

    The images are held on the training device and a whole batch is cut out by one gather per image
    stack, so sampling keeps up with a GPU. Every random choice comes from the numpy generator
    passed to :meth:`sample`, in the same order on every device.
    """

    def __init__(self, color: list[torch.Tensor], gray: list[torch.Tensor], config: TrainConfig, device="cpu"):
        self.config, self.device = config, torch.device(device)
        self.color = _stack_by_shape(color, config.patch, self.device)
        self.gray = _stack_by_shape(gray, config.patch, self.device)

    def _gather(self, stacks: list[torch.Tensor], index: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Random ``patch``-sized crops of images ``index`` (counted across ``stacks``), as floats."""
        p, dev = self.config.patch, self.device
        out = torch.empty(len(index), stacks[0].shape[1], p, p, device=dev)
        ar = torch.arange(p, device=dev)
        first = 0
        for stack in stacks:
            sel = np.flatnonzero((index >= first) & (index < first + len(stack)))
            if len(sel):
                h, w = stack.shape[-2:]
                i = torch.as_tensor(rng.integers(0, h - p + 1, len(sel)), device=dev)
                j = torch.as_tensor(rng.integers(0, w - p + 1, len(sel)), device=dev)
                n = torch.as_tensor(index[sel] - first, device=dev)
                c = torch.arange(stack.shape[1], device=dev)
                crops = stack[n[:, None, None, None], c[None, :, None, None],
                              (i[:, None] + ar)[:, None, :, None], (j[:, None] + ar)[:, None, None, :]]
                out[torch.as_tensor(sel, device=dev)] = crops.float() / 255
            first += len(stack)
        return out

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A ``(batch, 3, patch, patch)`` batch of clean patches in [0, 1] and its gray mask."""
        b, p = self.config.batch, self.config.patch
        n_color, n_gray = sum(map(len, self.color)), sum(map(len, self.gray))
        gray = rng.random(b) < self.config.gray_fraction
        from_gray_set = gray & (rng.random(b) < 0.5) if n_gray else np.zeros(b, bool)
        color_index, gray_index = rng.integers(0, n_color, b), rng.integers(0, max(n_gray, 1), b)
        flips = rng.integers(0, 8, b)

        out = torch.empty(b, 3, p, p, device=self.device)
        sel = np.flatnonzero(~from_gray_set)
        if len(sel):
            crops = self._gather(self.color, color_index[sel], rng)
            luma = (crops * _LUMA.to(self.device)).sum(1, keepdim=True).expand(-1, 3, -1, -1)
            to_luma = torch.as_tensor(gray[sel], device=self.device).view(-1, 1, 1, 1)
            out[torch.as_tensor(sel, device=self.device)] = torch.where(to_luma, luma, crops)
        sel = np.flatnonzero(from_gray_set)
        if len(sel):
            out[torch.as_tensor(sel, device=self.device)] = self._gather(self.gray, gray_index[sel], rng).expand(-1, 3, -1, -1)
        for k in np.unique(flips):  # the eight flips/rotations, one batched op per kind
            sel = torch.as_tensor(np.flatnonzero(flips == k), device=self.device)
            crop = torch.rot90(out[sel], int(k) % 4, dims=(2, 3))
            out[sel] = crop.flip(3) if k >= 4 else crop
        return out, torch.as_tensor(gray, device=self.device)


def add_noise(clean: torch.Tensor, sigma: torch.Tensor, gray: torch.Tensor, generator=None) -> torch.Tensor:
    """White Gaussian noise of std ``sigma`` (per image); gray images get one noise field for all
    three channels, as a gray photo replicated to RGB would. ``generator`` lives on ``clean``'s device."""
    noise = torch.randn(clean.shape, generator=generator, device=clean.device)
    noise = torch.where(gray.view(-1, 1, 1, 1), noise[:, :1].expand_as(noise), noise)
    return clean + sigma.view(-1, 1, 1, 1) * noise


def load_training_data(data_root: Path, config: TrainConfig, device="cpu"):
    """(train sampler on ``device``, validation batch of colour crops) from the reference data folder."""
    color = _load_folder(data_root / "natural" / "cbsd432", gray=False)
    gray_dir = data_root / "natural" / "train400_gray"
    gray = _load_folder(gray_dir, gray=True) if gray_dir.is_dir() else []
    if len(color) <= config.val_images:
        raise UserError("not enough colour training images for the validation split")
    val = [c.float() / 255 for c in color[-config.val_images:]] if config.val_images else []
    color = color[:-config.val_images] if config.val_images else color
    if val:  # central crops of a common size (at most 256 px)
        size = min(256, *(min(v.shape[1:]) for v in val))
        val = torch.stack([v[:, (v.shape[1] - size) // 2:][:, :size, (v.shape[2] - size) // 2:][:, :, :size] for v in val])
    else:
        val = None
    return PatchSampler(color, gray, config, device), val


# ------------------------------------------------------------------------------------------------
# training loop
# ------------------------------------------------------------------------------------------------
def _lr(config: TrainConfig, step: int) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    t = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * min(t, 1.0)))


@torch.no_grad()
def validate(model: DenoiserNet, val: torch.Tensor, sigma: float, seed: int = 1234) -> dict:
    """Mean PSNR on the held-out crops (colour, and gray from their luma) at noise ``sigma``."""
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    gray = (val * _LUMA).sum(1, keepdim=True).expand(-1, 3, -1, -1)
    out = {}
    for name, clean in (("color", val), ("gray", gray)):
        n = len(clean)
        noisy = add_noise(clean, torch.full((n,), sigma), torch.full((n,), name == "gray"), g)
        den = torch.cat([model(noisy[i:i + 4].to(device), sigma).cpu() for i in range(0, len(noisy), 4)])
        if name == "gray":
            den = den.mean(1, keepdim=True).expand(-1, 3, -1, -1)
        out[name] = float(psnr(den.clamp(0, 1), clean).mean())
    model.train()
    return out


class DenoiseTask:
    """What :func:`train_model` needs to train the denoiser: batches, loss, validation, file name."""

    name = "denoiser"

    def __init__(self, data_root: Path, config: TrainConfig, device):
        self.config = config
        self.sampler, self.val = load_training_data(data_root, config, device)
        self.data = [f"natural/cbsd432 (minus the last {config.val_images}, held out)", "natural/train400_gray"]

    def batch(self, rng: np.random.Generator, noise_gen: torch.Generator):
        """(network input, noise std per image, target)."""
        clean, gray = self.sampler.sample(rng)
        sigma = torch.rand(clean.shape[0], generator=noise_gen, device=clean.device) * self.config.sigma_max
        return add_noise(clean, sigma, gray, noise_gen), sigma, clean

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(out, target)

    def validate(self, model) -> dict | None:
        return validate(model, self.val, self.config.val_sigma) if self.val is not None else None


def train_denoiser(out_dir, config: TrainConfig = TrainConfig(), data_root=None, device="cpu",
                   command: str | None = None, progress: bool = True, init=None) -> Path:
    """Train (or resume) a denoiser into ``out_dir``; returns the path of the final ``denoiser.pt``.

    ``init`` is a weights file written by :func:`~unblur.models.denoiser.save_weights` (e.g. the
    shipped one) to start from instead of a random initialisation; its training record is kept
    under ``"init"`` in the new record. A run resumes on the device it started on.
    """
    return train_model(DenoiseTask, out_dir, config, data_root, device, command, progress, init)


def train_model(task_type, out_dir, config: TrainConfig, data_root=None, device="cpu",
                command: str | None = None, progress: bool = True, init=None) -> Path:
    """The training loop shared by the shipped networks (all :class:`DenoiserNet` UNets).

    ``task_type(data_root, config, device)`` supplies the batches, the loss, the validation and
    the weights' file name (see :class:`DenoiseTask`). Adam with a linear warm-up and a cosine
    decay, gradient clipping, bfloat16 autocast on CUDA when ``config.bf16``; checkpoints every
    ``checkpoint_every`` steps, from which a run resumes; one JSON line per validation in
    ``train.log``; at the end ``<task name>.pt``, float16 inference weights with the training record.
    """
    from unblur._runtime import console, progress_bar
    from unblur.bench.suites import resolve_data_root
    from unblur.models.denoiser import load_weights, weights_info

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    data_root = resolve_data_root(data_root)
    task = task_type(data_root, config, device)

    torch.manual_seed(config.seed)
    model = DenoiserNet(DenoiserConfig(channels=config.channels, blocks=config.blocks))
    init_info = None
    if init is not None:
        start = load_weights(init)
        if start.config != model.config:
            raise UserError(f"{init} holds a {start.config} network, the config asks for {model.config}")
        model.load_state_dict(start.state_dict())
        init_info = weights_info(init)
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format).requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, fused=cuda or None)
    rng = np.random.default_rng(config.seed)
    noise_gen = torch.Generator(device).manual_seed(config.seed + 1)
    step, elapsed, history = 0, 0.0, []

    ckpt = out_dir / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        saved, now = json.loads(state["config"]), json.loads(json.dumps(dataclasses.asdict(config)))
        if {k: v for k, v in saved.items() if k != "steps"} != {k: v for k, v in now.items() if k != "steps"}:
            raise UserError(f"{ckpt} was written with a different config (only --steps may change); use another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = json.loads(state["rng"])
        noise_gen.set_state(state["noise_gen"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        history = json.loads(state["history"])
        init_info = json.loads(state["init"])
        console.print(f"resuming from step {step}")

    def save_checkpoint():
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "rng": json.dumps(rng.bit_generator.state),
                    "noise_gen": noise_gen.get_state(), "history": json.dumps(history),
                    "config": json.dumps(dataclasses.asdict(config)), "init": json.dumps(init_info)}, tmp)
        os.replace(tmp, ckpt)

    log = (out_dir / "train.log").open("a")
    running, last_val = None, (history[-1]["val"] if history else None)
    model.train()
    with progress_bar("training", config.steps, enabled=progress, completed=step, status=True) as advance:
        mark = time.perf_counter()
        while step < config.steps:
            inp, sigma, target = task.batch(rng, noise_gen)
            for group in opt.param_groups:
                group["lr"] = _lr(config, step)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16 and cuda):
                out = model(inp, sigma)
            loss = task.loss(out.float(), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            opt.step()
            step += 1
            # a running mean kept on the device: reading it every step would stall a GPU
            running = loss.detach() if running is None else 0.98 * running + 0.02 * loss.detach()
            report = step % config.val_every == 0 or step == config.steps
            save = step % config.checkpoint_every == 0 or step == config.steps
            if not (report or save or step % 50 == 0 or step < 50):
                advance(1)
                continue
            if cuda:
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - mark  # training time, without validation and checkpoints
            if report:
                last_val = task.validate(model)
                entry = {"step": step, "loss": float(running), "lr": _lr(config, step - 1), "val": last_val,
                         "seconds": round(elapsed, 1)}
                history.append(entry)
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if save:
                save_checkpoint()
            status = f"loss {float(running):.4f}"
            if last_val:
                status += "  val " + "/".join(f"{v:.2f}" for v in last_val.values()) + " dB"
            advance(1, status)
            mark = time.perf_counter()
    log.close()

    info = {
        "command": command or " ".join(sys.argv),
        "data": task.data,
        "train_config": dataclasses.asdict(config),
        "steps": step,
        "train_seconds": round(elapsed, 1),
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "validation": {"sigma": config.val_sigma, "psnr": last_val},
        "history": history,
    }
    if init_info is not None:
        info["init"] = init_info
    final = out_dir / f"{task.name}.pt"
    save_weights(model, final, info)
    return final
