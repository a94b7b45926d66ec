"""Non-blind deconvolution: known answers, boundaries, priors, interfaces, errors."""
import itertools

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F

from unblur.blur import conv2d
from unblur.blur.kernels import linear_motion_kernel
from unblur.deconv import (
    CHANNELWISE_METHODS,
    METHODS,
    _tiles,
    check_kernel,
    deconvolve,
    deconvolve_tiled,
    total_variation,
)
from unblur.deconv._domain import ValidDomain, grad, grad_adjoint
from unblur.deconv.priors import HyperLaplacian, TotalVariation
from unblur.deconv.splitting import default_lambda
from unblur.errors import UserError
from unblur.metrics import psnr


def _psnr(a, b):
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def _aligned(x, k):
    kh, kw = k.shape[-2:]
    return x[..., kh // 2 : x.shape[-2] - (kh - 1 - kh // 2), kw // 2 : x.shape[-1] - (kw - 1 - kw // 2)]


@pytest.fixture(scope="module")
def scene():
    img = skimage.data.camera()[100:260, 150:310].astype(np.float32) / 255
    return torch.from_numpy(img)[None, None]


@pytest.fixture(scope="module")
def motion_kernel():
    k = torch.zeros(13, 13)
    for t in np.linspace(0, 1, 100):
        k[round(4 + 5 * t * t), round(2 + 9 * t)] += 1
    return k / k.sum()


def _blurred(scene, k, sigma=0.0, seed=0):
    y = conv2d(scene, k, mode="valid")
    if sigma:
        y = y + sigma * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return y.clamp(0, 1), _aligned(scene, k)


def test_valid_domain_embeds_the_valid_model(scene, motion_kernel):
    y, _ = _blurred(scene, motion_kernel)
    dom = ValidDomain(y, motion_kernel)
    x = dom.initial(y)
    x[..., : scene.shape[-2], : scene.shape[-1]] = scene
    # The masked circular blur of the grid equals the valid blur of the scene.
    torch.testing.assert_close(dom.blur(x)[..., dom.obs[0], dom.obs[1]], y, atol=1e-5, rtol=0)
    torch.testing.assert_close(dom.crop(x), _aligned(scene, motion_kernel))


def test_gradient_adjoint():
    g = torch.Generator().manual_seed(0)
    x, gx, gy = (torch.rand(1, 2, 9, 11, generator=g, dtype=torch.float64) for _ in range(3))
    dx, dy = grad(x)
    assert torch.isclose((dx * gx + dy * gy).sum(), (x * grad_adjoint(gx, gy)).sum(), rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.5, 2 / 3, 0.8])
@pytest.mark.parametrize("t", [1e-3, 0.05, 1.0])
def test_hyperlaplacian_prox_matches_brute_force(alpha, t):
    v = torch.linspace(-0.6, 0.6, 41, dtype=torch.float64)
    w = HyperLaplacian(alpha).prox(v, t)
    cand = torch.linspace(-0.7, 0.7, 140001, dtype=torch.float64)
    energy = t * cand.abs()[None] ** alpha + 0.5 * (cand[None] - v[:, None]) ** 2
    best = cand[energy.argmin(1)]
    e_lut = t * w.abs() ** alpha + 0.5 * (w - v) ** 2
    e_best = t * best.abs() ** alpha + 0.5 * (best - v) ** 2
    assert (e_lut - e_best).max() < 1e-6


def test_tv_prox_shrinks_norm():
    v = torch.tensor([[3.0], [4.0]])  # a gradient of norm 5
    torch.testing.assert_close(TotalVariation().prox(v, 1.0), torch.tensor([[2.4], [3.2]]))
    assert TotalVariation().prox(v, 6.0).abs().max() == 0


@pytest.mark.parametrize("method", list(METHODS))
def test_delta_kernel_returns_input(scene, method):
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1
    out = deconvolve(scene, delta, method=method, noise=0.001)
    assert _psnr(out, scene) > 33


@pytest.mark.parametrize("method", ["hyperlaplacian", "tv", "wiener", "rl"])
def test_noise_free_blur_is_inverted(scene, method):
    k = torch.ones(5, 5) / 25 * 0.5
    k[2, 2] += 0.5  # well conditioned
    y, truth = _blurred(scene, k)
    out = deconvolve(y, k, method=method, noise=0.0)
    assert _psnr(out, truth) > _psnr(y, truth) + 8
    assert _psnr(out, truth) > 35


@pytest.mark.parametrize("method", list(METHODS))
def test_motion_blur_with_noise_improves(scene, motion_kernel, method):
    y, truth = _blurred(scene, motion_kernel, sigma=0.01)
    out = deconvolve(y, motion_kernel, method=method, noise=0.01)
    assert out.shape == y.shape
    assert _psnr(out, truth) > _psnr(y, truth) + 3


def test_valid_model_beats_circular_assumption_at_the_border(scene, motion_kernel):
    y, truth = _blurred(scene, motion_kernel, sigma=0.005)
    out = deconvolve(y, motion_kernel, noise=0.005)
    # A solver that assumes a periodic scene: hyper-Laplacian on the circularly wrapped image.
    Y = torch.fft.rfft2(y)
    K = torch.fft.rfft2(torch.roll(torch.nn.functional.pad(motion_kernel, (0, y.shape[-1] - 13, 0, y.shape[-2] - 13)), (-6, -6), (0, 1)))
    circ = torch.fft.irfft2(Y * K.conj() / (K.abs() ** 2 + 1e-3), s=y.shape[-2:])
    band = torch.ones_like(y, dtype=torch.bool)
    b = y.shape[-1] // 10
    band[..., b:-b, b:-b] = False
    err_valid = ((out - truth)[band] ** 2).mean()
    err_circ = ((circ.clamp(0, 1) - truth)[band] ** 2).mean()
    assert err_valid < 0.5 * err_circ


def _tv_objective(y, k, x_grid, lam):
    """1/2 |M K x - y|^2 + lam TV(x) of a latent grid (the problem total_variation solves)."""
    dom = ValidDomain(y, k)
    r = (dom.blur(x_grid) - dom.My) * dom.mask
    gx, gy = grad(x_grid)
    return float(0.5 * (r**2).sum() + lam * torch.sqrt(gx**2 + gy**2).sum())


def test_tv_penalty_schedule_reaches_the_same_minimiser(scene, motion_kernel):
    y, _ = _blurred(scene[..., :64, :64], motion_kernel, sigma=0.01)
    plain = total_variation(y, motion_kernel, 0.01, iterations=1000, rho_start=0.2, relax=1.0)
    scheduled = total_variation(y, motion_kernel, 0.01, iterations=1000)
    torch.testing.assert_close(scheduled, plain, atol=1e-3, rtol=0)


def test_tv_penalty_schedule_converges_faster_for_large_kernels(scene):
    # a 41 px kernel on a 120 px photo: a third of the latent grid is only partly observed
    k = linear_motion_kernel(35.0, 30.0, size=41)
    y, _ = _blurred(scene[..., :160, :160], k, sigma=0.01)
    lam = default_lambda("tv", 0.01)
    kw = {"iterations": 20, "grid": True, "lam": lam}
    plain = total_variation(y, k, 0.01, rho_start=0.2, relax=1.0, **kw)
    scheduled = total_variation(y, k, 0.01, **kw)
    reference = total_variation(y, k, 0.01, lam=lam, iterations=300, grid=True)
    f_plain, f_sched, f_ref = (_tv_objective(y, k, x, lam) for x in (plain, scheduled, reference))
    assert f_ref <= f_sched < f_plain
    assert f_sched - f_ref < 0.5 * (f_plain - f_ref)


def test_numpy_and_torch_in_out(scene, motion_kernel):
    y, _ = _blurred(scene, motion_kernel, sigma=0.01)
    arr = y[0, 0].numpy()
    out = deconvolve(arr, motion_kernel.numpy(), noise=0.01)
    assert isinstance(out, np.ndarray) and out.shape == arr.shape and out.dtype == np.float32
    rgb = np.repeat(arr[..., None], 3, axis=2)
    out_rgb = deconvolve(rgb, motion_kernel.numpy(), noise=0.01)
    assert out_rgb.shape == rgb.shape
    np.testing.assert_allclose(out_rgb[..., 1], out, atol=1e-4)
    u16 = np.round(arr * 65535).astype(np.uint16)
    out16 = deconvolve(u16, motion_kernel.numpy(), noise=0.01)
    assert np.abs(out16 - out).mean() < 1e-4  # 16-bit input keeps its precision
    t = deconvolve(y[0], motion_kernel, noise=0.01)
    assert isinstance(t, torch.Tensor) and t.shape == y[0].shape


def test_parameters_override_defaults(scene, motion_kernel):
    y, _truth = _blurred(scene, motion_kernel, sigma=0.01)
    a = deconvolve(y, motion_kernel, noise=0.01)
    b = deconvolve(y, motion_kernel, noise=0.01, lam=0.05)
    assert not torch.allclose(a, b)
    assert b.diff(dim=-1).abs().mean() < a.diff(dim=-1).abs().mean()  # stronger prior is smoother


def test_noise_is_estimated_when_omitted(scene, motion_kernel):
    y, truth = _blurred(scene, motion_kernel, sigma=0.02)
    out = deconvolve(y, motion_kernel)
    assert _psnr(out, truth) > _psnr(y, truth) + 2


def test_tiled_matches_whole(scene, motion_kernel):
    y, truth = _blurred(scene, motion_kernel, sigma=0.01)
    whole = deconvolve(y, motion_kernel, noise=0.01)
    tiled = deconvolve(y, motion_kernel, noise=0.01, tile=96)
    assert abs(_psnr(tiled, truth) - _psnr(whole, truth)) < 0.5
    ident = deconvolve_tiled(y, lambda t: t, tile=64, overlap=16)
    torch.testing.assert_close(ident, y)


@pytest.mark.parametrize("n, tile, overlap", [(100, 96, 16), (500, 96, 16), (3000, 1536, 62), (4000, 1536, 154), (90, 96, 16)])
def test_tiles_are_equal_cover_and_overlap(n, tile, overlap):
    starts, length = _tiles(n, tile, overlap)
    assert length <= tile and starts[0] == 0 and starts[-1] + length == n
    assert all(a + length - b >= overlap for a, b in itertools.pairwise(starts))
    # the fewest tiles: one less could not cover n with that overlap
    assert len(starts) == 1 or (len(starts) - 1) * (tile - overlap) + overlap < n


@pytest.mark.parametrize("method", sorted(CHANNELWISE_METHODS))
def test_channelwise_solvers_match_a_joint_solve(scene, motion_kernel, method):
    """Channels (and batch items) are solved one by one: the result equals the solver on the stack."""
    y, _ = _blurred(scene[..., :64, :64].repeat(2, 3, 1, 1) * torch.tensor([1.0, 0.8, 0.6])[:, None, None], motion_kernel, sigma=0.01)
    params = {"iterations": 3} if method.startswith("pnp") else {}
    one_by_one = deconvolve(y, motion_kernel, method=method, noise=0.01, space="stored", **params)
    stacked = METHODS[method](y, check_kernel(motion_kernel), 0.01, **params).clamp(0, 1)
    torch.testing.assert_close(one_by_one, stacked, atol=1e-5, rtol=0)


def test_large_channels_are_tiled(monkeypatch):
    """Channels above ``PLANE_PIXELS`` go through ``deconvolve_tiled`` in ``PLANE_TILE`` tiles."""
    from unblur import deconv

    seen = []
    real = deconv.deconvolve_tiled
    monkeypatch.setattr(deconv, "PLANE_PIXELS", 90 * 90)
    monkeypatch.setattr(deconv, "PLANE_TILE", 80)
    monkeypatch.setattr(deconv, "deconvolve_tiled",
                        lambda y, fn, tile, overlap, aux=None: seen.append((tuple(y.shape), tile)) or real(y, fn, tile, overlap, aux))
    y = torch.rand(1, 3, 100, 110)
    out = deconv.deconvolve(y, torch.ones(3, 3) / 9, method="tv", noise=0.01)
    assert out.shape == y.shape
    assert seen == [((1, 1, 100, 110), 80)] * 3
    deconv.deconvolve(y, torch.ones(3, 3) / 9, method="wiener", noise=0.01)  # joint: 1 MP is not tiled
    assert len(seen) == 3


@pytest.mark.parametrize(
    "kernel, message",
    [
        (torch.full((3, 3), float("nan")), "non-finite"),
        (-torch.ones(3, 3), "negative"),
        (torch.zeros(3, 3), "sums to zero"),
        (torch.zeros(0, 3), "empty"),
        (torch.ones(301, 3), "larger than the image"),
    ],
)
def test_bad_kernels(kernel, message):
    with pytest.raises(UserError, match=message):
        check_kernel(kernel, (200, 200))


def test_even_kernel_supported(scene):
    k = torch.ones(4, 4) / 16
    y, truth = _blurred(scene, k, sigma=0.005)
    out = deconvolve(y, k, noise=0.005)
    assert _psnr(out, truth) > _psnr(y, truth) + 2


def test_unknown_method():
    with pytest.raises(UserError, match="unknown method"):
        deconvolve(np.zeros((10, 10)), np.ones((3, 3)), method="magic")


def test_unsaturated_masks_clipped_plateaus_not_scattered_bright_pixels():
    """Only whole 3x3 plateaus at the level count as clipped; they are dropped with a 1 px ring."""
    from unblur.deconv._domain import unsaturated

    y = torch.full((1, 1, 20, 20), 0.5)
    y[..., 2, 2] = 1.0  # a single bright pixel (noise on white paper): kept
    y[..., 10:13, 10:13] = 1.0  # a 3x3 clipped light: dropped with its ring
    w = unsaturated(y, 0.99)
    assert w.shape == y.shape
    assert float(w[..., 2, 2]) == 1
    assert (w[..., 9:14, 9:14] == 0).all()
    assert float(w.sum()) == 400 - 25


def test_a_unit_weight_leaves_the_solution_unchanged():
    y = torch.rand(1, 1, 48, 52)
    k = torch.ones(5, 5) / 25
    a = total_variation(y, k, 0.01)
    b = total_variation(y, k, 0.01, weight=torch.ones_like(y))
    torch.testing.assert_close(a, b)


def test_saturation_handling_removes_the_ringing_of_clipped_lights():
    """Lights 4x brighter than white, blurred and clipped: fitting the clipped values rings below
    the blurred input's PSNR; leaving them out of the data term restores a sharper image."""
    g = torch.Generator().manual_seed(0)
    x = F.avg_pool2d(torch.rand(1, 3, 140, 140, generator=g), 5, 1, 2) * 0.5 + 0.1
    for i, j in [(30, 30), (60, 100), (100, 50), (110, 110)]:
        x[..., i : i + 5, j : j + 5] = 4.0
    k = linear_motion_kernel(15, 30.0)
    y = F.conv2d(x, k.flip(-1, -2)[None, None].expand(3, 1, -1, -1), groups=3).clamp(0, 1)
    y = (y + 0.003 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    h = k.shape[-1] // 2
    truth = x[..., h:-h, h:-h].clamp(0, 1)
    plain = float(psnr(deconvolve(y, k, method="tv", noise=0.003), truth))
    masked = float(psnr(deconvolve(y, k, method="tv", noise=0.003, saturation=0.99), truth))
    blurred = float(psnr(y, truth))
    assert plain < blurred  # 19.7 < 21.4 dB when measured
    assert masked > blurred + 0.5  # 22.2 dB
    # the tiled path cuts the weight with the image
    tiled = deconvolve(y, k, method="tv", noise=0.003, saturation=0.99, tile=80)
    assert float(psnr(tiled, truth)) > blurred + 0.5


def test_saturation_needs_a_weighted_solver():
    with pytest.raises(UserError, match="saturation"):
        deconvolve(torch.rand(1, 1, 40, 40), torch.ones(3, 3) / 9, method="wiener", noise=0.01, saturation=0.99)
