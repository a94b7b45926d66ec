"""The registry of benchmarked methods: unblur's solvers and peer libraries side by side.

Every method is registered once with :func:`register` and called by the runner through
:meth:`Method.run`, which is the same code path as the command line (``unblur deconv`` calls
:func:`unblur.deconv.deconvolve` the same way).

* **Non-blind** methods receive the blurred image and the true kernel:
  ``fn(blurred, kernel, **params) -> restored`` or ``(restored, kernel_or_None)``.
* **Blind** methods receive the blurred image only:
  ``fn(blurred, **params) -> (restored, estimated_kernel)`` (or just ``restored``).

``blurred`` is a ``(1, C, H, W)`` float32 tensor in ``[0, 1]`` on the benchmark device; ``kernel``
an ``(h, w)`` float32 tensor summing to one on the same device. A method returns an image of the
same size as ``blurred`` (tensor or numpy, any layout :mod:`unblur._tensor` accepts).

**Anchors** are peer implementations installed from PyPI (scikit-image); the report gives every
method's PSNR gain and time ratio relative to them. They get the true kernel, and since they
assume a periodic image, the blurred image is first extended by the kernel size on every side by
edge replication (``np.pad(mode="edge")``), deconvolved channel by channel, then cropped back.

Blind methods written elsewhere register themselves the same way, e.g.::

    from unblur.bench.methods import register

    @register("my-blind", blind=True, params={"levels": 5}, description="...")
    def _run(blurred, levels=5):
        ...
        return restored, kernel

and are found by ``unblur bench`` when their module is listed in :data:`PLUGIN_MODULES` or in the
``UNBLUR_BENCH_PLUGINS`` environment variable (comma-separated module names).
"""
from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from unblur.errors import UserError

__all__ = ["ANCHORS", "METHODS", "PLUGIN_MODULES", "Method", "get_method", "load_plugins", "register"]


@dataclass
class Method:
    """A registered method.

    Attributes
    ----------
    name : str
        Unique name used on the command line (``--methods``) and in the results.
    blind : bool
        True when the method estimates the kernel itself (it then receives no kernel).
    fn : callable
        The function doing the work (see the module docstring for its signature).
    params : dict
        Keyword arguments passed to ``fn``; recorded in the results.
    anchor : bool
        True for peer implementations that other methods are compared with.
    description : str
        One line for ``unblur bench --list`` and the report.
    task : {"deblur", "denoise"}
        Denoisers run on the ``denoise`` suite only and receive ``(noisy, sigma)``, the true noise
        std, as in the published protocol.
    warmup : bool
        Call the method once on a tiny image before timing it in a process (so that lazy imports
        and one-off initialisations are not counted in its ``seconds``).
    """

    name: str
    blind: bool
    fn: Callable = field(repr=False)
    params: dict = field(default_factory=dict)
    anchor: bool = False
    description: str = ""
    warmup: bool = True
    task: str = "deblur"

    @property
    def kind(self) -> str:
        """``"blind"``, ``"non-blind"`` or ``"anchor"``."""
        return "anchor" if self.anchor else ("blind" if self.blind else "non-blind")

    def applies_to(self, case) -> bool:
        """Whether the method can run on ``case`` (non-blind methods need the true kernel)."""
        if self.task != case.task:
            return False
        return self.task == "denoise" or self.blind or case.has_kernel

    def run(self, blurred: torch.Tensor, kernel: torch.Tensor | None = None, sigma: float | None = None):
        """Call the method; returns ``(restored (1, C, H, W) tensor, estimated kernel or None)``."""
        from unblur._tensor import to_bchw

        with torch.no_grad():
            if self.task == "denoise":
                out = self.fn(blurred, sigma, **self.params)
            elif self.blind:
                out = self.fn(blurred, **self.params)
            else:
                if kernel is None:
                    raise UserError(f"method {self.name!r} needs the true kernel")
                out = self.fn(blurred, kernel, **self.params)
        est = None
        if isinstance(out, tuple):
            out, est = out
        restored, _ = to_bchw(out)
        if est is not None:
            est = est.detach().float().cpu() if isinstance(est, torch.Tensor) else torch.as_tensor(np.asarray(est), dtype=torch.float32)
        return restored.detach().to("cpu", torch.float32), est


#: name -> :class:`Method`, in registration order.
METHODS: dict[str, Method] = {}

#: Names of the anchor methods (peers from PyPI).
ANCHORS: tuple[str, ...] = ("skimage-wiener", "skimage-unsupervised-wiener", "skimage-rl", "bm3d")

#: Modules imported by :func:`load_plugins` to register more methods (e.g. blind estimators).
PLUGIN_MODULES: list[str] = []


def register(name: str, fn: Callable | None = None, *, blind: bool, params: dict | None = None, anchor: bool = False,
             description: str = "", warmup: bool = True, replace: bool = False, task: str = "deblur"):
    """Register a method (directly, or as a decorator when ``fn`` is omitted).

    Parameters
    ----------
    name : str
        Unique method name.
    fn : callable, optional
        ``fn(blurred, kernel, **params)`` (non-blind) or ``fn(blurred, **params)`` (blind).
    blind : bool
        Whether the method estimates the kernel itself.
    params : dict, optional
        Keyword arguments for ``fn``.
    anchor : bool
        Peer implementation used as a reference in the report.
    description : str
        One line describing it.
    warmup : bool
        Run it once on a tiny image before the timed calls (see :class:`Method`).
    replace : bool
        Allow replacing an existing registration (otherwise a duplicate name is an error).
    task : {"deblur", "denoise"}
        See :class:`Method`; denoisers are called ``fn(noisy, sigma, **params)``.

    Returns
    -------
    Method, or a decorator returning ``fn`` unchanged.
    """

    def add(f):
        if name in METHODS and not replace:
            raise ValueError(f"benchmark method {name!r} is already registered")
        m = Method(name, bool(blind), f, dict(params or {}), bool(anchor), description, bool(warmup), task)
        METHODS[name] = m
        return m

    if fn is None:
        def deco(f):
            add(f)
            return f

        return deco
    return add(fn)


def load_plugins() -> None:
    """Import the modules of :data:`PLUGIN_MODULES` and ``$UNBLUR_BENCH_PLUGINS`` (they register methods)."""
    names = list(PLUGIN_MODULES) + [m.strip() for m in os.environ.get("UNBLUR_BENCH_PLUGINS", "").split(",") if m.strip()]
    for mod in names:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise UserError(f"cannot import benchmark plugin module {mod!r}: {exc}") from None


def get_method(name: str) -> Method:
    """The registered method ``name`` (:class:`UserError` when unknown)."""
    load_plugins()
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]


# ------------------------------------------------------------------------------------------------
# unblur's non-blind solvers (the same call as `unblur deconv`)
# ------------------------------------------------------------------------------------------------
def _deconvolve(blurred, kernel, method: str, **params):
    from unblur.deconv import deconvolve

    return deconvolve(blurred, kernel, method=method, **params)


def _wiener_circular(blurred, kernel):
    from unblur.deconv.wiener import wiener
    from unblur.estimate import estimate_noise_level

    sigma = float(estimate_noise_level(blurred))
    return wiener(blurred, kernel.to(blurred), sigma, boundary="circular").clamp(0, 1)


def _register_unblur() -> None:
    from unblur.deconv import METHODS as SOLVERS

    for solver in SOLVERS:
        register(solver, functools.partial(_deconvolve, method=solver), blind=False,
                 description=f"unblur.deconv.deconvolve(method={solver!r}), true kernel, noise estimated")
    register("wiener-circular", _wiener_circular, blind=False,
             description="unblur Wiener assuming a periodic image (boundary='circular'): shows boundary ringing")
    for name in ("auto", "map", "polyblur"):
        register(f"deblur-{name}", functools.partial(_deblur, method=name), blind=True,
                 description=f"unblur.deblur(method={name!r}): blind, kernel estimated, final solver tv")
    register("deblur-high", functools.partial(_deblur, method="auto", quality="high"), blind=True,
             description="unblur.deblur(method='auto', quality='high'): four candidate kernels, final step the mean of tv and pnp")
    register("denoise", _denoise, blind=False, task="denoise",
             description="unblur.denoise with the shipped learned denoiser, given the true sigma")
    register("denoise-estimated", functools.partial(_denoise, estimate=True), blind=True, task="denoise",
             description="unblur.denoise with sigma estimated from the image")
    register("deblur-map-dark", functools.partial(_deblur, method="map", prior="dark"), blind=True,
             description="unblur.deblur(method='map', prior='dark'): MAP estimation with the dark channel term")


def _denoise(noisy, sigma, estimate: bool = False):
    from unblur.denoising import denoise

    return denoise(noisy, None if estimate else sigma)


def _deblur(blurred, method, **params):
    from unblur.blind import deblur

    res = deblur(blurred, method=method, **params)
    return res.image, res.kernel


# ------------------------------------------------------------------------------------------------
# anchors: scikit-image, given the true kernel
# ------------------------------------------------------------------------------------------------
def _per_channel_padded(blurred: torch.Tensor, kernel: torch.Tensor, solve) -> np.ndarray:
    """Edge-pad each channel by the kernel size, run ``solve(channel, psf)``, crop back."""
    y = blurred.detach().to("cpu", torch.float64).numpy()[0]
    k = kernel.detach().to("cpu", torch.float64).numpy()
    while k.ndim > 2:
        k = k[0]
    k = k / k.sum()
    ph, pw = k.shape
    out = np.empty_like(y)
    for c in range(y.shape[0]):
        padded = np.pad(y[c], ((ph, ph), (pw, pw)), mode="edge")
        out[c] = solve(padded, k)[ph:-ph, pw:-pw]
    return torch.from_numpy(np.clip(out, 0, 1)).float()[None]


def _skimage_wiener(blurred, kernel, balance: float = 0.01):
    from skimage.restoration import wiener

    return _per_channel_padded(blurred, kernel, lambda a, k: wiener(a, k, balance))


def _skimage_unsupervised_wiener(blurred, kernel, seed: int = 0):
    from skimage.restoration import unsupervised_wiener

    return _per_channel_padded(blurred, kernel, lambda a, k: unsupervised_wiener(a, k, rng=seed)[0])


def _skimage_rl(blurred, kernel, num_iter: int = 30):
    from skimage.restoration import richardson_lucy

    return _per_channel_padded(blurred, kernel, lambda a, k: richardson_lucy(a, k, num_iter=num_iter))


def _bm3d(noisy, sigma):
    try:
        import bm3d
    except ImportError as exc:
        raise RuntimeError("the bm3d anchor needs the bm3d package (pip install bm3d)") from exc
    z = noisy.detach().to("cpu", torch.float64).numpy()[0]
    if z.shape[0] == 3:
        out = bm3d.bm3d_rgb(np.moveaxis(z, 0, -1), sigma)
        out = np.moveaxis(out, -1, 0)
    else:
        out = np.stack([bm3d.bm3d(c, sigma) for c in z])
    return torch.from_numpy(np.clip(out, 0, 1)).float()[None]


def _register_anchors() -> None:
    register("skimage-wiener", _skimage_wiener, blind=False, anchor=True, params={"balance": 0.01},
             description="skimage.restoration.wiener, true kernel, edge padding")
    register("skimage-unsupervised-wiener", _skimage_unsupervised_wiener, blind=False, anchor=True, params={"seed": 0},
             description="skimage.restoration.unsupervised_wiener, true kernel, edge padding")
    register("skimage-rl", _skimage_rl, blind=False, anchor=True, params={"num_iter": 30},
             description="skimage.restoration.richardson_lucy (30 iterations), true kernel, edge padding")
    register("bm3d", _bm3d, blind=False, anchor=True, task="denoise",
             description="BM3D / CBM3D (bm3d package from PyPI), given the true sigma")


_register_unblur()
_register_anchors()
