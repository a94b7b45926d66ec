r"""Blur kernel (point spread function) generators and kernel utilities.

Conventions
-----------
Kernels follow :mod:`unblur._tensor`: convolution convention, non-negative, summing to one, centre
at index ``(h // 2, w // 2)``. Every generator returns a ``torch.float32`` tensor of shape
``(h, w)`` with odd ``h`` and ``w``.

Geometry: a kernel pixel ``(row, col)`` sits at the continuous offset
:math:`(x, y) = (col - w // 2,\ h // 2 - row)` from the centre, i.e. :math:`x` points right and
:math:`y` points *up* as the kernel is displayed. Angles are in radians, counter-clockwise from the
:math:`x` axis (so ``angle=pi/2`` is a vertical blur). Motion trajectories are complex arrays
:math:`z = x + i y` in pixels, in the same frame.

Randomness: every random generator takes ``rng``, an ``int`` seed, ``None`` (fresh entropy) or a
:class:`numpy.random.Generator`, and is fully deterministic given an int seed.

Generators
----------
* :func:`gaussian_kernel` -- anisotropic Gaussian (optics, atmospheric turbulence, mild defocus).
* :func:`disk_kernel` -- antialiased uniform disk (geometric defocus).
* :func:`linear_motion_kernel` -- uniform linear motion.
* :func:`camera_shake_kernel` -- random camera-shake trajectories of Boracchi & Foi (2012),
  built from :func:`shake_trajectory` and :func:`rasterize_trajectory`.
* :func:`gp_shake_kernel` -- smooth random trajectories drawn from Gaussian processes.
* :class:`KernelSampler` -- draws kernels of one kind with random parameters and records them.

Utilities
---------
:func:`normalize_kernel`, :func:`center_kernel`, :func:`crop_kernel`, :func:`pad_kernel`,
:func:`flip_kernel`, :func:`resize_kernel`, :func:`kernel_support`, :func:`center_of_mass`.
They accept torch tensors ``(h, w)`` or ``(B, C, h, w)`` (results are torch tensors of the same
dtype and device) or numpy arrays ``(h, w)`` (results are numpy arrays).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from unblur.errors import UserError

__all__ = [
    "KERNEL_KINDS",
    "KernelSampler",
    "camera_shake_kernel",
    "center_kernel",
    "center_of_mass",
    "crop_kernel",
    "disk_kernel",
    "flip_kernel",
    "gaussian_kernel",
    "gp_shake_kernel",
    "gp_trajectory",
    "kernel_from_params",
    "kernel_spread",
    "kernel_support",
    "linear_motion_kernel",
    "normalize_kernel",
    "pad_kernel",
    "rasterize_trajectory",
    "resize_kernel",
    "shake_trajectory",
]

KERNEL_KINDS = ("camera-shake", "gp-shake", "gaussian", "defocus", "linear")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _rng(rng=None) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from an int seed, ``None`` or a generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        if rng is not None and int(rng) < 0:
            raise UserError(f"a seed must be non-negative, got {rng}")
        return np.random.default_rng(None if rng is None else int(rng))
    raise UserError(f"rng must be an int seed, None or a numpy Generator, got {type(rng).__name__}")


def _odd_size(size, name: str = "size") -> int:
    s = int(size)
    if s != size or s < 1 or s % 2 == 0:
        raise UserError(f"{name} must be a positive odd integer, got {size!r}")
    return s


def _splat(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear splatting (adjoint of bilinear interpolation) of weighted points onto a grid.

    Each point spreads its weight on its four neighbouring pixels; this preserves the total weight
    of the points falling inside the grid and their centre of mass exactly. Points (or parts of
    their footprint) outside the grid are dropped.
    """
    h, w = shape
    r0 = np.floor(rows)
    c0 = np.floor(cols)
    fr = rows - r0
    fc = cols - c0
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    out = np.zeros(h * w, dtype=np.float64)
    for dr, wr in ((0, 1.0 - fr), (1, fr)):
        for dc, wc in ((0, 1.0 - fc), (1, fc)):
            rr = r0 + dr
            cc = c0 + dc
            ww = weights * wr * wc
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w) & (ww > 0)
            out += np.bincount(rr[ok] * w + cc[ok], weights=ww[ok], minlength=h * w)
    return out.reshape(h, w)


def _finish(k: np.ndarray) -> torch.Tensor:
    """Clip, normalise and convert a generated float64 kernel to a float32 tensor."""
    k = np.clip(k, 0.0, None)
    s = k.sum()
    if not np.isfinite(s) or s <= 0:
        raise UserError("the generated kernel is empty (all its mass fell outside the window)")
    t = torch.from_numpy(k / s).to(torch.float32)
    return t / t.sum()


def _delta(size: int) -> torch.Tensor:
    k = torch.zeros(size, size, dtype=torch.float32)
    k[size // 2, size // 2] = 1.0
    return k


def _ceil(x: float) -> int:
    """Ceiling robust to floating-point noise just above an integer."""
    return math.ceil(x - 1e-9)


# --------------------------------------------------------------------------------------------
# parametric kernels
# --------------------------------------------------------------------------------------------
def gaussian_kernel(sigma1: float, sigma2: float | None = None, angle: float = 0.0, size: int | None = None) -> torch.Tensor:
    r"""Anisotropic Gaussian kernel.

    .. math::
        k(x, y) \propto \exp\Bigl(-\frac{u^2}{2\sigma_1^2} - \frac{v^2}{2\sigma_2^2}\Bigr),\quad
        u = x\cos\theta + y\sin\theta,\quad v = -x\sin\theta + y\cos\theta,

    sampled at the pixel centres and normalised, so that the covariance of the kernel is
    :math:`\Sigma = R_\theta\,\mathrm{diag}(\sigma_1^2, \sigma_2^2)\,R_\theta^\top` (up to the
    truncation at the window border, below 1 % with the default size). This is the usual model of
    lens/atmospheric blur and of the residual blur of a well-focused camera.

    Parameters
    ----------
    sigma1 : float
        Standard deviation (pixels) along the direction ``angle``.
    sigma2 : float, optional
        Standard deviation across it (default: ``sigma1``, isotropic).
    angle : float
        Direction of the ``sigma1`` axis, radians counter-clockwise from the horizontal.
    size : int, optional
        Odd side of the square window; default ``2 * ceil(3.5 * max(sigma1, sigma2)) + 1``.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32 kernel.

    Notes
    -----
    Standard deviations below 0.2 px are raised to 0.2 px (the kernel is then a delta to float32
    precision); the pixel-centre sampling matches the continuous Gaussian well from ~0.5 px on.
    """
    if sigma2 is None:
        sigma2 = sigma1
    if not (sigma1 >= 0 and sigma2 >= 0) or not (math.isfinite(sigma1) and math.isfinite(sigma2)):
        raise UserError(f"Gaussian standard deviations must be finite and >= 0, got {sigma1}, {sigma2}")
    s1, s2 = max(float(sigma1), 0.2), max(float(sigma2), 0.2)
    if size is None:
        size = 2 * _ceil(3.5 * max(s1, s2)) + 1
    size = _odd_size(size)
    c = size // 2
    ax = np.arange(size, dtype=np.float64) - c
    x = ax[None, :]
    y = -ax[:, None]
    ca, sa = math.cos(angle), math.sin(angle)
    u = x * ca + y * sa
    v = -x * sa + y * ca
    k = np.exp(-0.5 * (u / s1) ** 2 - 0.5 * (v / s2) ** 2)
    return _finish(k)


def disk_kernel(radius: float, size: int | None = None, supersample: int = 8) -> torch.Tensor:
    r"""Antialiased uniform disk: the geometric-optics model of defocus.

    .. math:: k(x, y) \propto \int_{\text{pixel}(x, y)} \mathbf 1\{\xi^2 + \eta^2 \le r^2\}\,d\xi\,d\eta

    Each pixel's coverage by the disk of radius :math:`r` is estimated on a
    ``supersample x supersample`` grid of sub-pixel points, so the kernel has area
    :math:`\approx \pi r^2` pixels and per-axis second moment :math:`\approx r^2 / 4`.

    Parameters
    ----------
    radius : float
        Disk radius in pixels (0: a delta).
    size : int, optional
        Odd side of the window; default ``2 * ceil(radius) + 1`` (the smallest that holds the disk).
    supersample : int
        Sub-pixel samples per axis.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32 kernel.
    """
    radius = float(radius)
    if not (radius >= 0 and math.isfinite(radius)):
        raise UserError(f"disk radius must be finite and >= 0, got {radius}")
    if size is None:
        size = 2 * _ceil(radius) + 1
    size = _odd_size(size)
    if radius < 1e-6:
        return _delta(size)
    s = max(int(supersample), 1)
    c = size // 2
    sub = (np.arange(s) + 0.5) / s - 0.5
    fine = (np.arange(size)[:, None] - c + sub[None, :]).ravel()  # sub-pixel coordinates
    inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2
    k = inside.reshape(size, s, size, s).mean(axis=(1, 3))
    if k.sum() == 0:  # radius far below a pixel: the disk lies inside the centre pixel
        return _delta(size)
    return _finish(k)


def linear_motion_kernel(length: float, angle: float = 0.0, size: int | None = None, supersample: int = 8) -> torch.Tensor:
    r"""Uniform linear motion blur: a line segment of length :math:`L` through the centre.

    .. math:: k = \frac{1}{L}\int_{-L/2}^{L/2} \delta\bigl(p - t\,(\cos\theta, \sin\theta)\bigr)\,dt

    rasterised sub-pixel: ``ceil(L * supersample)`` equally spaced points (mid-points of equal
    sub-segments) are bilinearly splatted. The second moment along the motion direction is
    :math:`L^2/12` (plus at most 1/4 px² from the bilinear footprint), across it nearly zero.

    Parameters
    ----------
    length : float
        Length of the motion in pixels (0: a delta).
    angle : float
        Direction, radians counter-clockwise from the horizontal.
    size : int, optional
        Odd side of the window; default the smallest that holds the segment. Parts of the segment
        outside a smaller window are dropped.
    supersample : int
        Points per pixel of length.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32 kernel.
    """
    length = float(length)
    if not (length >= 0 and math.isfinite(length)):
        raise UserError(f"motion length must be finite and >= 0, got {length}")
    dx, dy = math.cos(angle), math.sin(angle)
    if size is None:
        r = max(_ceil(abs(dx) * length / 2), _ceil(abs(dy) * length / 2), 0)
        size = 2 * r + 1
    size = _odd_size(size)
    if length < 1e-6:
        return _delta(size)
    n = max(_ceil(length * max(int(supersample), 1)), 1)
    t = (np.arange(n) + 0.5) / n * length - length / 2
    c = size // 2
    k = _splat(c - t * dy, c + t * dx, np.ones(n), (size, size))
    return _finish(k)


# --------------------------------------------------------------------------------------------
# random trajectories
# --------------------------------------------------------------------------------------------
def shake_trajectory(
    num_samples: int = 2000,
    max_length: float = 60.0,
    anxiety: float = 0.005,
    rng=None,
    *,
    centripetal: float | None = None,
    gaussian_term: float | None = None,
    freq_big_shakes: float | None = None,
) -> np.ndarray:
    r"""Random camera-shake trajectory of Boracchi & Foi (2012).

    A particle moves in the plane at constant speed
    :math:`\Delta = L_{\max}/(N-1)` per step; its velocity :math:`v_t` (complex) starts in a
    uniformly random direction and evolves as

    .. math::
        v_{t+1} \propto v_t + a\,\Delta\,\bigl(g\,(n_t + i\,n'_t) - c\,z_t\bigr) + b_t\,2 v_t\,
        e^{i(\pi + \phi_t)},\qquad z_{t+1} = z_t + \Delta\,\frac{v_{t+1}}{|v_{t+1}|},

    with :math:`n_t, n'_t \sim \mathcal N(0, 1)` (random perturbation, weight :math:`g`), a
    deterministic centripetal/inertial term pulling the particle back toward its origin
    (weight :math:`c`), and with probability :math:`p\,a` per step an impulsive shake
    :math:`b_t = 1` that (nearly) reverses the direction, :math:`\phi_t \sim U(-1/2, 1/2)`.
    :math:`a` is the *anxiety* (overall amount of shake). Because the speed is fixed, the total
    path length is exactly ``max_length``.

    Parameters
    ----------
    num_samples : int
        Number :math:`N` of positions (time samples, evenly spaced over the exposure).
    max_length : float
        Total path length :math:`L_{\max}` in pixels.
    anxiety : float
        Amount of shake :math:`a` (Boracchi & Foi draw it in [0, 0.1]; 0.005 gives gently curved
        paths, 0.05 jittery ones).
    rng : int, None or numpy.random.Generator
        Randomness.
    centripetal, gaussian_term, freq_big_shakes : float, optional
        :math:`c`, :math:`g`, :math:`p`; drawn uniformly in [0, 0.7], [0, 10] and [0, 0.2]
        (the ranges of the original model) when not given. They are always drawn, so fixing one
        does not change the rest of the random stream.

    Returns
    -------
    numpy.ndarray
        Complex128 array of ``num_samples`` positions :math:`z = x + i y` (pixels), starting at 0.

    References
    ----------
    G. Boracchi and A. Foi, "Modeling the performance of image restoration from motion blur",
    IEEE Transactions on Image Processing 21(8):3502-3517, 2012.
    """
    n = int(num_samples)
    if n < 2:
        raise UserError(f"a trajectory needs at least 2 samples, got {num_samples}")
    if not (max_length > 0 and math.isfinite(max_length)):
        raise UserError(f"max_length must be positive, got {max_length}")
    if not anxiety >= 0:
        raise UserError(f"anxiety must be >= 0, got {anxiety}")
    g = _rng(rng)
    c_draw, g_draw, p_draw = g.uniform(0.0, 0.7), g.uniform(0.0, 10.0), g.uniform(0.0, 0.2)
    c = c_draw if centripetal is None else float(centripetal)
    gt = g_draw if gaussian_term is None else float(gaussian_term)
    p = p_draw if freq_big_shakes is None else float(freq_big_shakes)
    theta0 = g.uniform(0.0, 2.0 * math.pi)
    noise = g.standard_normal((n - 1, 2))
    shake_u = g.random(n - 1)
    shake_phi = g.random(n - 1) - 0.5

    step = float(max_length) / (n - 1)
    a = float(anxiety)
    z = np.zeros(n, dtype=np.complex128)
    v = complex(math.cos(theta0), math.sin(theta0)) * step
    pos = 0j
    p_shake = p * a
    for t in range(n - 1):
        dv = a * step * (gt * complex(noise[t, 0], noise[t, 1]) - c * pos)
        if shake_u[t] < p_shake:
            dv += 2.0 * v * complex(math.cos(math.pi + shake_phi[t]), math.sin(math.pi + shake_phi[t]))
        nv = v + dv
        mag = abs(nv)
        if mag > 0:
            v = nv * (step / mag)
        pos = pos + v
        z[t + 1] = pos
    return z


def _subdivide(z: np.ndarray, w: np.ndarray, max_step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Linearly interpolate a polyline so consecutive points are at most ``max_step`` apart."""
    if z.size < 2:
        return z, w
    biggest = float(np.abs(np.diff(z)).max())
    if biggest <= max_step:
        return z, w
    m = _ceil(biggest / max_step)
    t = np.arange((z.size - 1) * m + 1) / m
    idx = np.arange(z.size)
    zi = np.interp(t, idx, z.real) + 1j * np.interp(t, idx, z.imag)
    wi = np.interp(t, idx, w)
    return zi, wi


def rasterize_trajectory(traj, size: int, weights=None, fit: bool = True) -> torch.Tensor:
    r"""Rasterise a trajectory into a kernel by sub-pixel (bilinear) splatting.

    Each position is a time sample; the kernel is the normalised time spent around each pixel,

    .. math:: k = \frac{1}{\sum_t w_t}\sum_t w_t\,\mathrm{splat}(z_t - \bar z),\qquad
              \bar z = \frac{\sum_t w_t z_t}{\sum_t w_t},

    i.e. the trajectory is placed with its centre of mass :math:`\bar z` on the kernel centre,
    so the kernel's centre of mass is exactly ``(size // 2, size // 2)``. The polyline is first
    resampled so that consecutive points are at most 1/4 px apart.

    Parameters
    ----------
    traj : array_like of complex
        Positions :math:`z = x + i y` in pixels (``y`` up).
    size : int
        Odd side of the square kernel.
    weights : array_like, optional
        Non-negative weight (dwell time) of each sample; default uniform.
    fit : bool
        If the trajectory does not fit in the window, shrink it uniformly about its centre of mass
        so it does (default); otherwise drop what falls outside.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32 kernel.
    """
    size = _odd_size(size)
    z = np.asarray(traj, dtype=np.complex128).ravel()
    if z.size == 0:
        raise UserError("empty trajectory")
    w = np.ones(z.size) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != z.shape or np.any(w < 0) or w.sum() <= 0:
        raise UserError("trajectory weights must be non-negative, one per sample, not all zero")
    last = int(np.nonzero(w > 0)[0][-1]) + 1  # trailing zero-weight samples are never seen
    z, w = _subdivide(z[:last], w[:last])
    zc = z - (w * z).sum() / w.sum()
    r = size // 2
    extent = max(np.abs(zc.real).max(), np.abs(zc.imag).max())
    if fit and extent > r:
        zc = zc * (r / extent)
    c = size // 2
    k = _splat(c - zc.imag, c + zc.real, w, (size, size))
    return center_kernel(_finish(k))


def camera_shake_kernel(
    size: int = 31,
    exposure: float = 1.0,
    anxiety: float = 0.005,
    num_samples: int = 2000,
    max_length: float = 60.0,
    rng=None,
    *,
    centripetal: float | None = None,
    gaussian_term: float | None = None,
    freq_big_shakes: float | None = None,
) -> torch.Tensor:
    r"""Camera-shake kernel of Boracchi & Foi (2012) for an exposure fraction :math:`T`.

    A trajectory :math:`z_0, \dots, z_{N-1}` of total length ``max_length`` is drawn with
    :func:`shake_trajectory` (see there for the dynamics). The shutter is open during the first
    fraction :math:`T` of it: sample :math:`t` gets the weight
    :math:`w_t = \min(1, \max(0, TN - t))`, and

    .. math:: k_T = \frac{1}{\sum_t w_t} \sum_t w_t\,\mathrm{splat}(z_t - \bar z_T),

    rasterised with :func:`rasterize_trajectory` (bilinear splatting, centred on its centre of
    mass). Kernels of the same seed and different :math:`T` are nested: the shorter exposure sees a
    prefix of the same motion.

    Boracchi & Foi keep :math:`\sum k_T = T` to model the light lost with a short exposure; here the
    kernel sums to one and that trade-off belongs to the camera model
    (:class:`unblur.blur.synth.Degradation`: fewer photons, more relative noise).

    Parameters
    ----------
    size : int
        Odd side of the kernel. A trajectory that does not fit once centred is shrunk uniformly
        (from the full trajectory, so kernels of different ``exposure`` stay nested); use a size
        above ``max_length`` to never shrink.
    exposure : float
        Exposure fraction :math:`T \in (0, 1]`.
    anxiety, num_samples, max_length, rng, centripetal, gaussian_term, freq_big_shakes
        Passed to :func:`shake_trajectory`.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32 kernel.

    References
    ----------
    G. Boracchi and A. Foi, "Modeling the performance of image restoration from motion blur",
    IEEE Transactions on Image Processing 21(8):3502-3517, 2012.
    """
    size = _odd_size(size)
    if not (0 < exposure <= 1):
        raise UserError(f"exposure must be in (0, 1], got {exposure}")
    z = shake_trajectory(
        num_samples, max_length, anxiety, rng,
        centripetal=centripetal, gaussian_term=gaussian_term, freq_big_shakes=freq_big_shakes,
    )
    zc = z - z.mean()
    extent = max(np.abs(zc.real).max(), np.abs(zc.imag).max())
    r = size // 2
    if extent > r:
        z = z * (r / extent)
    n = z.size
    w = np.clip(exposure * n - np.arange(n), 0.0, 1.0)
    return rasterize_trajectory(z, size, weights=w, fit=True)


@lru_cache(maxsize=64)
def _gp_factor(num_samples: int, length_scale: float) -> np.ndarray:
    """Matrix ``F`` (``num_samples x r``) with ``F F^T`` = the squared-exponential covariance.

    Nystrom factorisation on inducing times spaced ``length_scale / 4`` apart: the process is so
    smooth that this is exact to ~1e-7 while only an ``m x m`` (``m <= 4 / length_scale + 1``)
    eigendecomposition is needed; eigenvalues below 1e-12 of the largest are dropped (the
    covariance is numerically singular).
    """
    t = np.linspace(0.0, 1.0, num_samples)
    m = min(num_samples, max(_ceil(4.0 / length_scale) + 1, 8))
    u = np.linspace(0.0, 1.0, m)
    kmm = np.exp(-0.5 * ((u[:, None] - u[None, :]) / length_scale) ** 2)
    knm = np.exp(-0.5 * ((t[:, None] - u[None, :]) / length_scale) ** 2)
    vals, vecs = np.linalg.eigh(kmm)
    keep = vals > 1e-12 * vals.max()
    factor = knm @ (vecs[:, keep] / np.sqrt(vals[keep])[None, :])
    factor.setflags(write=False)
    return factor


def gp_trajectory(num_samples: int = 256, length_scale: float = 0.3, rng=None) -> np.ndarray:
    r"""Smooth random trajectory with Gaussian-process coordinates.

    :math:`x(t)` and :math:`y(t)`, :math:`t \in [0, 1]`, are independent zero-mean Gaussian
    processes with unit variance and squared-exponential covariance

    .. math:: \mathrm{cov}(x(t), x(t')) = \exp\bigl(-(t - t')^2 / (2\ell^2)\bigr),

    sampled at ``num_samples`` evenly spaced times (through a Nystrom factorisation of the
    covariance, accurate to ~1e-7 and robust to its ill-conditioning). A small :math:`\ell` gives wiggly paths, a large one
    nearly straight or gently curved ones. See Rasmussen & Williams, *Gaussian Processes for
    Machine Learning*, MIT Press 2006, ch. 2 and 4.

    Returns
    -------
    numpy.ndarray
        Complex128 array :math:`z = x + i y` of length ``num_samples``.
    """
    n = int(num_samples)
    if n < 2:
        raise UserError(f"a trajectory needs at least 2 samples, got {num_samples}")
    if not length_scale > 0:
        raise UserError(f"length_scale must be positive, got {length_scale}")
    factor = _gp_factor(n, float(length_scale))
    g = _rng(rng)
    e = g.standard_normal((factor.shape[1], 2))
    xy = factor @ e
    return xy[:, 0] + 1j * xy[:, 1]


def gp_shake_kernel(
    size: int = 31,
    length_scale: float = 0.3,
    amplitude: float | None = None,
    num_samples: int = 256,
    rng=None,
) -> torch.Tensor:
    r"""Camera-shake kernel from a Gaussian-process trajectory.

    The trajectory :math:`z(t)` of :func:`gp_trajectory` is centred on its centre of mass
    :math:`\bar z` and scaled so that its largest excursion
    :math:`\max_t \max(|\mathrm{Re}(z - \bar z)|, |\mathrm{Im}(z - \bar z)|)` equals ``amplitude``
    pixels, then rasterised with :func:`rasterize_trajectory` (constant dwell time per sample: the
    camera moves at varying speed and its slow parts are brighter, as in real shake).

    Parameters
    ----------
    size : int
        Odd side of the kernel.
    length_scale : float
        Correlation time :math:`\ell` of the Gaussian processes (the exposure lasts 1).
    amplitude : float, optional
        Largest excursion from the centre in pixels, at most ``size // 2`` (the default: the
        trajectory fills the window).
    num_samples : int
        Number of time samples before the sub-pixel resampling.
    rng : int, None or numpy.random.Generator
        Randomness.

    Returns
    -------
    torch.Tensor
        ``(size, size)`` float32 kernel.
    """
    size = _odd_size(size)
    r = size // 2
    if amplitude is None:
        amplitude = r
    if not 0 <= amplitude <= r + 1e-9:
        raise UserError(f"amplitude must be in [0, size // 2 = {r}], got {amplitude}")
    z = gp_trajectory(num_samples, length_scale, rng)
    zc = z - z.mean()
    extent = max(np.abs(zc.real).max(), np.abs(zc.imag).max())
    z = zc * (min(float(amplitude), r) / extent) if extent > 0 else zc
    return rasterize_trajectory(z, size, fit=True)


# --------------------------------------------------------------------------------------------
# sampler
# --------------------------------------------------------------------------------------------
def _parse_size_range(size_range) -> tuple[int, int]:
    if isinstance(size_range, (int, np.integer)):
        size_range = (size_range, size_range)
    try:
        lo, hi = (int(v) for v in size_range)
    except (TypeError, ValueError):
        raise UserError(f"size_range must be a pair of ints, got {size_range!r}") from None
    lo = lo if lo % 2 else lo + 1
    hi = hi if hi % 2 else hi - 1
    if lo < 1 or hi < lo:
        raise UserError(f"size_range {size_range!r} contains no odd size >= 1")
    return lo, hi


# parameter names each kind accepts (besides ``size``), used to validate overrides
_KIND_PARAMS = {
    "camera-shake": ("exposure", "anxiety", "max_length", "num_samples", "centripetal",
                     "gaussian_term", "freq_big_shakes", "kernel_seed"),
    "gp-shake": ("length_scale", "amplitude", "num_samples", "kernel_seed"),
    "gaussian": ("sigma1", "sigma2", "angle"),
    "defocus": ("radius",),
    "linear": ("length", "angle"),
}


def kernel_from_params(params: dict, kind: str | None = None) -> torch.Tensor:
    """Rebuild a kernel from a parameter record of :class:`KernelSampler`.

    Parameters
    ----------
    params : dict
        The record (``size`` and the kind's parameters; a ``kind`` entry is used when ``kind`` is
        not given; unrelated entries such as manifest fields are ignored).
    kind : str, optional
        One of :data:`KERNEL_KINDS`.

    Returns
    -------
    torch.Tensor
        The same kernel, bit for bit, as the sampler produced.
    """
    kind = kind if kind is not None else params.get("kind")
    if kind not in _KIND_PARAMS:
        raise UserError(f"unknown kernel kind {kind!r}; expected one of {', '.join(KERNEL_KINDS)}")
    p = params
    size = int(p["size"])
    if kind == "camera-shake":
        return camera_shake_kernel(
            size, exposure=p["exposure"], anxiety=p["anxiety"], num_samples=int(p["num_samples"]),
            max_length=p["max_length"], rng=int(p["kernel_seed"]), centripetal=p["centripetal"],
            gaussian_term=p["gaussian_term"], freq_big_shakes=p["freq_big_shakes"],
        )
    if kind == "gp-shake":
        return gp_shake_kernel(size, length_scale=p["length_scale"], amplitude=p.get("amplitude"),
                               num_samples=int(p["num_samples"]), rng=int(p["kernel_seed"]))
    if kind == "gaussian":
        return gaussian_kernel(p["sigma1"], p["sigma2"], p["angle"], size=size)
    if kind == "defocus":
        return disk_kernel(p["radius"], size=size)
    return linear_motion_kernel(p["length"], p["angle"], size=size)


class KernelSampler:
    r"""Draws random kernels of one kind, recording every parameter (like deepinv's generators).

    Each draw picks an odd ``size`` uniformly in ``size_range``, then the kind's parameters.
    Default ranges, chosen to cover the blur of hand-held photos at a given kernel size
    (``r = size // 2``):

    ``"camera-shake"`` (Boracchi & Foi 2012, :func:`camera_shake_kernel`)
        ``max_length`` ~ U(0.6, 1.6)·size px, ``anxiety`` log-uniform in [0.0005, 0.01],
        ``exposure`` ~ U(0.5, 1), ``centripetal`` ~ U(0, 0.7), ``gaussian_term`` ~ U(0, 10),
        ``freq_big_shakes`` ~ U(0, 0.2), ``num_samples`` = 2000, and a ``kernel_seed`` for the
        trajectory.
    ``"gp-shake"`` (:func:`gp_shake_kernel`)
        ``length_scale`` log-uniform in [0.1, 0.6], ``amplitude`` ~ U(0.4, 1)·r px,
        ``num_samples`` = 256, ``kernel_seed``.
    ``"gaussian"`` (:func:`gaussian_kernel`)
        ``sigma1``, ``sigma2`` ~ U(0.5, max(0.5, r/3)) px, ``angle`` ~ U(0, π).
    ``"defocus"`` (:func:`disk_kernel`)
        ``radius`` ~ U(1, max(1, r)) px.
    ``"linear"`` (:func:`linear_motion_kernel`)
        ``length`` ~ U(1, max(1, 2r)) px, ``angle`` ~ U(0, π).

    Parameters
    ----------
    kind : str
        One of :data:`KERNEL_KINDS`.
    size_range : (int, int) or int
        Inclusive range of kernel sizes (only odd sizes are drawn).
    rng : int, None or numpy.random.Generator
        Randomness of the sampler.
    **params
        Override a parameter: a number fixes it, a ``(low, high)`` pair draws it uniformly in that
        range, ``None`` keeps the default distribution.

    Examples
    --------
    >>> sampler = KernelSampler("camera-shake", size_range=(15, 31), rng=0)
    >>> k, params = sampler.sample()
    >>> bool(torch.equal(k, kernel_from_params(params, "camera-shake")))
    True

    Notes
    -----
    The parameter record does not contain the kind (it is ``sampler.kind``) so that it can be
    merged into a manifest row; it is JSON-serialisable (plain ``int``/``float``), and
    :func:`kernel_from_params` rebuilds the kernel from it exactly.
    """

    def __init__(self, kind: str, size_range=(11, 41), rng=None, **params):
        if kind not in _KIND_PARAMS:
            raise UserError(f"unknown kernel kind {kind!r}; expected one of {', '.join(KERNEL_KINDS)}")
        self.kind = kind
        self.size_range = _parse_size_range(size_range)
        self.rng = _rng(rng)
        unknown = sorted(set(params) - set(_KIND_PARAMS[kind]))
        if unknown:
            raise UserError(f"{kind} kernels take no parameter {', '.join(unknown)}; "
                            f"they take {', '.join(_KIND_PARAMS[kind])}")
        self.overrides = {k: v for k, v in params.items() if v is not None}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.overrides.items())
        return f"KernelSampler({self.kind!r}, size_range={self.size_range}{extra})"

    def _draw(self, g: np.random.Generator, name: str, default):
        """Draw ``name`` with ``default()`` unless overridden; the default is always drawn so the
        random stream does not depend on the overrides."""
        value = default()
        if name in self.overrides:
            o = self.overrides[name]
            if isinstance(o, (tuple, list)):
                lo, hi = (float(v) for v in o)
                value = g.uniform(lo, hi)
            else:
                value = o
        return value

    def sample_params(self, rng=None) -> dict:
        """Draw a parameter record (without building the kernel)."""
        g = self.rng if rng is None else _rng(rng)
        lo, hi = self.size_range
        size = int(lo + 2 * g.integers(0, (hi - lo) // 2 + 1))
        r = size // 2
        d = self._draw
        p: dict = {"size": size}
        if self.kind == "camera-shake":
            p["max_length"] = float(d(g, "max_length", lambda: g.uniform(0.6, 1.6) * size))
            p["anxiety"] = float(d(g, "anxiety", lambda: math.exp(g.uniform(math.log(5e-4), math.log(1e-2)))))
            p["exposure"] = float(d(g, "exposure", lambda: g.uniform(0.5, 1.0)))
            p["centripetal"] = float(d(g, "centripetal", lambda: g.uniform(0.0, 0.7)))
            p["gaussian_term"] = float(d(g, "gaussian_term", lambda: g.uniform(0.0, 10.0)))
            p["freq_big_shakes"] = float(d(g, "freq_big_shakes", lambda: g.uniform(0.0, 0.2)))
            p["num_samples"] = int(d(g, "num_samples", lambda: 2000))
            p["kernel_seed"] = int(d(g, "kernel_seed", lambda: int(g.integers(0, 2**32))))
        elif self.kind == "gp-shake":
            p["length_scale"] = float(d(g, "length_scale", lambda: math.exp(g.uniform(math.log(0.1), math.log(0.6)))))
            p["amplitude"] = float(d(g, "amplitude", lambda: g.uniform(0.4, 1.0) * r))
            p["num_samples"] = int(d(g, "num_samples", lambda: 256))
            p["kernel_seed"] = int(d(g, "kernel_seed", lambda: int(g.integers(0, 2**32))))
        elif self.kind == "gaussian":
            smax = max(0.5, r / 3.0)
            p["sigma1"] = float(d(g, "sigma1", lambda: g.uniform(0.5, smax)))
            p["sigma2"] = float(d(g, "sigma2", lambda: g.uniform(0.5, smax)))
            p["angle"] = float(d(g, "angle", lambda: g.uniform(0.0, math.pi)))
        elif self.kind == "defocus":
            p["radius"] = float(d(g, "radius", lambda: g.uniform(1.0, max(1.0, float(r)))))
        else:  # linear
            p["length"] = float(d(g, "length", lambda: g.uniform(1.0, max(1.0, 2.0 * r))))
            p["angle"] = float(d(g, "angle", lambda: g.uniform(0.0, math.pi)))
        return p

    def sample(self, rng=None) -> tuple[torch.Tensor, dict]:
        """Draw one kernel.

        Parameters
        ----------
        rng : int, None or numpy.random.Generator, optional
            Use this randomness for this draw instead of the sampler's own stream.

        Returns
        -------
        (torch.Tensor, dict)
            The ``(size, size)`` float32 kernel and its parameter record.
        """
        params = self.sample_params(rng)
        return kernel_from_params(params, self.kind), params

    def __iter__(self):
        """Endless stream of ``(kernel, params)``; use :func:`itertools.islice` to take some."""
        while True:
            yield self.sample()

    def take(self, n: int) -> list[tuple[torch.Tensor, dict]]:
        """The next ``n`` draws as a list."""
        return [self.sample() for _ in range(int(n))]


# --------------------------------------------------------------------------------------------
# utilities
# --------------------------------------------------------------------------------------------
def _to_work(k):
    """Kernel as a float tensor plus what is needed to give the result back in the caller's type."""
    if isinstance(k, torch.Tensor):
        if k.ndim not in (2, 4):
            raise UserError(f"a kernel has shape (h, w) or (B, C, h, w), got {tuple(k.shape)}")
        t = k if k.is_floating_point() else k.to(torch.float32)
        return t, None
    a = np.asarray(k)
    if a.ndim != 2:
        raise UserError(f"a numpy kernel has shape (h, w), got {a.shape}")
    if a.dtype.kind not in "fiub":
        raise UserError(f"unsupported kernel dtype {a.dtype}")
    dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
    return torch.from_numpy(np.array(a, dtype=np.float64)), dtype


def _from_work(t: torch.Tensor, np_dtype):
    if np_dtype is None:
        return t
    return t.detach().cpu().numpy().astype(np_dtype, copy=False)


def _sums(t: torch.Tensor) -> torch.Tensor:
    return t.sum(dim=(-2, -1), keepdim=True)


def normalize_kernel(k):
    """Clip negative values to zero and divide by the sum (per kernel for batches).

    Raises :class:`~unblur.errors.UserError` for a kernel with no positive value or non-finite
    values.
    """
    t, dt = _to_work(k)
    if not torch.isfinite(t).all():
        raise UserError("the kernel has non-finite values")
    t = t.clamp(min=0)
    s = _sums(t)
    if (s <= 0).any():
        raise UserError("the kernel is all zero (or negative): it cannot be normalised")
    return _from_work(t / s, dt)


def center_of_mass(k):
    r"""Centre of mass ``(row, col)`` in pixel indices: :math:`\sum_{ij} k_{ij}(i, j) / \sum k`.

    Returns a tuple of floats for a ``(h, w)`` kernel, else a ``(B, C, 2)`` tensor.
    """
    t, _ = _to_work(k)
    com = _com(t.to(torch.float64))
    if t.ndim == 2:
        return float(com[0]), float(com[1])
    return com


def kernel_spread(k) -> float:
    r"""Largest standard deviation of a ``(h, w)`` kernel's mass about its centre of mass, in pixels.

    The square root of the largest eigenvalue of the second-moment matrix
    :math:`\sum_{ij} k_{ij} (p_{ij} - \bar p)(p_{ij} - \bar p)^T / \sum k`: ``sigma`` for
    :func:`gaussian_kernel` ``(sigma)``, about ``L / sqrt(12)`` for a motion streak of length ``L``.
    """
    t, _ = _to_work(k)
    if t.ndim != 2:
        raise UserError(f"kernel_spread takes one (h, w) kernel, got {tuple(t.shape)}")
    t = t.to(torch.float64).clamp_min(0)
    r0, c0 = _com(t)
    rows = torch.arange(t.shape[0], dtype=t.dtype, device=t.device)[:, None] - r0
    cols = torch.arange(t.shape[1], dtype=t.dtype, device=t.device)[None, :] - c0
    m = t / t.sum()
    cov = torch.stack([torch.stack([(m * rows**2).sum(), (m * rows * cols).sum()]),
                       torch.stack([(m * rows * cols).sum(), (m * cols**2).sum()])])
    return float(torch.linalg.eigvalsh(cov)[-1].clamp_min(0).sqrt())


def _com(t: torch.Tensor) -> torch.Tensor:
    h, w = t.shape[-2:]
    s = t.sum(dim=(-2, -1))
    if (s <= 0).any():
        raise UserError("the kernel is all zero: it has no centre of mass")
    rows = torch.arange(h, dtype=t.dtype, device=t.device)
    cols = torch.arange(w, dtype=t.dtype, device=t.device)
    r = (t.sum(-1) * rows).sum(-1) / s
    c = (t.sum(-2) * cols).sum(-1) / s
    return torch.stack([r, c], dim=-1)


def _shift_axis(t: torch.Tensor, n: int, axis: int) -> torch.Tensor:
    """Shift ``t`` by the integer ``n`` along ``axis`` with zero fill."""
    if n == 0:
        return t
    out = torch.zeros_like(t)
    L = t.shape[axis]
    if abs(n) >= L:
        return out
    src = [slice(None)] * t.ndim
    dst = [slice(None)] * t.ndim
    if n > 0:
        src[axis], dst[axis] = slice(0, L - n), slice(n, L)
    else:
        src[axis], dst[axis] = slice(-n, L), slice(0, L + n)
    out[tuple(dst)] = t[tuple(src)]
    return out


def _frac_shift_axis(t: torch.Tensor, d: float, axis: int) -> torch.Tensor:
    """Shift by a real ``d`` along ``axis``: linear interpolation of two integer shifts, which keeps
    the values non-negative and moves the centre of mass by exactly ``d``."""
    n = math.floor(d)
    f = d - n
    if f < 1e-12:
        return _shift_axis(t, n, axis)
    return (1 - f) * _shift_axis(t, n, axis) + f * _shift_axis(t, n + 1, axis)


def center_kernel(k, subpixel: bool = False):
    """Shift a kernel so its centre of mass lies at the centre index ``(h // 2, w // 2)``.

    Parameters
    ----------
    k : torch.Tensor or numpy.ndarray
        ``(h, w)`` or ``(B, C, h, w)`` (each kernel is centred on its own).
    subpixel : bool
        ``False`` (default): shift by the rounded offset, so the centre of mass ends within half a
        pixel of the centre and values are only moved. ``True``: shift by the exact real offset
        using linear interpolation between the two nearest integer shifts (non-negative, mass and
        exact centre of mass preserved, at the cost of a slight extra blur; unlike a Fourier shift
        it does not ring).

    Returns
    -------
    Same type as ``k``. The window is enlarged symmetrically (keeping the centre index) when the
    shift would push mass out of it, so nothing is ever lost.
    """
    t, dt = _to_work(k)
    h, w = t.shape[-2:]
    ch, cw = h // 2, w // 2
    flat = t.reshape(-1, h, w)
    com = _com(flat.to(torch.float64)).cpu().numpy()
    shifts = []
    pad_h = pad_w = 0
    for i in range(flat.shape[0]):
        dr = ch - com[i, 0]
        dc = cw - com[i, 1]
        if not subpixel:
            dr, dc = float(round(dr)), float(round(dc))
        shifts.append((dr, dc))
        nz = torch.nonzero(flat[i] > 0)
        if nz.numel() == 0:
            continue
        r0, r1 = int(nz[:, 0].min()), int(nz[:, 0].max())
        c0, c1 = int(nz[:, 1].min()), int(nz[:, 1].max())
        pad_h = max(pad_h, -(r0 + math.floor(dr)), r1 + math.ceil(dr) - (h - 1))
        pad_w = max(pad_w, -(c0 + math.floor(dc)), c1 + math.ceil(dc) - (w - 1))
    if pad_h or pad_w:
        flat = torch.nn.functional.pad(flat, (pad_w, pad_w, pad_h, pad_h))
    out = torch.stack([
        _frac_shift_axis(_frac_shift_axis(flat[i], dr, 0), dc, 1) for i, (dr, dc) in enumerate(shifts)
    ])
    out = out.reshape(*t.shape[:-2], *out.shape[-2:])
    return _from_work(out, dt)


def _make_odd(t: torch.Tensor) -> torch.Tensor:
    """Append a zero row/column to even dimensions: the centre index is unchanged."""
    h, w = t.shape[-2:]
    if h % 2 == 0 or w % 2 == 0:
        t = torch.nn.functional.pad(t, (0, 1 - w % 2, 0, 1 - h % 2))
    return t


def kernel_support(k, threshold: float = 0.0):
    """Boolean mask of the kernel's support: values above ``threshold`` times its maximum.

    Parameters
    ----------
    k : torch.Tensor or numpy.ndarray
        ``(h, w)`` or ``(B, C, h, w)`` (threshold relative to each kernel's maximum).
    threshold : float
        Relative threshold in [0, 1); 0 gives the exact support (non-zero values).

    Returns
    -------
    Boolean mask of the same shape and type (torch or numpy) as ``k``.
    """
    t, dt = _to_work(k)
    m = t.amax(dim=(-2, -1), keepdim=True)
    mask = t > threshold * m
    if dt is None:
        return mask
    return mask.cpu().numpy()


def crop_kernel(k, threshold: float = 0.0):
    """Crop the empty border of a kernel, keeping odd sizes and the centre index.

    The result is the smallest window ``(2 a + 1, 2 b + 1)`` centred on the centre index that holds
    every value above ``threshold`` times the maximum (for a batch, of every kernel). Values
    outside it (all below the threshold) are dropped and the kernel is rescaled to its original
    total mass; with the default ``threshold=0`` nothing is lost.

    Returns
    -------
    Same type as ``k``.
    """
    t, dt = _to_work(k)
    t = _make_odd(t)
    h, w = t.shape[-2:]
    ch, cw = h // 2, w // 2
    mask = kernel_support(t, threshold)
    if t.ndim == 4:
        mask = mask.any(dim=0).any(dim=0)
    if not mask.any():
        raise UserError("the kernel is all zero: nothing to crop to")
    nz = torch.nonzero(mask)
    a = int(max(ch - nz[:, 0].min(), nz[:, 0].max() - ch))
    b = int(max(cw - nz[:, 1].min(), nz[:, 1].max() - cw))
    out = t[..., ch - a : ch + a + 1, cw - b : cw + b + 1]
    if threshold > 0:
        before, after = _sums(t), _sums(out)
        out = torch.where(after > 0, out * (before / after.clamp(min=torch.finfo(t.dtype).tiny)), out)
    return _from_work(out.clone(), dt)


def pad_kernel(k, size):
    """Zero-pad a kernel to an odd ``size`` (int or ``(h, w)``), keeping it centred.

    The centre index ``(h // 2, w // 2)`` of the input maps to the centre of the output (also
    for even-sized input). Raises :class:`~unblur.errors.UserError` if ``size`` is even or smaller
    than the kernel (use :func:`crop_kernel` to shrink).
    """
    t, dt = _to_work(k)
    H, W = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    H, W = _odd_size(H, "padded height"), _odd_size(W, "padded width")
    h, w = t.shape[-2:]
    top, left = H // 2 - h // 2, W // 2 - w // 2
    bottom, right = H - h - top, W - w - left
    if min(top, left, bottom, right) < 0:
        raise UserError(f"cannot pad a {h}x{w} kernel to {H}x{W}: the target is smaller")
    out = torch.nn.functional.pad(t, (left, right, top, bottom))
    return _from_work(out, dt)


def flip_kernel(k):
    """Rotate a kernel by 180 degrees (convolution <-> correlation, the adjoint of a blur).

    For odd sizes the centre index is unchanged.
    """
    t, dt = _to_work(k)
    return _from_work(torch.flip(t, dims=(-2, -1)), dt)


def _resample_matrix(n_out: int, n_in: int, s: float, dtype, device) -> torch.Tensor:
    """1-D resampling matrix mapping the centre index to the centre index with scale ``s``.

    ``s < 1``: each input sample is splatted with a tent of one output pixel (mass and centre of
    mass preserved, antialiased). ``s >= 1``: linear interpolation of the input.
    """
    i = torch.arange(n_out, dtype=torch.float64)[:, None] - n_out // 2
    j = torch.arange(n_in, dtype=torch.float64)[None, :] - n_in // 2
    if s < 1:
        m = (1 - (s * j - i).abs()).clamp(min=0)
    else:
        m = (1 - (i / s - j).abs()).clamp(min=0)
    return m.to(dtype=dtype, device=device)


def resize_kernel(k, scale: float | None = None, size=None):
    r"""Resize a kernel (e.g. for a coarse-to-fine image pyramid), keeping its sum and centre.

    Coordinates relative to the centre are multiplied by :math:`s`:
    :math:`k_s(p) \propto k(p / s)`. Downscaling (:math:`s < 1`) splats each tap with a tent of one
    output pixel (antialiased; centre of mass scaled exactly by :math:`s`, variance by
    :math:`s^2` plus at most 1/4 px²); upscaling interpolates linearly. The result is clipped
    to non-negative values and rescaled to the input's total mass.

    Parameters
    ----------
    k : torch.Tensor or numpy.ndarray
        ``(h, w)`` or ``(B, C, h, w)``.
    scale : float, optional
        Scale factor :math:`s > 0`; the output is the smallest odd window holding the result.
    size : int or (int, int), optional
        Odd output size instead of ``scale``; then :math:`s = H / h` (per axis).

    Returns
    -------
    Same type as ``k``.
    """
    if (scale is None) == (size is None):
        raise UserError("give exactly one of scale and size")
    t, dt = _to_work(k)
    h, w = t.shape[-2:]
    if scale is not None:
        s = float(scale)
        if not (s > 0 and math.isfinite(s)):
            raise UserError(f"scale must be positive, got {scale}")

        def out_len(n):
            c = n // 2
            r = _ceil(c * s) if s < 1 else _ceil((c + 0.5) * s - 0.5)
            return 2 * max(r, 0) + 1

        H, W = out_len(h), out_len(w)
        sh = sw = s
    else:
        H, W = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        H, W = _odd_size(H, "height"), _odd_size(W, "width")
        sh, sw = H / h, W / w
    work = t.to(torch.float64)
    Rh = _resample_matrix(H, h, sh, torch.float64, t.device)
    Rw = _resample_matrix(W, w, sw, torch.float64, t.device)
    out = Rh @ work @ Rw.T
    out = out.clamp(min=0)
    before, after = _sums(work), _sums(out)
    out = torch.where(after > 0, out * (before / after.clamp(min=1e-300)), out)
    return _from_work(out.to(t.dtype), dt)
