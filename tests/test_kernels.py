"""Tests for unblur.blur.kernels: generators, sampler and kernel utilities."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from unblur.blur.kernels import (
    KERNEL_KINDS,
    KernelSampler,
    camera_shake_kernel,
    center_kernel,
    center_of_mass,
    crop_kernel,
    disk_kernel,
    flip_kernel,
    gaussian_kernel,
    gp_shake_kernel,
    gp_trajectory,
    kernel_from_params,
    kernel_spread,
    kernel_support,
    linear_motion_kernel,
    normalize_kernel,
    pad_kernel,
    rasterize_trajectory,
    resize_kernel,
    shake_trajectory,
)
from unblur.errors import UserError


def moments(k):
    """Mean (x, y) and covariance in the kernel frame (x right, y up), in pixels."""
    k = k.double().numpy() if isinstance(k, torch.Tensor) else np.asarray(k, dtype=np.float64)
    h, w = k.shape
    x = (np.arange(w) - w // 2)[None, :].astype(float)
    y = (h // 2 - np.arange(h))[:, None].astype(float)
    s = k.sum()
    mx, my = (k * x).sum() / s, (k * y).sum() / s
    cxx = (k * (x - mx) ** 2).sum() / s
    cyy = (k * (y - my) ** 2).sum() / s
    cxy = (k * (x - mx) * (y - my)).sum() / s
    return mx, my, np.array([[cxx, cxy], [cxy, cyy]])


def check_kernel(k, com_tol=0.5):
    assert isinstance(k, torch.Tensor) and k.dtype == torch.float32 and k.ndim == 2
    h, w = k.shape
    assert h % 2 == 1 and w % 2 == 1
    assert torch.isfinite(k).all()
    assert (k >= 0).all()
    assert abs(float(k.double().sum()) - 1.0) < 1e-5
    r, c = center_of_mass(k)
    assert abs(r - h // 2) <= com_tol + 1e-6 and abs(c - w // 2) <= com_tol + 1e-6


GENERATORS = {
    "gaussian": lambda: gaussian_kernel(2.0, 1.0, 0.3),
    "disk": lambda: disk_kernel(4.3),
    "linear": lambda: linear_motion_kernel(13.7, 0.7),
    "shake": lambda: camera_shake_kernel(31, rng=0),
    "shake-half": lambda: camera_shake_kernel(31, exposure=0.5, anxiety=0.01, rng=1),
    "gp": lambda: gp_shake_kernel(25, 0.2, rng=0),
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_are_valid_kernels(name):
    check_kernel(GENERATORS[name]())


@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_sampler_kernels_valid_deterministic_and_reproducible(kind):
    a = KernelSampler(kind, size_range=(11, 31), rng=7).take(6)
    b = KernelSampler(kind, size_range=(11, 31), rng=7).take(6)
    c = KernelSampler(kind, size_range=(11, 31), rng=8).take(6)
    for (ka, pa), (kb, pb) in zip(a, b):
        check_kernel(ka)
        assert 11 <= ka.shape[0] <= 31 and ka.shape[0] == pa["size"]
        assert pa == pb and torch.equal(ka, kb)
        # JSON round trip of the record rebuilds the same kernel bit for bit
        rec = json.loads(json.dumps(pa))
        assert "kind" not in rec and "seed" not in rec
        assert torch.equal(kernel_from_params(rec, kind), ka)
        assert torch.equal(kernel_from_params({**rec, "kind": kind}), ka)
    assert any(not torch.equal(x[0], y[0]) or x[1] != y[1] for x, y in zip(a, c))


def test_sampler_iter_overrides_and_errors():
    s = KernelSampler("gaussian", size_range=(21, 21), rng=0, sigma1=2.0, angle=(0.1, 0.2))
    for k, p in itertools.islice(s, 4):
        assert k.shape == (21, 21) and p["sigma1"] == 2.0 and 0.1 <= p["angle"] <= 0.2
    # an external rng for one draw (as the dataset synthesis does)
    k1, p1 = KernelSampler("defocus", rng=0).sample(np.random.default_rng(3))
    k2, p2 = KernelSampler("defocus", rng=99).sample(3)
    assert p1 == p2 and torch.equal(k1, k2)
    with pytest.raises(ValueError):
        KernelSampler("nope")
    with pytest.raises(UserError):
        KernelSampler("linear", radius=3)
    with pytest.raises(UserError):
        KernelSampler("linear", size_range=(4, 4))


def test_generators_deterministic_and_seed_dependent():
    assert torch.equal(camera_shake_kernel(21, rng=3), camera_shake_kernel(21, rng=3))
    assert not torch.equal(camera_shake_kernel(21, rng=3), camera_shake_kernel(21, rng=4))
    assert torch.equal(gp_shake_kernel(21, rng=3), gp_shake_kernel(21, rng=np.random.default_rng(3)))
    assert not torch.equal(gp_shake_kernel(21, rng=3), gp_shake_kernel(21, rng=4))
    assert np.array_equal(shake_trajectory(rng=5), shake_trajectory(rng=5))


@pytest.mark.parametrize("s1,s2,angle", [(3.0, 3.0, 0.0), (4.0, 1.5, 0.0), (4.0, 1.5, 0.6), (2.5, 5.0, -1.1)])
def test_gaussian_matches_analytic_covariance(s1, s2, angle):
    k = gaussian_kernel(s1, s2, angle)
    check_kernel(k, com_tol=1e-4)
    assert k.shape[0] >= 2 * math.ceil(3 * max(s1, s2)) + 1
    _, _, cov = moments(k)
    R = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    expected = R @ np.diag([s1**2, s2**2]) @ R.T
    assert np.allclose(np.diag(cov), np.diag(expected), rtol=0.03)
    assert abs(cov[0, 1] - expected[0, 1]) <= 0.03 * max(s1, s2) ** 2
    # symmetric about the centre
    assert torch.allclose(k, flip_kernel(k), atol=1e-8)


def test_gaussian_isotropic_default_and_size():
    k = gaussian_kernel(1.0)
    assert k.shape[0] % 2 == 1 and k.shape[0] >= 7
    assert torch.allclose(k, k.T, atol=1e-8)
    assert gaussian_kernel(2.0, size=9).shape == (9, 9)
    with pytest.raises(UserError):
        gaussian_kernel(2.0, size=10)
    with pytest.raises(UserError):
        gaussian_kernel(-1.0)
    assert float(gaussian_kernel(0.0).max()) > 0.999  # a delta


@pytest.mark.parametrize("radius", [2.5, 6.0, 9.3])
def test_disk_area_and_radius(radius):
    k = disk_kernel(radius)
    check_kernel(k, com_tol=1e-4)
    assert k.shape == (2 * math.ceil(radius) + 1,) * 2
    # the unnormalised coverage is the disk's area: sum / max (max = a fully covered pixel)
    area = float(k.sum() / k.max())
    assert abs(area - math.pi * radius**2) / (math.pi * radius**2) < 0.02
    _, _, cov = moments(k)
    assert np.allclose(np.diag(cov), radius**2 / 4, rtol=0.04)
    assert abs(cov[0, 1]) < 1e-6
    # nothing outside the radius (plus the half-diagonal of a pixel)
    h = k.shape[0]
    yy, xx = np.mgrid[:h, :h] - h // 2
    assert float(k.numpy()[np.hypot(yy, xx) > radius + 0.71].sum()) == 0.0
    assert torch.equal(disk_kernel(0.0, size=5), pad_kernel(torch.ones(1, 1), 5))


@pytest.mark.parametrize("length,angle", [(15.0, 0.0), (15.0, math.pi / 2), (20.0, 0.5), (11.3, 2.2)])
def test_linear_motion_second_moment(length, angle):
    k = linear_motion_kernel(length, angle)
    check_kernel(k, com_tol=1e-4)
    _, _, cov = moments(k)
    d = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-math.sin(angle), math.cos(angle)])
    along = d @ cov @ d
    across = n @ cov @ n
    assert abs(along - length**2 / 12) / (length**2 / 12) < 0.03
    assert across < 0.3
    assert k.shape[0] <= length + 3


def test_linear_motion_delta_and_direction():
    d = linear_motion_kernel(0.0)
    assert d.shape == (1, 1) and float(d) == 1.0
    k = linear_motion_kernel(8.0, 0.0)  # horizontal: all mass on the centre row
    assert abs(float(k[k.shape[0] // 2].sum()) - 1.0) < 1e-6
    k = linear_motion_kernel(8.0, math.pi / 4)  # up-right: mass in the top-right quadrant
    c = k.shape[0] // 2
    assert float(k[:c, c + 1 :].sum()) > 0.3 and float(k[:c, :c].sum()) == 0.0
    assert float(k[c + 1 :, c + 1 :].sum()) == 0.0


def test_shake_trajectory_length_and_shape():
    for seed, L, a in [(0, 60.0, 0.005), (1, 25.0, 0.05), (2, 100.0, 0.1)]:
        z = shake_trajectory(num_samples=1500, max_length=L, anxiety=a, rng=seed)
        assert z.dtype == np.complex128 and z.shape == (1500,) and z[0] == 0
        assert abs(np.abs(np.diff(z)).sum() - L) < 1e-9 * L
        steps = np.abs(np.diff(z))
        assert np.allclose(steps, L / 1499)
    # zero anxiety: a straight line
    z = shake_trajectory(500, 30.0, 0.0, rng=0)
    assert abs(abs(z[-1] - z[0]) - 30.0) < 1e-9
    # fixing a sub-parameter keeps the rest of the random stream
    z1 = shake_trajectory(300, 20.0, 0.02, rng=4, centripetal=0.0)
    z2 = shake_trajectory(300, 20.0, 0.02, rng=4, centripetal=0.0)
    assert np.array_equal(z1, z2)


def test_shake_exposure_shortens_support():
    for seed in range(4):
        full = camera_shake_kernel(41, exposure=1.0, max_length=40, anxiety=0.005, rng=seed)
        half = camera_shake_kernel(41, exposure=0.5, max_length=40, anxiety=0.005, rng=seed)
        check_kernel(half)
        assert int(kernel_support(half).sum()) < int(kernel_support(full).sum())
        _, _, cf = moments(full)
        _, _, ch = moments(half)
        assert np.trace(ch) < np.trace(cf)


def test_shake_fits_window_and_rasterize():
    k = camera_shake_kernel(15, max_length=200, anxiety=0.0, rng=0)  # a 200 px line in 15 px
    check_kernel(k)
    assert float(kernel_support(k).sum()) >= 10  # shrunk to fit, not clipped to a dot
    # rasterising a straight horizontal segment gives the linear motion kernel's moment
    z = np.linspace(-6, 6, 400) + 0j
    r = rasterize_trajectory(z, 17)
    check_kernel(r, com_tol=1e-4)
    _, _, cov = moments(r)
    assert abs(cov[0, 0] - 144 / 12) / 12 < 0.03 and cov[1, 1] < 1e-9
    # sparse samples are joined by the sub-pixel resampling (no gaps)
    r = rasterize_trajectory(np.array([-5 + 0j, 5 + 0j]), 11)
    assert int(kernel_support(r)[5].sum()) == 11


def test_gp_trajectory_and_kernel():
    z = gp_trajectory(400, 0.2, rng=0)
    assert z.shape == (400,) and np.iscomplexobj(z)
    zz = np.stack([gp_trajectory(64, 0.3, rng=s) for s in range(300)])
    assert abs(zz.real.std() - 1) < 0.1 and abs(zz.imag.std() - 1) < 0.1
    # smooth: a larger length scale gives smaller steps
    assert np.abs(np.diff(gp_trajectory(400, 0.5, rng=1))).mean() < np.abs(np.diff(gp_trajectory(400, 0.05, rng=1))).mean()
    k = gp_shake_kernel(31, 0.3, amplitude=6.0, rng=2)
    check_kernel(k)
    sup = kernel_support(k).numpy()
    rows, cols = np.nonzero(sup)
    assert max(np.abs(rows - 15).max(), np.abs(cols - 15).max()) <= 8
    with pytest.raises(UserError):
        gp_shake_kernel(11, amplitude=9.0)


# ------------------------------------------------------------------ utilities
def test_normalize_kernel_types_and_errors():
    k = torch.tensor([[1.0, -1.0, 3.0]])
    n = normalize_kernel(k)
    assert torch.allclose(n, torch.tensor([[0.25, 0.0, 0.75]]))
    a = normalize_kernel(np.array([[2, 2], [0, 4]]))
    assert isinstance(a, np.ndarray) and np.allclose(a, [[0.25, 0.25], [0, 0.5]])
    b = normalize_kernel(torch.rand(2, 3, 5, 5))
    assert torch.allclose(b.sum(dim=(-2, -1)), torch.ones(2, 3))
    with pytest.raises(UserError):
        normalize_kernel(torch.zeros(3, 3))
    with pytest.raises(UserError):
        normalize_kernel(-torch.ones(3, 3))
    with pytest.raises(UserError):
        normalize_kernel(torch.ones(3, 3, 3))


def test_center_shifted_delta_and_batches():
    d = torch.zeros(7, 7)
    d[2, 5] = 1.0
    c = center_kernel(d)
    assert c.shape == (7, 7) and float(c[3, 3]) == 1.0
    # numpy in, numpy out
    cn = center_kernel(d.numpy())
    assert isinstance(cn, np.ndarray) and cn[3, 3] == 1.0
    # mass at the border that would leave the window: the window grows instead
    e = torch.zeros(5, 5)
    e[0, 0] = e[0, 1] = 1.0
    ce = center_kernel(e)
    assert abs(float(ce.sum()) - 2.0) < 1e-6
    r, cc = center_of_mass(ce)
    assert abs(r - ce.shape[0] // 2) <= 0.5 and abs(cc - ce.shape[1] // 2) <= 0.5
    # sub-pixel: exact centre of mass, still non-negative with the same mass
    k = linear_motion_kernel(6.0, 0.3, size=15)
    shifted = pad_kernel(k, 21)[:, 2:]  # off-centre, 21 x 19
    cs = center_kernel(shifted, subpixel=True)
    r, cc = center_of_mass(cs)
    assert abs(r - cs.shape[0] // 2) < 1e-5 and abs(cc - cs.shape[1] // 2) < 1e-5
    assert (cs >= 0).all() and abs(float(cs.sum()) - 1) < 1e-5
    # batch: each kernel centred on its own
    batch = torch.zeros(2, 1, 9, 9)
    batch[0, 0, 1, 1] = 1.0
    batch[1, 0, 6, 7] = 1.0
    cb = center_kernel(batch)
    assert cb.shape == (2, 1, 9, 9) and float(cb[0, 0, 4, 4]) == 1.0 and float(cb[1, 0, 4, 4]) == 1.0


def test_pad_crop_round_trip():
    k = camera_shake_kernel(15, rng=2)
    big = pad_kernel(k, 31)
    assert big.shape == (31, 31) and torch.equal(big[8:23, 8:23], k)
    back = crop_kernel(big)
    small = crop_kernel(k)
    assert torch.equal(back, small)
    assert back.shape[0] % 2 == 1 and back.shape[1] % 2 == 1
    assert torch.equal(pad_kernel(back, k.shape), k)
    # rectangular pads and a (B, C, h, w) batch
    assert pad_kernel(k, (17, 21)).shape == (17, 21)
    kb = pad_kernel(torch.stack([k, flip_kernel(k)])[:, None], 19)
    assert kb.shape == (2, 1, 19, 19)
    assert crop_kernel(kb).shape[-2:] == small.shape  # flip keeps the centred support box
    # even sizes: the centre index (h//2, w//2) is kept
    e = torch.zeros(4, 4)
    e[2, 2] = 1.0
    assert float(pad_kernel(e, 7)[3, 3]) == 1.0
    assert crop_kernel(e).shape == (1, 1)
    with pytest.raises(UserError):
        pad_kernel(k, 9)
    with pytest.raises(UserError):
        pad_kernel(k, 16)
    with pytest.raises(UserError):
        crop_kernel(torch.zeros(3, 3))


def test_crop_threshold_keeps_mass_and_centre():
    k = gaussian_kernel(2.0, size=31)
    c = crop_kernel(k, threshold=1e-3)
    assert c.shape[0] < 31 and c.shape[0] % 2 == 1
    assert abs(float(c.sum()) - 1) < 1e-5
    assert torch.allclose(c, flip_kernel(c))


def test_flip_twice_identity_and_support():
    k = camera_shake_kernel(21, rng=5)
    assert torch.equal(flip_kernel(flip_kernel(k)), k)
    assert torch.equal(flip_kernel(k), torch.flip(k, (0, 1)))
    a = k.numpy()
    assert np.array_equal(flip_kernel(a), a[::-1, ::-1])
    m = kernel_support(a, 0.1)
    assert m.dtype == bool and m.sum() <= (a > 0).sum()


def test_resize_kernel_keeps_sum_centre_and_scales_moments():
    k = gaussian_kernel(4.0, 2.0, 0.4, size=41)
    half = resize_kernel(k, 0.5)
    check_kernel(half, com_tol=1e-4)
    assert half.shape[0] % 2 == 1 and half.shape[0] <= 23
    _, _, c0 = moments(k)
    _, _, c1 = moments(half)
    # variance scales by s^2, plus at most 1/4 px^2 from the antialiasing tent
    assert np.all(np.diag(c1) >= np.diag(c0) * 0.25 - 1e-6)
    assert np.all(np.diag(c1) <= np.diag(c0) * 0.25 + 0.26)
    up = resize_kernel(linear_motion_kernel(8.0, 0.0), 2.0)
    check_kernel(up, com_tol=1e-4)
    _, _, cu = moments(up)
    assert abs(cu[0, 0] - 4 * 64 / 12) / (4 * 64 / 12) < 0.06
    assert resize_kernel(k, size=21).shape == (21, 21)
    assert resize_kernel(k, size=(15, 21)).shape == (15, 21)
    assert resize_kernel(k.numpy(), scale=0.5).shape == half.shape
    # an off-centre kernel keeps its centre of mass scaled about the centre
    d = torch.zeros(21, 21)
    d[10, 18] = 1.0
    r, c = center_of_mass(resize_kernel(d, 0.5))
    assert abs(r - 5) < 1e-6 and abs(c - (5 + 4)) < 1e-6
    with pytest.raises(UserError):
        resize_kernel(k)
    with pytest.raises(UserError):
        resize_kernel(k, 0.5, size=11)


def test_kernel_spread_known_answers():
    assert kernel_spread(gaussian_kernel(1.2)) == pytest.approx(1.2, rel=1e-3)
    assert kernel_spread(gaussian_kernel(2.0, 0.5, angle=30)) == pytest.approx(2.0, rel=1e-2)
    assert kernel_spread(linear_motion_kernel(21, angle=30)) == pytest.approx(21 / math.sqrt(12), rel=1e-2)
    delta = np.zeros((5, 5))
    delta[1, 3] = 1
    assert kernel_spread(delta) == 0.0
    # invariant to position and to scaling of the values
    k = camera_shake_kernel(size=21, rng=3)
    assert kernel_spread(2 * pad_kernel(k, 41)) == pytest.approx(kernel_spread(k), rel=1e-6)
    with pytest.raises(UserError):
        kernel_spread(torch.zeros(1, 1, 3, 3))
