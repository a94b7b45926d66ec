"""Blind deblurring: kernel recovery, method choice, determinism, region selection, CLI."""
import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from unblur import io
from unblur.blind import deblur, solver_noise
from unblur.blur import conv2d
from unblur.blur.kernels import camera_shake_kernel, crop_kernel, gaussian_kernel, resize_kernel
from unblur.blur.synth import Degradation, degrade
from unblur.cli import main
from unblur.deconv import deconvolve
from unblur.deconv._domain import ValidDomain
from unblur.errors import UserError
from unblur.estimate.map_kernel import (
    MapEstimator,
    default_kernel_size,
    kernel_misfit,
    normalized_sparsity,
    select_kernel,
    select_region,
)
from unblur.metrics import kernel_similarity, psnr_shift_invariant


@pytest.fixture(scope="module")
def shake_case(data_root):
    path = sorted((data_root / "natural" / "cbsd432").glob("*.jpg"))[125]
    img = io.read_image(path).to_tensor()[..., :300, :300]
    k = camera_shake_kernel(size=25, rng=202)
    y, truth = degrade(img, k, Degradation(sigma=0.01, bits=8), generator=1)
    return y, truth, k


def _blind_cases(data_root, sigma=0.01, **settings):
    """Blind deblurring of four cbsd432 crops with 25 px camera-shake kernels, with 2 threads.

    The float rounding of other thread counts can flip L0 thresholding decisions and give other
    kernels, so the cases pin the count.
    """
    files = sorted((data_root / "natural" / "cbsd432").glob("*.jpg"))
    results = []
    with _threads(2):
        for idx, rng in [(125, 202), (40, 7), (300, 11), (210, 5)]:
            img = io.read_image(files[idx]).to_tensor()[..., :300, :300]
            k = camera_shake_kernel(size=25, rng=rng)
            y, truth = degrade(img, k, Degradation(sigma=sigma, bits=8), generator=1)
            results.append((deblur(y, method="map", kernel_size=31, **settings), k, y, truth))
    return results


@contextlib.contextmanager
def _threads(n):
    """Run with ``n`` torch threads (blind estimates are pinned to the count they were measured with)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_blind_recovery_of_camera_shake(data_root):
    # Regression values: kernel similarity 0.67/0.86/0.79/0.78 (mean 0.78), PSNR gain over the
    # blurred input 0.42/1.41/2.51/0.59 dB (mean 1.23). Single cases vary a lot, so the test
    # checks the mean and the worst case. (With the denoiser of the CPU training run and the full
    # noise level for the prefilter they were 0.85/0.85/0.67/0.78 and 1.83/1.60/1.52/0.57 dB; on
    # 32 larger cases the two settings are level, see unblur.estimate.map_kernel.)
    sims, gains = [], []
    for res, k, y, truth in _blind_cases(data_root):
        assert res.kernel.shape == (31, 31) and abs(float(res.kernel.sum()) - 1) < 1e-5
        assert float(res.kernel.min()) >= 0
        sims.append(kernel_similarity(res.kernel, k))
        gains.append(psnr_shift_invariant(res.image, truth) - psnr_shift_invariant(y, truth))
    assert np.mean(sims) > 0.75 and min(gains) > 0.3 and np.mean(gains) > 1.1


def test_denoising_first_makes_estimation_robust_to_noise(data_root):
    # Regression values at 2 % noise: kernel similarity 0.64/0.84/0.79/0.78 (mean 0.76) with the
    # estimation window denoised first, 0.66/0.72/0.60/0.70 (mean 0.67) without.
    with_denoising = np.mean([kernel_similarity(r.kernel, k) for r, k, _, _ in _blind_cases(data_root, 0.02)])
    without = np.mean([kernel_similarity(r.kernel, k) for r, k, _, _ in _blind_cases(data_root, 0.02, denoise=False)])
    assert with_denoising > 0.74 and with_denoising > without + 0.08


def test_normalized_sparsity_prefers_sharp_images(shake_case):
    y, truth, _ = shake_case
    assert normalized_sparsity(truth) < normalized_sparsity(y)
    # scale-invariant: a contrast change leaves the score unchanged
    assert normalized_sparsity(0.5 * truth) == pytest.approx(normalized_sparsity(truth), rel=1e-5)


def test_select_kernel_picks_the_true_kernel(shake_case):
    y, _, k = shake_case
    wrong = camera_shake_kernel(size=25, rng=999)
    assert select_kernel(y, [wrong, k], noise=0.01) == 1
    assert select_kernel(y, [k, wrong], noise=0.01) == 0
    # an alternative candidate wins only when it is clearly sharper than the preferred ones
    assert select_kernel(y, [wrong, k], noise=0.01, preferred=1, margin=0.05) == 1
    assert select_kernel(y, [wrong, k], noise=0.01, preferred=1, margin=1.0) == 0
    assert select_kernel(y, [k, wrong], noise=0.01, preferred=1, margin=0.0) == 0


def test_an_alternative_that_explains_the_image_worse_is_vetoed(shake_case):
    y, _, k = shake_case
    wrong = camera_shake_kernel(size=25, rng=999)
    fit, misfit = kernel_misfit(y, k, 0.01), kernel_misfit(y, wrong, 0.01)
    assert 0.8 < fit < 1.2 and misfit > 1.3 * fit
    # a negative margin lets the alternative win on sharpness alone; the misfit veto keeps the default
    assert select_kernel(y, [k, wrong], noise=0.01, preferred=1, margin=-1.0) == 1
    assert select_kernel(y, [k, wrong], noise=0.01, preferred=1, margin=-1.0, max_misfit=1.2) == 0
    # an alternative that fits better is not held back
    assert select_kernel(y, [wrong, k], noise=0.01, preferred=1, margin=0.05, max_misfit=1.2) == 1


def test_starts_are_independent_estimates(shake_case):
    y, _, _ = shake_case
    y = y[..., :160, :160]
    both = MapEstimator(kernel_size=15, iterations=2).estimate(y)
    with _threads(1):  # as each start runs (run_concurrently): the rounding depends on the count
        singles = [MapEstimator(kernel_size=15, iterations=2, starts=(s,)).estimate(y) for s in MapEstimator().starts]
    assert any(torch.equal(both, s) for s in singles)


def test_alternative_thresholds_add_candidates(shake_case):
    y, _, _ = shake_case
    y = y[..., :160, :160]
    settings = {"kernel_size": 21, "iterations": 2}
    picked = MapEstimator(alt_thresholds=(20.0,), alt_min_spread=0.0, **settings).estimate(y)
    with _threads(1):
        candidates = {t: [MapEstimator(threshold=t, starts=(s,), **settings).estimate(y) for s in MapEstimator().starts]
                      for t in (8.0, 20.0)}
    # the looser threshold keeps fainter taps, so its estimates differ, and one of all four is picked
    assert not any(torch.equal(a, b) for a, b in zip(candidates[8.0], candidates[20.0]))
    assert any(torch.equal(picked, k) for ks in candidates.values() for k in ks)
    # alternatives narrower than ``alt_min_spread`` do not compete
    narrow = MapEstimator(alt_thresholds=(20.0,), alt_min_spread=1e9, **settings).estimate(y)
    assert torch.equal(narrow, MapEstimator(**settings).estimate(y))


@pytest.mark.parametrize("p", [1, 3, 5, 15, 17])
def test_min_filter_matches_pooling(p):
    from unblur.estimate.map_kernel import _min_filter

    x = torch.rand(2, 1, 37, 53, generator=torch.Generator().manual_seed(p))
    ref = -torch.nn.functional.max_pool2d(-x, p, stride=1, padding=p // 2)
    assert torch.equal(_min_filter(_min_filter(x, p, -1), p, -2), ref)


def test_deterministic(shake_case):
    y, _, _ = shake_case
    a = MapEstimator(kernel_size=15, iterations=2).estimate(y[..., :160, :160])
    b = MapEstimator(kernel_size=15, iterations=2).estimate(y[..., :160, :160])
    torch.testing.assert_close(a, b)


def test_auto_keeps_the_map_kernel_for_camera_shake(shake_case):
    y, _, _ = shake_case
    res = deblur(y[..., :200, :200], method="auto", kernel_size=31)
    assert res.method == "map" and res.kernel.shape == (31, 31)


def test_high_quality_averages_tv_and_plug_and_play(shake_case):
    y, truth, _ = shake_case
    y, truth = y[..., :200, :200], truth[..., :200, :200]
    settings = {"method": "map", "kernel_size": 31, "iterations": 3}
    with _threads(1):  # the same kernel in all three runs (``solver`` replaces the final step of ``quality`` only)
        high = deblur(y, quality="high", **settings)
        tv = deblur(y, quality="high", solver="tv", **settings)
        pnp = deblur(y, quality="high", solver="pnp", **settings)
    assert torch.equal(high.kernel, tv.kernel) and torch.equal(high.kernel, pnp.kernel)
    torch.testing.assert_close(high.image, (tv.image + pnp.image) / 2, atol=1e-6, rtol=0)
    # the errors of the two restorations differ, so their mean is closer to the truth than the worse
    scores = [float(psnr_shift_invariant(r.image, truth)) for r in (high, tv, pnp)]
    assert scores[0] > min(scores[1:]) + 0.1


def test_auto_falls_back_to_polyblur_when_the_restoration_breaks_down(data_root, monkeypatch):
    """A speckled cloud for a kernel (what the estimator returned for cross_stitch, a real shaken
    photo, at some thread counts) turns the photo into coloured noise when deconvolved, so ``auto``
    returns Polyblur's result instead. Which photos the estimator fails on depends on float rounding
    (the thread count, the FFT grid), so the failure is injected. The guard measures at the fixed
    noise level: the misfit level of the final step regularises the cloud more, which lowers the
    amplification of ``map``'s result without making it a photo again."""
    from unblur.blind import MAX_AMPLIFICATION, amplification
    from unblur.metrics import band_energy_ratio

    y = io.read_image(data_root / "lai2016" / "real" / "cross_stitch.jpg").to_tensor()
    g = torch.Generator().manual_seed(0)
    cloud = torch.rand(31, 31, generator=g) * (torch.rand(31, 31, generator=g) < 0.05)
    cloud = cloud / cloud.sum()
    monkeypatch.setattr(MapEstimator, "estimate", lambda self, image: cloud)
    assert amplification(y, cloud, 0.001, "stored") > MAX_AMPLIFICATION
    assert 2 < band_energy_ratio(deblur(y, method="map").image, y) < MAX_AMPLIFICATION  # what the final step shows
    res = deblur(y, method="auto")
    assert res.method == "polyblur" and band_energy_ratio(res.image, y) < 2


def test_amplification_stays_low_for_the_true_kernel(shake_case):
    from unblur.blind import MAX_AMPLIFICATION, amplification

    y, _, k = shake_case
    assert 1 < amplification(y, k, 0.01, "linear") < MAX_AMPLIFICATION / 2


def test_high_tells_plug_and_play_at_least_the_fixed_noise_level(shake_case, monkeypatch):
    """TV is told the misfit level, plug-and-play never less than :func:`solver_noise` (its learned
    prior regularises too little with the noise level of a fitting kernel)."""
    import unblur.blind
    import unblur.deconv

    y, _, k = shake_case
    told = {}

    def record(image, kernel, method, noise, **kwargs):
        told[method] = noise
        return image

    monkeypatch.setattr(MapEstimator, "estimate", lambda self, image: k)
    monkeypatch.setattr(unblur.deconv, "deconvolve", record)
    for level in (0.003, 0.05):
        monkeypatch.setattr(unblur.blind, "misfit_noise", lambda y, kernel, noise, space, level=level: level)
        deblur(y, method="map", quality="high", noise=0.01)
        assert told == {"tv": level, "pnp": max(level, solver_noise(0.01))}


def test_polyblur_path_for_mild_blur(data_root):
    img = io.read_image(data_root / "natural" / "kodak24" / "kodim05.png").to_tensor()[..., :200, :200]
    y = conv2d(img, gaussian_kernel(1.2), mode="same")
    res = deblur(y, method="auto", noise=0.0)
    assert res.method == "polyblur"
    assert psnr_shift_invariant(res.image, img) > psnr_shift_invariant(y, img) + 1


def test_polyblur_reports_the_noise_level_it_did_not_need(data_root):
    """Polyblur does not use the noise level: ``deblur`` estimates it only when it is read."""
    from unblur.estimate import estimate_noise_level

    img = io.read_image(data_root / "natural" / "kodak24" / "kodim05.png").to_tensor()[..., :200, :200]
    y = conv2d(img, gaussian_kernel(1.2), mode="same") + 0.01 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))
    res = deblur(y, method="polyblur")
    assert res._noise is None
    assert res.noise == float(estimate_noise_level(y)) and 0.008 < res.noise < 0.012
    assert deblur(y, method="polyblur", noise=0.03).noise == 0.03


def test_numpy_in_numpy_out():
    rng = np.random.default_rng(0)
    img = rng.random((90, 90)).astype(np.float32)
    res = deblur(img, method="map", kernel_size=9, iterations=1)
    assert isinstance(res.image, np.ndarray) and res.image.shape == img.shape
    assert isinstance(res.kernel, np.ndarray) and res.kernel.shape == (9, 9)


def test_errors():
    with pytest.raises(UserError, match="unknown method"):
        deblur(np.zeros((50, 50)), method="magic")
    with pytest.raises(UserError, match="too small"):
        deblur(np.zeros((30, 30)), method="map", kernel_size=31)


def test_saturation_reaches_the_estimator_and_the_final_step(shake_case):
    y, _, _ = shake_case
    y = y.clone()
    y[..., 100:110, 100:110] = 1.0  # a clipped light
    with _threads(2):
        res = deblur(y, method="map", kernel_size=15, saturation=0.99)
        # the estimator masks the light at the given level (not its default 0.97)
        k = MapEstimator(kernel_size=15, noise=res.noise, saturation=0.99).estimate(y)
    torch.testing.assert_close(res.kernel, k)
    from unblur.blind import LINEAR_MARGIN, misfit_noise
    from unblur.deconv import resolve_space

    k = crop_kernel(k)
    space = resolve_space(y, k, solver_noise(res.noise), "tv", margin=LINEAR_MARGIN)
    expected = deconvolve(y, k, method="tv", noise=misfit_noise(y, k, res.noise, space), space=space, saturation=0.99)
    torch.testing.assert_close(res.image, expected)
    for bad in (0.0, 1.5, -1):
        with pytest.raises(UserError, match="saturation"):
            deblur(y, method="map", saturation=bad)


def test_region_selection_finds_structure():
    y = torch.full((1, 1, 900, 900), 0.5)
    g = torch.Generator().manual_seed(0)
    y[..., 600:800, 100:300] = torch.rand(1, 1, 200, 200, generator=g)  # the only texture
    top, left = select_region(y, 256)
    assert top <= 600 and top + 256 >= 800 and left <= 100 and left + 256 >= 300


def test_large_images_are_estimated_on_a_downscaled_copy(data_root):
    # A crop enlarged twice (soft at the pixel level, like the enlarged photo of the ``large``
    # benchmark) blurred by a shake enlarged twice: estimated on the copy downscaled to
    # max_side, the kernel comes back at the input's scale. Regression value: similarity 0.92
    # (0.66 when estimated at full resolution).
    path = sorted((data_root / "natural" / "cbsd432").glob("*.jpg"))[125]
    img = torch.nn.functional.interpolate(io.read_image(path).to_tensor()[..., :300, :300], scale_factor=2, mode="bilinear")
    k = resize_kernel(camera_shake_kernel(size=25, rng=202), scale=2)
    y, _ = degrade(img, k, Degradation(sigma=0.01, bits=8), generator=1)
    with _threads(2):
        est = MapEstimator(kernel_size=61, max_side=300).estimate(y)
    assert est.shape == (61, 61) and abs(float(est.sum()) - 1) < 1e-5 and float(est.min()) >= 0
    assert kernel_similarity(est, k) > 0.85


def test_kernel_size_rule():
    assert default_kernel_size((300, 400)) == 61 and default_kernel_size((512, 512)) == 77 and default_kernel_size((100, 100)) == 25
    assert default_kernel_size((4000, 6000)) == 77


def test_projection_keeps_the_heaviest_connected_fragment():
    k = torch.zeros(21, 21)
    k[10, 6:15] = 1.0  # the main stroke (mass 9)
    k[2, 2] = k[2, 3] = 1.5  # a heavy but smaller fragment far away (mass 3)
    k[18, 18] = -0.5  # negative taps are clipped
    k[10, 15] = 0.05  # attached to the stroke, below max / threshold: removed
    p = MapEstimator(threshold=8).project(k)
    assert abs(float(p.sum()) - 1) < 1e-6 and float(p.min()) >= 0
    assert torch.count_nonzero(p) == 9 and torch.allclose(p[10, 6:15], torch.full((9,), 1 / 9))


def test_solver_noise_has_a_floor():
    from unblur.blind import BLIND_NOISE_SCALE, NOISE_FLOOR, solver_noise

    assert solver_noise(0.0) == BLIND_NOISE_SCALE * NOISE_FLOOR  # JPEG photos estimate ~0
    assert solver_noise(0.02) == BLIND_NOISE_SCALE * 0.02


def test_misfit_noise_grows_with_the_kernel_error(shake_case):
    # Known answers: the true kernel explains the photo up to its noise (1 %), so the solver is
    # told about that; wrong kernels leave a misfit and get more regularisation, up to the cap.
    from unblur.blind import MAX_MISFIT_SCALE, NOISE_FLOOR, misfit_noise

    y, _, k = shake_case
    assert 0.01 <= misfit_noise(y, k, 0.01, "linear") < 0.0125  # blurred in linear light
    for wrong in (k.t(), camera_shake_kernel(size=25, rng=7)):
        assert 0.018 < misfit_noise(y, wrong, 0.01, "linear") <= MAX_MISFIT_SCALE * 0.01
    assert misfit_noise(y, k.t(), 0.01, "stored") > misfit_noise(y, k, 0.01, "stored")
    assert misfit_noise(y, k, 0.0, "linear") >= 2 * NOISE_FLOOR  # JPEG photos estimate ~0


def test_kernel_step_recovers_kernel_from_true_latent(shake_case):
    # Known answer: given the true sharp image, the kernel step is a least-squares fit on the
    # observed pixels only; it must find the kernel from any starting value (a delta here).
    _, truth, _ = shake_case
    x = truth[:, :1]
    ks = 21
    k_true = camera_shake_kernel(size=17, rng=3)
    pad = (ks - 17) // 2
    k_true = torch.nn.functional.pad(k_true, (pad, pad, pad, pad))
    y = conv2d(x, k_true, mode="valid")
    y = y + 0.005 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    delta = torch.zeros(ks, ks)
    delta[ks // 2, ks // 2] = 1
    dom = ValidDomain(y, delta)
    latent = torch.zeros(1, 1, *dom.shape)
    latent[..., : x.shape[-2], : x.shape[-1]] = x
    k = MapEstimator(threshold=20).kernel_step(dom, latent, y, torch.ones_like(y), delta, cg_iterations=50)
    assert kernel_similarity(k, k_true) > 0.95


def test_cli_deblur_file_and_folder(tmp_path, shake_case, capsys):
    y, _, _ = shake_case
    small = y[..., :120, :120]
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.jpg"):
        io.write_image(src / name, small)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["deblur", str(src / "a.png"), "-o", str(tmp_path / "a.png"), "--kernel-size", "15",
                 "--method", "map", "--save-kernel", str(tmp_path / "k.png")]) == 0
    assert (tmp_path / "a.png").is_file() and (tmp_path / "k.png").is_file()
    assert "kernel" in capsys.readouterr().out
    assert main(["deblur", str(src), "-o", str(out), "--kernel-size", "15", "--method", "map"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert main(["deblur", str(tmp_path / "missing.png")]) == 2
    assert main(["deblur", str(src / "a.png"), "-o", str(tmp_path / "a.png")]) == 2  # output exists
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    assert main(["deblur", str(tmp_path / "tiny.png"), "--method", "map"]) == 2
    assert main(["deblur", str(src / "a.png"), "-o", str(tmp_path / "s.png"), "--saturation", "2"]) == 2
    assert main(["deblur", str(src / "a.png"), "-o", str(tmp_path / "s.png"), "--kernel-size", "15",
                 "--saturation", "0.99"]) == 0
