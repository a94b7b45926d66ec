r"""A noise-level-conditioned residual UNet denoiser sized for CPU inference.

The noise standard deviation enters as a constant input map, as in FFDNet (Zhang, Zuo & Zhang,
"FFDNet: toward a fast and flexible solution for CNN-based image denoising", TIP 2018) and DRUNet
(Zhang et al., "Plug-and-play image restoration with deep denoiser prior", TPAMI 2021), so one
network covers every noise level in its training range and can serve as the prior of a
plug-and-play solver whose noise level changes from step to step.

Layout: the image and the noise map are pixel-unshuffled by 2 (FFDNet's trick: four times fewer
pixels to convolve), then a four-level UNet of bias-free residual blocks (DRUNet's design,
narrower: 32-64-128-256 channels, two blocks per level), strided 2x2 convolutions down,
transposed 2x2 convolutions up, additive skips, and a residual connection from the input. The
network always sees three channels; gray images are replicated and the output averaged, so one set
of weights serves gray and colour.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

#: Name of the shipped weights inside ``unblur/models/weights``.
WEIGHTS = "denoiser.pt"


@dataclass(frozen=True)
class DenoiserConfig:
    """Architecture of :class:`DenoiserNet`."""

    channels: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 2
    unshuffle: int = 2


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class DenoiserNet(nn.Module):
    """Residual UNet ``f(x, sigma)`` for ``(B, 3, H, W)`` images in [0, 1] and noise std ``sigma``.

    ``sigma`` is a float or a ``(B,)`` tensor (one level per image). Any image size works: the input
    is padded by reflection to a multiple of ``unshuffle * 2**(levels-1)`` and cropped back.
    """

    def __init__(self, config: DenoiserConfig = DenoiserConfig()):
        super().__init__()
        self.config = config
        ch, nb, u = config.channels, config.blocks, config.unshuffle
        self.head = nn.Conv2d(4 * u * u, ch[0], 3, padding=1, bias=False)
        self.encoders = nn.ModuleList(nn.Sequential(*[_ResBlock(c) for _ in range(nb)]) for c in ch[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2, bias=False) for a, b in pairwise(ch))
        self.middle = nn.Sequential(*[_ResBlock(ch[-1]) for _ in range(nb)])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2, bias=False) for a, b in pairwise(ch))
        self.decoders = nn.ModuleList(nn.Sequential(*[_ResBlock(c) for _ in range(nb)]) for c in ch[:-1])
        self.tail = nn.Conv2d(ch[0], 3 * u * u, 3, padding=1, bias=False)

    @property
    def multiple(self) -> int:
        return self.config.unshuffle * 2 ** (len(self.config.channels) - 1)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = -h % m, -w % m
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        level = sig.expand(x.shape[0], 1, *xp.shape[-2:])
        z = self.head(F.pixel_unshuffle(torch.cat([xp, level], 1), self.config.unshuffle))
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            z = enc(z)
            skips.append(z)
            z = down(z)
        z = self.middle(z)
        for up, dec in zip(reversed(self.ups), reversed(self.decoders)):
            z = dec(up(z) + skips.pop())
        out = xp + F.pixel_shuffle(self.tail(z), self.config.unshuffle)
        return out[..., :h, :w]


def _shipped_weights(name: str = WEIGHTS):
    """A shipped weights file inside the package (a :mod:`importlib.resources` traversable)."""
    return resources.files("unblur.models") / "weights" / name


def weights_info(path=None, name: str = WEIGHTS) -> dict | None:
    """Training record (command, data, steps, validation PSNR) of a weights file written by
    :func:`save_weights`; by default of the shipped file ``name`` (None when it is missing)."""
    if path is not None:
        return json.loads(torch.load(path, map_location="cpu", weights_only=True)["info"])
    path = _shipped_weights(name)
    if not path.is_file():
        return None
    with resources.as_file(path) as p:
        return weights_info(p)


def save_weights(model: DenoiserNet, path, info: dict) -> None:
    """Write inference weights (float16 tensors, architecture and training record) to ``path``."""
    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    info = {**info, "config": asdict(model.config)}
    torch.save({"state_dict": state, "info": json.dumps(info)}, path)


def load_weights(path, device: torch.device | str = "cpu") -> DenoiserNet:
    """Build a :class:`DenoiserNet` from a file written by :func:`save_weights`."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    cfg = json.loads(blob["info"])["config"]
    model = DenoiserNet(DenoiserConfig(channels=tuple(cfg["channels"]), blocks=cfg["blocks"], unshuffle=cfg["unshuffle"]))
    model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return model.eval().requires_grad_(False).to(device)


@lru_cache(maxsize=8)
def _cached(device: str, name: str) -> DenoiserNet:
    path = _shipped_weights(name)
    if not path.is_file():
        raise FileNotFoundError(f"the shipped weights {name} are missing ({path}); run `unblur train`")
    with resources.as_file(path) as p:
        return load_weights(p, device)


def load_shipped(name: str, device: torch.device | str = "cpu") -> DenoiserNet:
    """The shipped network ``name`` (a file in ``unblur/models/weights``) on ``device``, loaded once
    per device, offline."""
    return _cached(str(torch.device(device)), name)


def load_denoiser(device: torch.device | str = "cpu") -> DenoiserNet:
    """The shipped, pretrained denoiser on ``device`` (loaded once per device, offline)."""
    return load_shipped(WEIGHTS, device)
