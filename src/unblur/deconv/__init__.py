"""Non-blind deconvolution: recover a sharp image from a blurred one and its kernel.

Every solver models the blurred image as the ``valid`` blur of a larger unknown scene (what a
camera records), so no border condition is assumed and the result has the size of the input.

=====================  =====================================================================
method                 solver
=====================  =====================================================================
``tv``                 :func:`~unblur.deconv.splitting.total_variation` (default)
``hyperlaplacian``     :func:`~unblur.deconv.splitting.hyperlaplacian`
``wiener``             :func:`~unblur.deconv.wiener.wiener`
``rl``                 :func:`~unblur.deconv.richardson_lucy.richardson_lucy`
``rl-tv``              Richardson-Lucy with total variation
``pnp``                :func:`~unblur.deconv.splitting.plug_and_play` with the shipped learned
                       denoiser (:mod:`unblur.denoising`)
``pnp-tv``             plug-and-play with total-variation denoising (no learned model)
=====================  =====================================================================

The default is total variation: on camera-shake blur of training images (``cbsd432``, 0.5-2 %
noise) it measured 0.6-1 dB above the hyper-Laplacian solver at similar cost (see BENCHMARKS.md for
the test-set figures).

Every method runs where the blur acted: in linear light for sRGB-encoded photos blurred by a
camera, or on the stored values (``space``, :mod:`unblur.deconv.space`; ``"auto"`` by default
tests the image). With the true kernels of ``shake-synth`` (blurred in linear light) that raised
``tv`` from 24.66 to 26.39 dB.

Clipped highlights (night lights, reflections) break the linear model; ``saturation=`` leaves
them out of the data term (:func:`~unblur.deconv._domain.unsaturated`, for
:data:`WEIGHTED_METHODS`; ``weight=`` passes any per-pixel data weight to those solvers). It is
off by default and ``unblur deblur`` does not use it: with the true kernels of ``lai-synth``
(blurred without clipping, but white pages sit at 1.0 once the noise is clipped) it cost 0.49 dB
on average and 5 to 10 dB on ``text_04``, whose white page it left without data. With the
estimated kernels of the ``lai2016/real`` night photos (``topresso``, ``night6``, ``bridge``) it
reduced the dark halos around the lights only partly; dropping every pixel above 0.9-0.97 (no
plateau test) removed most of them, and cost ``text_04`` as much.
"""
from __future__ import annotations

import itertools
import math

import torch

from unblur._tensor import as_kernel, from_bchw, to_bchw
from unblur.color import linear_to_srgb, srgb_to_linear
from unblur.deconv._domain import unsaturated
from unblur.deconv.richardson_lucy import richardson_lucy
from unblur.deconv.space import blur_space, check_space, linear_noise
from unblur.deconv.splitting import default_lambda, hyperlaplacian, plug_and_play, total_variation
from unblur.deconv.wiener import wiener
from unblur.errors import UserError

__all__ = [
    "METHODS",
    "check_kernel",
    "check_saturation",
    "deconvolve",
    "default_lambda",
    "hyperlaplacian",
    "plug_and_play",
    "resolve_space",
    "richardson_lucy",
    "total_variation",
    "wiener",
]


def _pnp_tv(y, kernel, sigma, **params):
    return plug_and_play(y, kernel, sigma, denoiser="tv", **params)


def _rl_tv(y, kernel, sigma, tv=None, **params):
    return richardson_lucy(y, kernel, sigma, tv=0.2 * max(sigma, 2e-3) if tv is None else tv, **params)


#: name -> solver(y, kernel, sigma, **params) on (B, C, H, W) tensors.
METHODS = {
    "hyperlaplacian": hyperlaplacian,
    "tv": total_variation,
    "wiener": wiener,
    "rl": richardson_lucy,
    "rl-tv": _rl_tv,
    "pnp": plug_and_play,
    "pnp-tv": _pnp_tv,
}

#: Methods whose result on a channel does not depend on the other channels; they solve each
#: channel of each image on its own. The others couple them: the learned denoiser sees RGB at
#: once, Wiener's spectrum model and Richardson-Lucy's stopping rule use every channel.
CHANNELWISE_METHODS = frozenset({"tv", "hyperlaplacian", "pnp-tv"})
#: Methods that take a per-pixel data weight (``weight=``), and with it ``saturation``.
WEIGHTED_METHODS = frozenset({"tv", "hyperlaplacian", "pnp", "pnp-tv"})

#: Methods that ``space="auto"`` keeps on the stored values. Wiener is a linear filter: it spreads
#: the noise of bright regions into the shadows, where encoding back to sRGB amplifies it up to
#: 12.92 times. In linear light it lost 0.82 dB on ``shake-synth`` (true kernels, blurred in linear
#: light; 22.68 against 23.50 dB), where total variation gained 1.73 dB.
AUTO_STORED_METHODS = frozenset({"wiener"})

#: Channel-wise solvers tile a channel with more pixels than this, in tiles of at most
#: ``PLANE_TILE`` px a side. Solving one channel at a time, in pieces of at most 2.4 MP, keeps
#: every temporary of the solvers under glibc's 32 MB ``mmap`` threshold: larger blocks are
#: mapped and unmapped on every allocation, and the page faults dominated the run time (on this
#: project's 2-core CPU, total variation on a 1531x2031 RGB image took 22.2 s as one solve, 15.7 s
#: of it in the kernel; 24 MP took 182 s and now 44 s, in 1.4 GB). At 1 MP RGB one channel at a time
#: is also a third faster than the three together, with identical results.
PLANE_TILE = 1536
PLANE_PIXELS = PLANE_TILE * PLANE_TILE

#: The other methods tile images with more pixels than this, in tiles of 1024 px a side.
TILE_PIXELS = 2048 * 2048


def check_kernel(kernel: torch.Tensor, image_shape=None) -> torch.Tensor:
    """Validate a kernel (finite, non-negative, non-zero, smaller than the image); return it normalised."""
    if kernel.numel() == 0 or min(kernel.shape[-2:]) < 1:
        raise UserError("the kernel is empty")
    if not torch.isfinite(kernel).all():
        raise UserError("the kernel has non-finite values")
    if (kernel < -1e-6 * kernel.abs().max()).any():
        raise UserError("the kernel has negative values")
    total = kernel.sum(dim=(-2, -1), keepdim=True)
    if (total <= 0).any():
        raise UserError("the kernel sums to zero")
    if image_shape is not None and (kernel.shape[-2] > image_shape[0] or kernel.shape[-1] > image_shape[1]):
        raise UserError(f"the kernel ({kernel.shape[-1]}x{kernel.shape[-2]}) is larger than the image ({image_shape[1]}x{image_shape[0]})")
    return kernel.clamp_min(0) / total


def _tiles(n: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Start positions and common length of the fewest equal tiles, at most ``tile`` long, that
    cover ``n`` with neighbours overlapping by at least ``overlap``."""
    if n <= tile:
        return [0], n
    count = math.ceil((n - overlap) / (tile - overlap))
    length = min(tile, math.ceil((n + (count - 1) * overlap) / count))
    step = (n - length) / (count - 1)
    return [round(i * step) for i in range(count)], length


def _ramp(n: int, overlap: int, first: bool, last: bool, like: torch.Tensor) -> torch.Tensor:
    w = torch.ones(n, dtype=like.dtype, device=like.device)
    r = torch.linspace(0, 1, overlap + 2, dtype=like.dtype, device=like.device)[1:-1]
    if not first:
        w[:overlap] = r
    if not last:
        w[-overlap:] = torch.minimum(w[-overlap:], r.flip(0))
    return w


def deconvolve_tiled(y: torch.Tensor, fn, tile: int, overlap: int, aux: torch.Tensor | None = None) -> torch.Tensor:
    """Apply ``fn`` (same-size in, same-size out) on overlapping tiles of at most ``tile`` pixels a
    side, blended with linear ramps. With ``aux`` (an image of ``y``'s size, e.g. a data weight),
    ``fn`` also receives the same tile of it: ``fn(y_tile, aux_tile)``.

    Each tile is solved with the ``valid`` model, so tile borders are restored like image
    borders, and the ramps hide the small differences in the overlaps.
    """
    H, W = y.shape[-2:]
    out = torch.zeros_like(y)
    weight = torch.zeros(1, 1, H, W, dtype=y.dtype, device=y.device)
    (rows, h), (cols, w) = _tiles(H, tile, overlap), _tiles(W, tile, overlap)
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            window = (..., slice(top, top + h), slice(left, left + w))
            res = fn(y[window]) if aux is None else fn(y[window], aux[window])
            wy = _ramp(h, overlap, i == 0, i == len(rows) - 1, y)[:, None]
            wx = _ramp(w, overlap, j == 0, j == len(cols) - 1, y)[None, :]
            wgt = wy * wx
            out[..., top : top + h, left : left + w] += res * wgt
            weight[..., top : top + h, left : left + w] += wgt
    return out / weight


DEFAULT_METHOD = "tv"


def check_saturation(level: float) -> None:
    """Raise :class:`~unblur.errors.UserError` unless ``level`` is a clipping level in ``(0, 1]``."""
    if not 0 < float(level) <= 1:  # NaN fails too
        raise UserError(f"saturation level must be in (0, 1], got {level}")


def resolve_space(y: torch.Tensor, kernel: torch.Tensor, noise: float, method: str = DEFAULT_METHOD,
                  space: str = "auto", margin: float = 0.0) -> str:
    """The space, ``"linear"`` or ``"stored"``, in which :func:`deconvolve` solves for ``y``: ``space``
    itself unless it is ``"auto"``, then the stored values for :data:`AUTO_STORED_METHODS` and
    :func:`~unblur.deconv.space.blur_space`'s decision (with its ``margin``) otherwise."""
    check_space(space)
    if space != "auto":
        return space
    if method in AUTO_STORED_METHODS:
        return "stored"
    with torch.no_grad():
        return blur_space(y, kernel, noise, margin=margin)


def deconvolve(image, kernel, method: str = DEFAULT_METHOD, noise: float | None = None, *, space: str = "auto",
               saturation: float | None = None, tile: int | None = None, device=None, **params):
    """Deconvolve ``image`` (blurred by ``kernel``) with one of :data:`METHODS`.

    Parameters
    ----------
    image : ndarray or torch.Tensor
        Blurred image: numpy ``(H, W)`` / ``(H, W, C)`` or a tensor ``(B, C, H, W)``; integer
        arrays are scaled to ``[0, 1]``.
    kernel : ndarray or torch.Tensor
        Blur kernel (convolution convention, centre at ``(h // 2, w // 2)``); normalised here.
    method : str
        Solver name (see the module docstring).
    noise : float, optional
        Noise std in image units; estimated from the image when omitted
        (:func:`unblur.estimate.estimate_noise_level`). It sets the regularisation weight by
        :func:`default_lambda` unless ``lam`` is given.
    space : {"auto", "linear", "stored"}
        Where the blur acted (:mod:`unblur.deconv.space`): ``"linear"`` for sRGB-encoded photos
        blurred in linear light, as a camera does (the image is decoded, deconvolved and encoded
        again, and the solver is told the noise level in linear light); ``"stored"`` for blur of
        the values as they are (linear data such as microscopy, or blur added to sRGB files);
        ``"auto"`` decides by :func:`~unblur.deconv.space.blur_space`, on a central window, at the
        cost of two small total-variation solves (except for :data:`AUTO_STORED_METHODS`).
        ``lam`` and ``weight`` apply in that space.
    saturation : float, optional
        Treat 3 x 3 plateaus at or above this value (in any channel) as clipped highlights (for
        :data:`WEIGHTED_METHODS`): they and a 1-pixel ring around them are left out of the data
        term (:func:`~unblur.deconv._domain.unsaturated`). Default: no clipping assumed.
    tile : int, optional
        Tile side for large images (default: :data:`PLANE_TILE` px for channels above
        :data:`PLANE_PIXELS` for :data:`CHANNELWISE_METHODS`, else 1024 px above 4 MP).
    device : str or torch.device, optional
        Where to compute (default: the tensor's device, or CPU for numpy input).
    **params
        Passed to the solver (e.g. ``lam``, ``alpha``, ``iterations``).

    Returns
    -------
    Same type and layout as ``image``: the restored image, clipped to ``[0, 1]``.
    """
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    check_space(space)
    y, layout = to_bchw(image, device=device)
    k = check_kernel(as_kernel(kernel, device=y.device, dtype=y.dtype), y.shape[-2:])
    if noise is None:
        from unblur.estimate import estimate_noise_level

        noise = float(estimate_noise_level(y))
    if noise < 0 or not math.isfinite(noise):
        raise UserError(f"noise level must be a non-negative number, got {noise}")
    if space != "stored" and y.shape[0] > 1 and not (space == "auto" and method in AUTO_STORED_METHODS):
        # the space and the noise in it are decided per image
        x = torch.cat([deconvolve(y[b : b + 1], k if k.ndim == 2 else k[min(b, k.shape[0] - 1)][None], method, noise,
                                  space=space, saturation=saturation, tile=tile, **params) for b in range(y.shape[0])])
        return from_bchw(x, layout)
    linear = resolve_space(y, k, noise, method, space) == "linear"
    weight = None
    if saturation is not None:
        check_saturation(saturation)
        if method not in WEIGHTED_METHODS:
            raise UserError(f"saturation handling needs one of {', '.join(sorted(WEIGHTED_METHODS))}, not {method!r}")
        weight = unsaturated(y.amax(1, keepdim=True), float(saturation))
    if linear:
        slope = linear_noise(y, 1.0)  # mean slope of the decoding curve: noise in linear light per unit
        if method == "pnp":  # the denoiser also works on the stored values (two_domain_denoiser)
            params = {"srgb_slope": slope} | params
        y, noise = srgb_to_linear(y), noise * slope
    solver = METHODS[method]
    joint = method not in CHANNELWISE_METHODS
    if tile is None and y.shape[-2] * y.shape[-1] > (TILE_PIXELS if joint else PLANE_PIXELS):
        tile = 1024 if joint else PLANE_TILE
    overlap = max(2 * max(k.shape[-2:]), 32)
    if tile is not None and tile <= 2 * overlap:
        raise UserError(f"tile size {tile} is too small for a {k.shape[-1]}x{k.shape[-2]} kernel")

    def solve(part, kpart, wpart):
        def run(piece, wpiece=None):
            return solver(piece, kpart, noise, **params, **({} if wpiece is None else {"weight": wpiece}))

        return run(part, wpart) if tile is None else deconvolve_tiled(part, run, tile, overlap, aux=wpart)

    with torch.no_grad():
        if joint:
            x = solve(y, k, weight)
        else:
            x = torch.empty_like(y)
            for b, c in itertools.product(range(y.shape[0]), range(y.shape[1])):
                kpart = k if k.ndim == 2 else k[min(b, k.shape[0] - 1), min(c, k.shape[1] - 1)]
                wpart = None if weight is None else weight[b : b + 1]
                x[b : b + 1, c : c + 1] = solve(y[b : b + 1, c : c + 1], kpart, wpart)
    x = x.clamp(0, 1)
    return from_bchw(linear_to_srgb(x) if linear else x, layout)
