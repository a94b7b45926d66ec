"""Tests of unblur.estimate.estimate_noise_level."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from unblur.errors import UserError
from unblur.estimate import estimate_noise_level

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "natural"
COLOR = ["101087.png", "102061.png", "108070.png"]
GRAY = ["test002.png", "test005.png"]


def load(folder, name):
    path = DATA / folder / name
    if not path.exists():
        pytest.skip(f"test data {path} not available")
    a = np.asarray(Image.open(path), dtype=np.float64) / 255
    h, w = a.shape[:2]
    return a[(h - 256) // 2:(h + 256) // 2, (w - 256) // 2:(w + 256) // 2]  # 256 x 256, for speed


def noisy(a, sigma, rng, quantise=False):
    y = np.clip(a + sigma * rng.standard_normal(a.shape), 0, 1)
    return np.round(y * 255).astype(np.uint8) if quantise else y


def smooth_image(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.random(shape), (3, 3) + (0,) * (len(shape) - 2))
    return 0.2 + 0.6 * (a - a.min()) / (a.max() - a.min())


@pytest.mark.parametrize("sigma", [0.005, 0.02, 0.05])
@pytest.mark.parametrize("channels", [1, 3])
def test_synthetic_smooth_image(sigma, channels):
    rng = np.random.default_rng(int(sigma * 1000) + channels)
    shape = (96, 128) if channels == 1 else (96, 128, 3)
    est = estimate_noise_level(noisy(smooth_image(shape), sigma, rng))
    assert isinstance(est, float)
    assert abs(est / sigma - 1) < 0.1


def test_large_images_are_estimated_on_a_mosaic_of_blocks(monkeypatch):
    """Above ``MAX_PIXELS`` a mosaic of evenly spread blocks stands in for the image."""
    import unblur.estimate.noise_level as nl

    monkeypatch.setattr(nl, "MAX_PIXELS", 200 * 200)
    monkeypatch.setattr(nl, "_BLOCK", 50)
    y = noisy(smooth_image((300, 700, 3)), 0.02, np.random.default_rng(5))
    mosaic = nl._sample_blocks(torch.from_numpy(y).permute(2, 0, 1))
    assert mosaic.shape == (3, 200, 200)  # 4 x 4 blocks of 50 px
    torch.testing.assert_close(mosaic[:, :50, :50], torch.from_numpy(y[:50, :50]).permute(2, 0, 1))
    torch.testing.assert_close(mosaic[:, -50:, -50:], torch.from_numpy(y[-50:, -50:]).permute(2, 0, 1))
    est = estimate_noise_level(y)
    assert abs(est / 0.02 - 1) < 0.1
    monkeypatch.setattr(nl, "MAX_PIXELS", 10**9)
    assert abs(est / estimate_noise_level(y) - 1) < 0.1


def test_noise_free_constant_image_is_zero():
    assert estimate_noise_level(np.full((64, 64), 0.5)) == 0.0
    assert estimate_noise_level(np.ones((40, 40, 3))) == 0.0  # fully saturated


def test_small_images_fall_back():
    rng = np.random.default_rng(0)
    for n in (4, 12, 24):
        est = estimate_noise_level(0.5 + 0.02 * rng.standard_normal((n, n)))
        assert 0.0 < est < 0.1
    with pytest.raises(UserError):
        estimate_noise_level(np.zeros((1, 10)))
    with pytest.raises(UserError):
        estimate_noise_level(np.full((10, 10), np.nan))


def test_batch_torch_and_uint8():
    rng = np.random.default_rng(1)
    a = smooth_image((2, 3, 96, 96), seed=1)
    a[1] = smooth_image((3, 96, 96), seed=2)
    y = np.clip(a + np.array([0.01, 0.03])[:, None, None, None] * rng.standard_normal(a.shape), 0, 1)
    t = torch.from_numpy(y).float()
    out = estimate_noise_level(t)
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    assert out[0].item() == pytest.approx(0.01, rel=0.1)
    assert out[1].item() == pytest.approx(0.03, rel=0.1)
    assert estimate_noise_level(t[1]) == pytest.approx(out[1].item(), rel=1e-9)
    hwc = np.moveaxis(y[1], 0, -1)
    assert estimate_noise_level(hwc) == pytest.approx(out[1].item(), rel=1e-3)
    as8 = np.round(hwc * 255).astype(np.uint8)  # integer input is scaled to [0, 1]
    assert estimate_noise_level(as8) == pytest.approx(0.03, rel=0.1)


@pytest.mark.parametrize("quantise", [False, True], ids=["float", "8bit"])
def test_blurred_natural_images(quantise):
    """Within 20 % of the true sigma on Gaussian-blurred photos (measured: within about 4 %)."""
    rng = np.random.default_rng(2024 + quantise)
    images = [(load("cbsd68", n), (0, 0)) for n in COLOR] + [(load("bsd68_gray", n), ()) for n in GRAY]
    errors = []
    for i, (a, extra) in enumerate(images):
        blur = (1.5, 2.0, 3.0)[i % 3]
        b = gaussian_filter(a, (blur, blur) + extra[:1])
        for sigma in (0.005, 0.01, 0.02, 0.05):
            est = estimate_noise_level(noisy(b, sigma, rng, quantise))
            errors.append(est / sigma - 1)
    errors = np.array(errors)
    assert np.abs(errors).max() < 0.2, errors
    assert np.abs(errors).mean() < 0.05, errors


def test_sharp_color_images():
    """Sharp colour photos: the channel correlation keeps texture out of the noise estimate."""
    rng = np.random.default_rng(7)
    for name in COLOR[:2]:
        a = load("cbsd68", name)
        for sigma in (0.01, 0.05):
            est = estimate_noise_level(noisy(a, sigma, rng, quantise=True))
            assert abs(est / sigma - 1) < 0.2
