"""Tests of Polyblur (unblur.estimate.polyblur): blur estimation, polynomial filter, halos, API."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from unblur.blur.kernels import gaussian_kernel
from unblur.blur.operators import conv2d
from unblur.estimate.polyblur import (
    GaussianBlurEstimate,
    _apply_polynomial,
    _candidates,
    _remove_halos,
    edge_gain,
    estimate_gaussian_blur,
    polyblur,
    polyblur_deblur,
    polynomial_coefficients,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NATURAL = DATA / "natural"


def _load(rel: str) -> torch.Tensor:
    from PIL import Image

    path = NATURAL / rel
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()


def _blur(x, s1, s2, angle_deg, noise=0.0, seed=0):
    y = conv2d(x, gaussian_kernel(s1, s2, math.radians(angle_deg)), mode="same", pad="reflect")
    if noise:
        g = torch.Generator().manual_seed(seed)
        y = y + noise * torch.randn(y.shape, generator=g)
    return y.clamp(0.0, 1.0)


def _psnr(a, b, border=8):
    a = torch.as_tensor(a)[..., border:-border, border:-border]
    b = torch.as_tensor(b)[..., border:-border, border:-border]
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


def _angle_err_deg(a, b):
    return abs(((math.degrees(a) - b + 90.0) % 180.0) - 90.0)


def _dead_leaves(n=256, count=400, seed=0) -> torch.Tensor:
    """A synthetic sharp image: random overlapping disks (edges of every orientation)."""
    rng = np.random.default_rng(seed)
    img = np.full((n, n), 0.5)
    yy, xx = np.mgrid[0:n, 0:n]
    for _ in range(count):
        r = rng.uniform(4, 30)
        cy, cx = rng.uniform(0, n, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.uniform(0, 1)
    return torch.from_numpy(img.astype(np.float32))[None, None]


# ---------------------------------------------------------------------------------------------
# the polynomial filter
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha,beta", [(6.0, 1.0), (2.0, 4.0), (3.5, 2.0)])
def test_polynomial_constraints(alpha, beta):
    a3, a2, a1, a0 = polynomial_coefficients(alpha, beta)
    assert a3 + a2 + a1 + a0 == pytest.approx(1.0)  # p(1) = 1
    assert 3 * a3 + 2 * a2 + a1 == pytest.approx(-1.0)  # p'(1) = -1
    assert 6 * a3 + 2 * a2 == pytest.approx(alpha)  # p''(1) = alpha
    assert a0 == pytest.approx(beta)  # p(0) = beta


def test_taylor_case_and_edge_gain():
    # (alpha, beta) = (2, 4) is sum_{i<=3} (1 - x)^i = 4 - 6x + 4x^2 - x^3
    assert polynomial_coefficients(2, 4) == pytest.approx((-1.0, 4.0, -6.0, 4.0))
    a3, a2, a1, a0 = polynomial_coefficients(6, 1)
    assert edge_gain(6, 1) == pytest.approx(a0 + a1 / math.sqrt(2) + a2 / math.sqrt(3) + a3 / 2)
    assert 1.2 < edge_gain(6, 1) < 1.5


def test_fourier_filter_matches_spatial_reblurring():
    x = torch.rand(1, 2, 64, 72, generator=torch.Generator().manual_seed(1))
    est = GaussianBlurEstimate(1.6, 0.7, 0.4)
    coeffs = polynomial_coefficients(6, 1)
    got = _apply_polynomial(x, est, coeffs)
    k = est.kernel()

    def K(z):
        return conv2d(z, k, mode="same", pad="reflect")

    a3, a2, a1, a0 = coeffs
    want = a3 * K(K(K(x))) + a2 * K(K(x)) + a1 * K(x) + a0 * x
    # identical away from the border (the border extension differs: once vs. at every blur)
    assert torch.allclose(got[..., 20:-20, 20:-20], want[..., 20:-20, 20:-20], atol=1e-4)


def test_halo_removal_blend():
    v = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(_remove_halos(v, v.clone()), v)  # same gradients: untouched
    # a blurred step, and a "restoration" that overshoots on both sides of the edge
    step = torch.zeros(1, 1, 1, 40)
    step[..., 20:] = 1.0
    v = conv2d(step.expand(1, 1, 9, 40).contiguous(), gaussian_kernel(1.5), mode="same", pad="replicate")
    u = _apply_polynomial(v, GaussianBlurEstimate(3.0, 3.0, 0.0), polynomial_coefficients(2, 4))
    out = _remove_halos(v, u)

    def over(t):
        return float((t - 1).clamp(min=0).max() + (-t).clamp(min=0).max())

    assert over(u) > 0.05
    assert over(out) < over(u)
    lo = torch.minimum(u, v) - 1e-6
    hi = torch.maximum(u, v) + 1e-6
    assert bool(((out >= lo) & (out <= hi)).all())  # a convex blend of u and v


# ---------------------------------------------------------------------------------------------
# blur estimation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("s1,s2,angle", [(2.5, 1.0, 30.0), (2.5, 1.0, 125.0)])
def test_estimation_angle_convention_synthetic(s1, s2, angle):
    x = _dead_leaves()
    est = estimate_gaussian_blur(_blur(x, s1, s2, angle))
    assert est.sigma_major > est.sigma_minor * 1.5
    assert _angle_err_deg(est.angle, angle) < 12.0
    assert 0.0 <= est.angle < math.pi


def test_estimation_order_and_clamping_synthetic():
    x = _dead_leaves(seed=3)
    sig = [estimate_gaussian_blur(_blur(x, s, s, 0.0)).sigma_major for s in (0.8, 1.6, 3.0)]
    assert sig[0] < sig[1] < sig[2]
    flat = torch.full((1, 1, 32, 32), 0.3)
    est = estimate_gaussian_blur(flat)  # no gradients at all: the largest blur, clamped
    assert est.sigma_major == pytest.approx(4.0) and est.sigma_minor == pytest.approx(4.0)


CASES = [
    ("kodak24/kodim15.png", 2.0, 0.8, 30.0),
    ("kodak24/kodim19.png", 3.0, 1.2, 100.0),
    ("cbsd68/119082.png", 2.5, 1.0, 60.0),
    ("kodak24/kodim15.png", 2.5, 1.0, 150.0),
]


@pytest.mark.parametrize("rel,s1,s2,angle", CASES)
def test_estimation_accuracy_real_images(rel, s1, s2, angle):
    x = _load(rel)
    est = estimate_gaussian_blur(_blur(x, s1, s2, angle, noise=0.005))
    assert abs(est.sigma_major / s1 - 1) < 0.25
    assert abs(est.sigma_minor / s2 - 1) < 0.30
    assert _angle_err_deg(est.angle, angle) < 15.0


def test_estimation_isotropic_real_image():
    x = _load("kodak24/kodim19.png")
    for s in (1.0, 2.0):
        est = estimate_gaussian_blur(_blur(x, s, s, 0.0))
        assert abs(est.sigma_major / s - 1) < 0.25 and abs(est.sigma_minor / s - 1) < 0.25


# ---------------------------------------------------------------------------------------------
# deblurring
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rel,s1,s2,angle", [
    ("kodak24/kodim05.png", 1.5, 1.0, 20.0),
    ("kodak24/kodim23.png", 2.0, 1.2, 110.0),
    ("cbsd68/101085.png", 1.0, 1.0, 0.0),
])
def test_polyblur_improves_psnr_rgb(rel, s1, s2, angle):
    x = _load(rel)[..., :256, :256]
    y = _blur(x, s1, s2, angle, noise=0.005, seed=4)
    restored, kernel = polyblur(y)
    assert _psnr(restored, x) > _psnr(y, x) + 0.5
    assert kernel.ndim == 2 and kernel.shape[0] % 2 == 1
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-5)


def test_band_wise_pass_matches_the_whole_image_pass(monkeypatch):
    """Large images are deblurred a channel and a band of rows at a time (to keep temporaries
    small); the bands' context rows make that the same filter as on the whole image."""
    import sys

    module = sys.modules["unblur.estimate.polyblur"]
    x = _load("kodak24/kodim05.png")[..., :200, :256]
    y = _blur(x, 2.0, 1.2, 0.6, noise=0.005, seed=6)
    whole, _ = polyblur(y)
    monkeypatch.setattr(module, "_BAND", 256 * 40)  # bands of 64 rows (the least), with 6 sigma of context
    banded, _ = polyblur(y)
    assert torch.allclose(banded, whole, atol=1e-5)


def test_polyblur_improves_psnr_gray_numpy():
    x = _load("kodak24/kodim08.png")[..., :256, :256].mean(1, keepdim=True)
    y = _blur(x, 1.5, 1.5, 0.0, noise=0.005, seed=5)
    restored, _ = polyblur(y[0, 0].numpy())
    assert isinstance(restored, np.ndarray) and restored.shape == (256, 256)
    assert restored.dtype == np.float32
    assert _psnr(torch.from_numpy(restored), x[0, 0]) > _psnr(y[0, 0], x[0, 0]) + 0.5


def test_sharp_image_nearly_unchanged():
    x = _load("kodak24/kodim23.png")[..., :256, :256]
    est = estimate_gaussian_blur(x)
    assert est.sigma_major < 0.8
    restored, _ = polyblur(x)
    assert _psnr(restored, x) > 35.0


def test_iterations_do_not_oversharpen():
    x = _load("kodak24/kodim05.png")[..., :256, :256]
    y = _blur(x, 2.0, 1.5, 45.0, noise=0.005, seed=6)
    p1 = _psnr(polyblur(y, iterations=1)[0], x)
    p3 = _psnr(polyblur(y, iterations=3)[0], x)
    assert p3 > p1 - 0.3


def test_numpy_torch_layouts_and_determinism():
    x = _dead_leaves(128)
    rgb = torch.cat([x, x * 0.8, x * 0.5 + 0.2], 1)
    y = _blur(rgb, 1.5, 1.0, 30.0)
    out_t, k_t = polyblur(y[0])  # (C, H, W) tensor
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (3, 128, 128)
    out_n, k_n = polyblur(y[0].permute(1, 2, 0).numpy())  # (H, W, C) numpy
    assert isinstance(out_n, np.ndarray) and out_n.shape == (128, 128, 3)
    assert np.allclose(out_n, out_t.permute(1, 2, 0).numpy(), atol=1e-6)
    assert torch.equal(k_t, k_n) and isinstance(k_n, torch.Tensor)
    out_t2, k_t2 = polyblur(y[0])
    assert torch.equal(out_t, out_t2) and torch.equal(k_t, k_t2)
    assert float(out_t.min()) >= 0.0 and float(out_t.max()) <= 1.0
    g, _ = polyblur(y[0, 0])  # (H, W) tensor
    assert g.shape == (128, 128)


def test_batch_and_result_details():
    x = _dead_leaves(96, count=200)
    y = torch.cat([_blur(x, 1.2, 1.2, 0.0), _blur(x, 2.0, 1.0, 60.0)], 0)
    res = polyblur_deblur(y, iterations=2)
    assert res.image.shape == y.shape
    assert len(res.estimates) == 2 and all(len(e) >= 1 for e in res.estimates)
    assert res.kernel.shape[:2] == (2, 1)
    ests = estimate_gaussian_blur(y)
    assert isinstance(ests, list) and len(ests) == 2
    single = polyblur_deblur(y[1:], iterations=2)
    assert torch.allclose(single.image, res.image[1:])


def test_non_blind_and_composite_kernel():
    x = _dead_leaves(128, seed=7)
    y = _blur(x, 1.5, 1.5, 0.0)
    res = polyblur_deblur(y, blur=(1.5, 1.5), iterations=1)
    assert len(res.estimates) == 1 and res.estimates[0].sigma_major == pytest.approx(1.5)
    assert torch.allclose(res.kernel, gaussian_kernel(1.5, 1.5, 0.0), atol=1e-6)
    assert _psnr(res.image, x) > _psnr(y, x) + 1.0
    # the composite kernel's covariance is the sum of the applied passes' covariances
    res3 = polyblur_deblur(_blur(x, 2.5, 1.0, 45.0), iterations=3, min_sigma=0.0, residual_correction=False)
    cov = sum(e.covariance() for e in res3.estimates)
    comp = GaussianBlurEstimate.from_covariance(cov)
    assert torch.allclose(res3.kernel, comp.kernel(), atol=1e-6)


def test_estimate_roundtrip_and_errors():
    e = GaussianBlurEstimate(2.0, 0.5, 2.0)
    back = GaussianBlurEstimate.from_covariance(e.covariance())
    assert back.sigma_major == pytest.approx(2.0) and back.sigma_minor == pytest.approx(0.5)
    assert back.angle == pytest.approx(2.0)
    assert e.as_dict() == {"sigma_major": 2.0, "sigma_minor": 0.5, "angle": 2.0}
    img = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError):
        polyblur(img, iterations=0)
    with pytest.raises(ValueError):
        polyblur(torch.rand(2, 2))
    with pytest.raises(ValueError):
        polyblur_deblur(img, blur=(-1.0, 1.0))


@pytest.mark.parametrize("n,k", [(10, 3), (1000, 1), (10**6, 100), (10**6, 4096), (5000, 4096), (100, 100)])
def test_candidates_hold_the_exact_top_k(n, k):
    """The sampled threshold never drops one of the k largest values (ties and flat data included)."""
    g = torch.Generator().manual_seed(n + k)
    for f in (torch.rand(n, generator=g), torch.rand(n, generator=g) ** 8, torch.zeros(n).index_fill_(0, torch.arange(3), 1.0)):
        assert torch.equal(_candidates(f, k).topk(k).values, f.topk(k).values)
