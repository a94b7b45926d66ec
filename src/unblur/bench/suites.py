"""Benchmark suites: named, deterministic sets of test cases built from the reference data.

A :class:`Case` is one blurred image with what is known about it: the sharp ground truth (aligned
pixel for pixel with the blurred image), the true kernel, the noise level and how it was made.
Synthetic cases are made with the project's own camera model (:func:`unblur.blur.synth.degrade`)
from the sharp images and kernels of the reference data folder (``../shared/data``, see
:func:`resolve_data_root`); nothing is cached on disk, and the same case is rebuilt bit for bit
every time (fixed seeds, deterministic resampling).

Cases are *lazy*: listing a suite only looks at file names; :meth:`Case.load` reads and
synthesises the images. A case's ``builder`` is a :func:`functools.partial` of a module-level
function, so cases can be sent to worker processes.

=================  ===========================================================================
suite              cases
=================  ===========================================================================
``lai-synth``      25 Lai et al. (2016) sharp images (long side 512 px) x their 4 kernels
                   (31-75 px), ``valid`` blur of the sRGB values, 1 % Gaussian noise, 8 bits
                   (100 cases, the hard set)
``shake-synth``    6 gray + 6 colour test images x 4 camera-shake kernels (11, 21, 31, 41 px)
                   x noise 0.5 %, 1 %, 2 %, blurred in linear light, 8 bits (144 cases)
``gopro``          the 2 published GoPro pairs + 4 pairs averaging 7, 9, 11 and 13 frames of a
                   240 fps burst in linear light (6 cases, no kernel: blind methods only)
``speed``          one 1 MP RGB image, 31x31 camera shake, 1 % noise, and one 255 x 255 gray
                   image (2 cases, for timing)
``denoise``        BSD68 (gray) and CBSD68 (colour), white Gaussian noise of sigma 25/255
                   (136 cases, denoisers only)
``denoise-speed``  one 1 MP RGB image with that noise (1 case, for timing the denoiser)
``large``          the same at 12 MP and 24 MP (2 cases, for time and peak memory; by default
                   only the methods of :data:`LARGE_METHODS`)
``quick``          2 lai-synth (31 px kernel) + 2 gray shake-synth cases (11 and 21 px): smoke
                   runs and CI
``visual``         the 100 real blurred photos of Lai et al. (no ground truth, blind methods
                   only; outputs go into the HTML report)
``train-shake``    the tuning set, on *training* images (``cbsd432``): 64 camera-shake kernels
                   of 31-61 px that fill their support (1 % noise, half blurred on the sRGB
                   values, half in linear light) + 64 compact ones of 11-41 px (0.5-2 % noise,
                   linear light); 128 cases. Estimator settings are tried here, never on the
                   test suites above
=================  ===========================================================================
"""
from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from unblur.errors import UserError

__all__ = [
    "SUITES",
    "Case",
    "CaseData",
    "Suite",
    "get_suite",
    "register_suite",
    "resolve_data_root",
    "stable_seed",
]

#: Environment variable naming the reference data folder.
DATA_ENV = "UNBLUR_DATA"


# ------------------------------------------------------------------------------------------------
# data root
# ------------------------------------------------------------------------------------------------
def _repo_root() -> Path:
    """The source checkout holding this package (``src/unblur/bench`` -> repository root)."""
    return Path(__file__).resolve().parents[3]


def resolve_data_root(data: str | os.PathLike | None = None, *, must_exist: bool = True) -> Path:
    """Find the reference data folder.

    Parameters
    ----------
    data : path, optional
        Explicit folder (``--data``). When omitted: the ``UNBLUR_DATA`` environment variable, then
        ``../shared/data`` relative to the current directory, then ``../shared/data`` relative to
        the repository holding this package.
    must_exist : bool
        Raise :class:`UserError` when no candidate is an existing folder (otherwise return the
        first candidate).

    Returns
    -------
    pathlib.Path
    """
    if data is not None:
        candidates = [Path(data)]
    elif os.environ.get(DATA_ENV):
        candidates = [Path(os.environ[DATA_ENV])]
    else:
        candidates = [Path.cwd().parent / "shared" / "data", _repo_root().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    if must_exist:
        where = ", ".join(str(c) for c in candidates)
        raise UserError(f"reference data folder not found (looked in {where}); pass --data DIR or set {DATA_ENV}")
    return candidates[0]


def stable_seed(*parts) -> int:
    """A seed derived from strings/numbers, stable across runs and platforms (CRC-32)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


# ------------------------------------------------------------------------------------------------
# cases
# ------------------------------------------------------------------------------------------------
@dataclass
class CaseData:
    """The tensors of a loaded case.

    Attributes
    ----------
    blurred : torch.Tensor
        ``(1, C, H, W)`` float32 in ``[0, 1]``: what a method receives.
    truth : torch.Tensor or None
        ``(1, C, H, W)`` sharp image aligned with ``blurred`` (None for real photos).
    kernel : torch.Tensor or None
        ``(h, w)`` float32 true kernel summing to one (None when unknown).
    """

    blurred: torch.Tensor
    truth: torch.Tensor | None = None
    kernel: torch.Tensor | None = None


@dataclass
class Case:
    """One benchmark case (lazy: :meth:`load` builds the tensors).

    Attributes
    ----------
    id : str
        Unique within its suite, stable across runs (e.g. ``"manmade_01/kernel_01"``).
    suite : str
        Name of the suite the case belongs to.
    group : str
        What results are grouped by in plots: the kernel name (``kernel_01``, ``shake-21``) or the
        kind of pair (``pair``, ``frames-9``).
    source : str
        The sharp (or real blurred) source image, relative to the data folder.
    sigma : float or None
        Std of the added Gaussian noise in sRGB units (0 when none was added, None when unknown).
    kernel_size : int or None
        Side of the true kernel (None when there is none).
    has_truth : bool
        Whether a sharp ground truth exists (False for real photos).
    builder : callable
        ``builder() -> CaseData`` (a picklable :func:`functools.partial`).
    meta : dict
        Everything else worth recording (image sizes, seeds, degradation parameters).
    """

    id: str
    suite: str
    group: str
    source: str
    sigma: float | None
    kernel_size: int | None
    has_truth: bool
    builder: Callable[[], CaseData] = field(repr=False)
    meta: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        """``"deblur"`` (the default) or ``"denoise"`` (inputs are noisy, not blurred)."""
        return self.meta.get("task", "deblur")

    @property
    def has_kernel(self) -> bool:
        """True when the true kernel is known (non-blind methods can run)."""
        return self.kernel_size is not None

    def load(self) -> CaseData:
        """Read and synthesise the case's tensors (deterministic)."""
        return self.builder()


@dataclass
class Suite:
    """A named suite: a description and a function listing its cases from a data folder."""

    name: str
    description: str
    make: Callable[[Path], list[Case]] = field(repr=False)
    needs: tuple[str, ...] = ()
    methods: tuple[str, ...] | None = None
    repeats: int = 1
    degraded: str = "blurred"  # what the input is, for the reports ("noisy" for denoising suites)
    timed: bool = False  # its times are the point (speed targets): to be run as one job

    def __post_init__(self):
        self.timed = self.timed or self.repeats > 1  # repeated calls are timed calls

    def cases(self, data_root: Path) -> list[Case]:
        """The suite's cases (raises :class:`UserError` when its data is missing)."""
        missing = [n for n in self.needs if not (data_root / n).exists()]
        if missing:
            raise UserError(f"suite {self.name!r} needs {', '.join(missing)} under the data folder {data_root}, which is missing")
        return self.make(data_root)


#: name -> :class:`Suite`.
SUITES: dict[str, Suite] = {}


def register_suite(name: str, description: str, needs: tuple[str, ...] = (), methods: tuple[str, ...] | None = None,
                   repeats: int = 1, degraded: str = "blurred", timed: bool = False):
    """Decorator registering ``make(data_root) -> list[Case]`` as suite ``name``.

    ``methods`` are the ones run when none are named (default: every method that applies);
    ``repeats`` calls of each method are timed and their median is recorded (timing suites);
    ``degraded`` names the input in the reports ("blurred input", "noisy input");
    ``timed`` marks suites whose times are checked against targets (``repeats > 1`` implies it).
    """

    def deco(make):
        SUITES[name] = Suite(name, description, make, needs, methods, repeats, degraded, timed)
        return make

    return deco


def get_suite(name: str, data_root=None) -> list[Case]:
    """The cases of suite ``name``, built from ``data_root`` (see :func:`resolve_data_root`).

    Raises
    ------
    UserError
        For an unknown suite or missing data.
    """
    if name not in SUITES:
        raise UserError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    root = resolve_data_root(data_root)
    cases = SUITES[name].cases(root)
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), f"duplicate case ids in suite {name}"
    return cases


# ------------------------------------------------------------------------------------------------
# builders (module-level so that partials of them pickle)
# ------------------------------------------------------------------------------------------------
def _read(path: Path) -> torch.Tensor:
    from unblur import io

    return io.read_image(path).to_tensor()


def _resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize to ``size = (H, W)`` of sRGB values, re-quantised to 8 bits."""
    from unblur.blur.noise import quantize

    if tuple(img.shape[-2:]) == tuple(size):
        return img
    out = F.interpolate(img.double(), size=size, mode="bicubic", antialias=True, align_corners=False)
    return quantize(out.float(), 8)


def _long_side(img: torch.Tensor, long_side: int | None) -> torch.Tensor:
    """Downscale (never upscale) so that the longer side is at most ``long_side``."""
    if not long_side:
        return img
    H, W = img.shape[-2:]
    s = long_side / max(H, W)
    if s >= 1:
        return img
    return _resize(img, (max(1, round(H * s)), max(1, round(W * s))))


def _load_kernel(spec: tuple) -> torch.Tensor:
    """A kernel from ``("file", path)`` or ``("shake", size, seed)``."""
    if spec[0] == "file":
        from unblur import io

        return torch.from_numpy(io.read_kernel(spec[1])).float()
    if spec[0] == "shake":  # ("shake", size, seed[, camera_shake_kernel settings])
        from unblur.blur.kernels import camera_shake_kernel

        return camera_shake_kernel(size=spec[1], rng=spec[2], **(spec[3] if len(spec) > 3 else {}))
    raise ValueError(f"unknown kernel spec {spec!r}")


def _build_synthetic(image: str, kernel: tuple, degradation: dict, seed: int, long_side: int | None = None,
                     size: tuple[int, int] | None = None) -> CaseData:
    """Read a sharp image, resize it, blur it (``valid``) and degrade it."""
    from unblur.blur.synth import Degradation, degrade

    sharp = _read(Path(image))
    if size is not None:
        sharp = _resize(sharp, size)
    else:
        sharp = _long_side(sharp, long_side)
    k = _load_kernel(kernel)
    blurred, truth = degrade(sharp, k, Degradation(**degradation), mode="valid", generator=seed)
    return CaseData(blurred.float().contiguous(), truth.float().contiguous(), k)


def _build_noisy(image: str, sigma: float, seed: int, size: tuple[int, int] | None = None) -> CaseData:
    """A clean image (resized to ``size`` if given) plus unclipped white Gaussian noise of std
    ``sigma`` (the usual denoising protocol)."""
    clean = _read(Path(image))
    if size is not None:
        clean = _resize(clean, size)
    g = torch.Generator().manual_seed(seed)
    noisy = clean + sigma * torch.randn(clean.shape, generator=g, dtype=torch.float64).float()
    return CaseData(noisy.contiguous(), clean.contiguous(), None)


def _build_pair(blurred: str, sharp: str) -> CaseData:
    return CaseData(_read(Path(blurred)), _read(Path(sharp)), None)


def _build_frames(frames: tuple[str, ...], linear: bool = True) -> CaseData:
    from unblur.blur.noise import quantize
    from unblur.blur.synth import average_frames

    stack = torch.cat([_read(Path(p)) for p in frames])
    blurred, truth = average_frames(stack, linear=linear)
    return CaseData(quantize(blurred, 8).float(), truth.float(), None)


def _build_real(path: str) -> CaseData:
    return CaseData(_read(Path(path)), None, None)


def _image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file, read from its header only."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    return h, w


def _check_files(paths, what: str) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"{what}: missing {', '.join(missing[:3])}{more}")


# ------------------------------------------------------------------------------------------------
# suites
# ------------------------------------------------------------------------------------------------
LAI_LONG_SIDE = 512
LAI_DEGRADATION = {"sigma": 0.01, "linear": False, "bits": 8}


@register_suite("lai-synth", "Lai et al. 2016 sharp images (long side 512) x 4 large kernels (31-75 px), "
                "valid blur of sRGB values, 1% noise, 8 bits", needs=("lai2016/sharp", "lai2016/kernels"))
def _lai_synth(root: Path) -> list[Case]:
    sharp = sorted(p for p in (root / "lai2016" / "sharp").glob("*.png"))
    kernels = [root / "lai2016" / "kernels" / f"kernel_0{i}.png" for i in range(1, 5)]
    _check_files(kernels, "lai-synth kernels")
    if len(sharp) != 25:
        raise UserError(f"lai-synth expects the 25 sharp images of lai2016/sharp, found {len(sharp)} in {root / 'lai2016' / 'sharp'}")
    ksizes = {}
    for kp in kernels:
        h, _w = _image_size(kp)
        ksizes[kp.stem] = h
    cases = []
    for kp in kernels:  # kernel-major: small kernels first
        for ip in sharp:
            cid = f"{ip.stem}/{kp.stem}"
            seed = stable_seed("lai-synth", cid)
            builder = functools.partial(_build_synthetic, str(ip), ("file", str(kp)), LAI_DEGRADATION, seed, LAI_LONG_SIDE)
            cases.append(Case(cid, "lai-synth", kp.stem, f"lai2016/sharp/{ip.name}", 0.01, ksizes[kp.stem], True,
                              builder, {"seed": seed, "long_side": LAI_LONG_SIDE, "kernel": f"lai2016/kernels/{kp.name}",
                                            "degradation": LAI_DEGRADATION, "boundary": "valid"}))
    return cases


#: Test images of shake-synth: (folder under natural/, file names).
SHAKE_IMAGES = (
    ("bsd68_gray", ("test001.png", "test025.png", "test050.png")),
    ("set12_gray", ("01.png", "05.png", "09.png")),
    ("cbsd68", ("101085.png", "160068.png", "241048.png")),
    ("kodak24", ("kodim03.png", "kodim13.png", "kodim23.png")),
)
#: Camera-shake kernels of shake-synth: (size, seed of camera_shake_kernel).
SHAKE_KERNELS = ((11, 11), (21, 21), (31, 31), (41, 41))
SHAKE_SIGMAS = (0.005, 0.01, 0.02)


@register_suite("shake-synth", "6 gray + 6 colour test images x 4 camera-shake kernels (11-41 px) x noise 0.5/1/2%, "
                "valid blur in linear light, 8 bits", needs=tuple(f"natural/{d}" for d, _ in SHAKE_IMAGES))
def _shake_synth(root: Path) -> list[Case]:
    images = [root / "natural" / d / f for d, names in SHAKE_IMAGES for f in names]
    _check_files(images, "shake-synth images")
    cases = []
    for size, kseed in SHAKE_KERNELS:
        for sigma in SHAKE_SIGMAS:
            for ip in images:
                folder = ip.parent.name
                cid = f"{folder}/{ip.stem}/shake-{size}/s{sigma:g}"
                seed = stable_seed("shake-synth", cid)
                deg = {"sigma": sigma, "linear": True, "bits": 8}
                builder = functools.partial(_build_synthetic, str(ip), ("shake", size, kseed), deg, seed)
                cases.append(Case(cid, "shake-synth", f"shake-{size}", f"natural/{folder}/{ip.name}", sigma, size, True,
                                  builder, {"seed": seed, "kernel": f"camera_shake_kernel(size={size}, rng={kseed})",
                                                "degradation": deg, "boundary": "valid", "gray": folder.endswith("_gray")}))
    return cases


#: Seed tag of ``train-shake`` (the name its cases had when the trials recorded in
#: :mod:`unblur.estimate.map_kernel` were run on them, so that those figures can be reproduced).
TRAIN_SEED = "dev12"
TRAIN_CASES = 64  # per half


@register_suite("train-shake", "tuning set on training images (cbsd432): 64 support-filling 31-61 px shake kernels "
                "(1% noise, sRGB or linear-light blur) + 64 compact 11-41 px ones (0.5-2% noise, linear light)",
                needs=("natural/cbsd432",), methods=("tv", "deblur-map"))
def _train_shake(root: Path) -> list[Case]:
    import numpy as np

    images = sorted((root / "natural" / "cbsd432").glob("*.jpg"))
    if not images:
        raise UserError(f"train-shake needs the cbsd432 training images in {root / 'natural' / 'cbsd432'}")
    cases = []
    for half, tag, sizes in (("fill", "F", (31, 41, 51, 61)), ("compact", "C", (11, 21, 31, 41))):
        for i in range(TRAIN_CASES):
            rng = np.random.default_rng(stable_seed(TRAIN_SEED, tag, i))
            ip = images[int(rng.integers(len(images)))]
            size = sizes[i % 4]
            if half == "fill":  # a smooth trajectory longer than the support, shrunk to fill it
                settings = {"max_length": size * rng.uniform(1.2, 2.0), "anxiety": rng.uniform(0.0005, 0.003)}
                kseed = int(rng.integers(1 << 30))
                deg = {"sigma": 0.01, "linear": bool(i % 2), "bits": 8}
            else:
                settings, kseed = {}, int(rng.integers(1 << 30))
                deg = {"sigma": (0.005, 0.01, 0.02)[i % 3], "linear": True, "bits": 8}
            cid = f"{half}/{i:02d}-{ip.stem}/shake-{size}"
            builder = functools.partial(_build_synthetic, str(ip), ("shake", size, kseed, settings), deg,
                                        stable_seed(TRAIN_SEED + "n", tag, i))
            cases.append(Case(cid, "train-shake", f"{half}-{size}", f"natural/cbsd432/{ip.name}", deg["sigma"], size, True,
                              builder, {"kernel": f"camera_shake_kernel(size={size}, rng={kseed}, **{settings})",
                                        "degradation": deg, "boundary": "valid"}))
    return cases


#: Test sets and noise levels of the ``denoise`` suite (sigma on the 0-255 scale).
DENOISE_SETS = ("bsd68_gray", "cbsd68")
DENOISE_SIGMAS = (25,)


@register_suite("denoise", "BSD68 (gray) and CBSD68 (colour) with white Gaussian noise, sigma 25/255, unclipped: "
                "denoisers given the true sigma", needs=tuple(f"natural/{d}" for d in DENOISE_SETS), degraded="noisy")
def _denoise(root: Path) -> list[Case]:
    from unblur import io

    cases = []
    for folder in DENOISE_SETS:
        paths = io.list_images(root / "natural" / folder)
        for sig in DENOISE_SIGMAS:
            for p in paths:
                cid = f"{folder}/{p.stem}/s{sig}"
                seed = stable_seed("denoise", cid)
                cases.append(Case(cid, "denoise", folder, f"natural/{folder}/{p.name}", sig / 255, None, True,
                                  functools.partial(_build_noisy, str(p), sig / 255, seed),
                                  {"seed": seed, "task": "denoise", "sigma255": sig}))
    return cases


GOPRO_BURST = "GOPR0477_11_00_240fps"
#: (first frame, number of frames) of the averaged GoPro pairs: consecutive, non-overlapping.
GOPRO_WINDOWS = ((1, 7), (8, 9), (17, 11), (28, 13))


@register_suite("gopro", "2 published GoPro pairs + 4 pairs averaging 7/9/11/13 frames of a 240 fps burst "
                "(linear light); no kernel", needs=("gopro/pairs", f"gopro/{GOPRO_BURST}"))
def _gopro(root: Path) -> list[Case]:
    cases = []
    for name in ("Flower", "Istanbul"):
        b, s = root / "gopro" / "pairs" / f"{name}_blur1.png", root / "gopro" / "pairs" / f"{name}_sharp1.png"
        _check_files([b, s], "gopro pairs")
        cases.append(Case(f"pair/{name}", "gopro", "pair", f"gopro/pairs/{b.name}", None, None, True,
                          functools.partial(_build_pair, str(b), str(s)), {"kind": "published pair"}))
    burst = root / "gopro" / GOPRO_BURST
    for start, n in GOPRO_WINDOWS:
        frames = [burst / f"{i:06d}.png" for i in range(start, start + n)]
        _check_files(frames, "gopro frames")
        cases.append(Case(f"frames/{start:06d}-{start + n - 1:06d}", "gopro", f"frames-{n}", f"gopro/{GOPRO_BURST}/{frames[n // 2].name}",
                          0.0, None, True, functools.partial(_build_frames, tuple(str(p) for p in frames), True),
                          {"kind": "averaged frames", "num_frames": n, "first": frames[0].name, "linear": True}))
    return cases


SPEED_IMAGE = "lai2016/sharp/manmade_01.png"
#: The small gray image of ``speed`` (Set12's boat), resized so that its blur is 255 x 255.
SPEED_GRAY_IMAGE = "natural/set12_gray/08.png"
#: Timed calls per method in ``speed`` (one call's wall time varies by several percent here).
SPEED_REPEATS = 3
SPEED_BLURRED = (816, 1224)  # 0.999 MP
LARGE_BLURRED = {"12MP": (3000, 4000), "24MP": (4000, 6000)}
LARGE_METHODS = ("wiener", "hyperlaplacian", "tv", "deblur-auto", "deblur-polyblur")


def _resized_shake_case(root: Path, suite: str, label: str, blurred_size: tuple[int, int], size: int = 31,
                        image: str = SPEED_IMAGE, name: str = "manmade_01") -> Case:
    """``image`` (called ``name``) resized so that its ``valid`` blur by a ``size`` px shake is ``blurred_size``."""
    sharp_size = (blurred_size[0] + size - 1, blurred_size[1] + size - 1)
    cid = f"{name}-{label}/shake-{size}"
    seed = stable_seed(suite, cid)
    deg = {"sigma": 0.01, "linear": True, "bits": 8}
    builder = functools.partial(_build_synthetic, str(root / image), ("shake", size, 31), deg, seed, None, sharp_size)
    return Case(cid, suite, label, image, 0.01, size, True, builder,
                {"seed": seed, "degradation": deg, "sharp_size": list(sharp_size), "blurred_size": list(blurred_size)})


@register_suite("speed", f"one 1 MP RGB image (a Lai sharp image resized) and one 255x255 gray image (Set12's boat "
                f"resized), 31x31 camera shake, 1% noise: timing (median of {SPEED_REPEATS} calls)",
                needs=(SPEED_IMAGE, SPEED_GRAY_IMAGE), repeats=SPEED_REPEATS)
def _speed(root: Path) -> list[Case]:
    return [_resized_shake_case(root, "speed", "1MP", SPEED_BLURRED),
            _resized_shake_case(root, "speed", "255px", (255, 255), image=SPEED_GRAY_IMAGE, name="set12_08")]


@register_suite("denoise-speed", f"one 1 MP RGB image (a Lai sharp image resized) with white Gaussian noise, sigma "
                f"25/255: timing of the learned denoiser (median of {SPEED_REPEATS} calls)", needs=(SPEED_IMAGE,),
                methods=("denoise", "denoise-estimated"), repeats=SPEED_REPEATS, degraded="noisy")
def _denoise_speed(root: Path) -> list[Case]:
    cid = f"manmade_01-1MP/s{DENOISE_SIGMAS[0]}"
    seed = stable_seed("denoise-speed", cid)
    sigma = DENOISE_SIGMAS[0] / 255
    return [Case(cid, "denoise-speed", "1MP", SPEED_IMAGE, sigma, None, True,
                 functools.partial(_build_noisy, str(root / SPEED_IMAGE), sigma, seed, SPEED_BLURRED),
                 {"seed": seed, "task": "denoise", "sigma255": DENOISE_SIGMAS[0], "size": list(SPEED_BLURRED)})]


@register_suite("large", "12 MP and 24 MP RGB images (a Lai sharp image enlarged), 31x31 camera shake, 1% noise: "
                f"time and peak memory of {', '.join(LARGE_METHODS)} (the default methods)",
                needs=(SPEED_IMAGE,), methods=LARGE_METHODS, timed=True)
def _large(root: Path) -> list[Case]:
    return [_resized_shake_case(root, "large", label, hw) for label, hw in LARGE_BLURRED.items()]


#: Cases of ``quick``: (suite, case id). Small images and the smaller kernels, so that every
#: non-blind method and the anchors finish in well under two minutes on two cores.
QUICK_CASES = (
    ("lai-synth", "text_05/kernel_01"),
    ("lai-synth", "natural_03/kernel_01"),
    ("shake-synth", "set12_gray/01/shake-11/s0.01"),
    ("shake-synth", "set12_gray/05/shake-21/s0.02"),
)


@register_suite("quick", "4 cases: 2 from lai-synth (31 px kernel), 2 gray from shake-synth (11, 21 px): smoke runs and CI",
                needs=SUITES["lai-synth"].needs + SUITES["shake-synth"].needs)
def _quick(root: Path) -> list[Case]:
    by_suite = {}
    out = []
    for suite, cid in QUICK_CASES:
        if suite not in by_suite:
            by_suite[suite] = {c.id: c for c in SUITES[suite].cases(root)}
        out.append(replace(by_suite[suite][cid], suite="quick", meta={**by_suite[suite][cid].meta, "from_suite": suite}))
    return out


@register_suite("visual", "100 real blurred photos of Lai et al. 2016, no ground truth (blind methods; for the HTML report)",
                needs=("lai2016/real",))
def _visual(root: Path) -> list[Case]:
    real = root / "lai2016" / "real"
    categories = {}
    attr = real / "attribute.txt"
    if attr.is_file():
        for line in attr.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                categories[parts[0]] = parts[1]
    paths = sorted(real.glob("*.jpg"))
    if not paths:
        raise UserError(f"no .jpg photos in {real}")
    return [Case(p.stem, "visual", categories.get(p.stem, "real"), f"lai2016/real/{p.name}", None, None, False,
                 functools.partial(_build_real, str(p)), {"category": categories.get(p.stem, "")})
            for p in paths]
