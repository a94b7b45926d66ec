"""Tests of unblur.metrics: PSNR, SSIM, evaluation up to shift and kernel metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import fourier_shift, gaussian_filter
from scipy.signal import correlate
from skimage.metrics import structural_similarity

from unblur import metrics as M
from unblur.errors import UserError


def smooth_image(shape, seed=0, sigma=2.0):
    """A smooth random image in [0, 1] with structure at a few pixels' scale."""
    rng = np.random.default_rng(seed)
    a = gaussian_filter(rng.random(shape), (sigma, sigma) + (0,) * (len(shape) - 2))
    a = (a - a.min()) / (a.max() - a.min())
    return 0.1 + 0.8 * a


def sk_ssim(x, y, channel_axis=None):
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0,
                                 channel_axis=channel_axis)


# ---------------------------------------------------------------------------- PSNR
def test_psnr_identical_is_inf():
    a = smooth_image((32, 32))
    assert M.psnr(a, a) == math.inf


def test_psnr_constant_error():
    a = smooth_image((40, 30, 3))
    assert M.psnr(a + 0.1, a) == pytest.approx(20.0, abs=1e-9)
    assert M.psnr(a - 0.01, a) == pytest.approx(40.0, abs=1e-9)
    # data_range: an error of 25.5 on a 0..255 scale is 20 dB too
    assert M.psnr(255 * a + 25.5, 255 * a, data_range=255) == pytest.approx(20.0, abs=1e-9)


def test_psnr_gaussian_noise():
    rng = np.random.default_rng(1)
    a = np.full((256, 256), 0.5)
    for sigma in (0.01, 0.05):
        y = a + sigma * rng.standard_normal(a.shape)
        assert M.psnr(y, a) == pytest.approx(-20 * math.log10(sigma), abs=0.1)


def test_psnr_numpy_torch_and_batch():
    a = smooth_image((24, 20, 3), seed=2)
    b = smooth_image((24, 20, 3), seed=3)
    v = M.psnr(b, a)
    assert isinstance(v, float)
    ta = torch.from_numpy(a).permute(2, 0, 1).float()
    tb = torch.from_numpy(b).permute(2, 0, 1).float()
    v3 = M.psnr(tb, ta)  # (C, H, W) tensor: a single image
    assert isinstance(v3, float)
    assert v3 == pytest.approx(v, abs=1e-4)
    batch = torch.stack([tb, ta, tb])
    out = M.psnr(batch, torch.stack([ta, ta, ta]))
    assert isinstance(out, torch.Tensor) and out.shape == (3,)
    assert out[0].item() == pytest.approx(v, abs=1e-4)
    assert math.isinf(out[1].item())
    # a reference of batch size 1 is compared with every image
    out1 = M.psnr(batch, ta[None])
    assert torch.allclose(out1[[0, 2]], out[[0, 2]])


def test_psnr_uint8_input_is_scaled():
    a = (smooth_image((16, 16)) * 255).round().astype(np.uint8)
    b = a.copy()
    b[:] = np.clip(b.astype(int) + 1, 0, 255)
    assert M.psnr(b, a) == pytest.approx(20 * math.log10(255), abs=0.05)


def test_shape_mismatch_raises():
    with pytest.raises(UserError):
        M.psnr(np.zeros((10, 10)), np.zeros((10, 11)))
    with pytest.raises(UserError):
        M.ssim(np.zeros((10, 10)), np.zeros((10, 10)))  # smaller than the 11x11 window


# ---------------------------------------------------------------------------- SSIM
def test_ssim_identical_is_one():
    a = smooth_image((40, 40, 3))
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_skimage_gray():
    rng = np.random.default_rng(4)
    a = smooth_image((64, 80), seed=4)
    b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    c = gaussian_filter(a, 1.5) * 0.9 + 0.05
    for y in (b, c):
        assert M.ssim(y, a) == pytest.approx(sk_ssim(y, a), abs=1e-6)


def test_ssim_matches_skimage_rgb_float32():
    rng = np.random.default_rng(5)
    a = smooth_image((50, 70, 3), seed=5).astype(np.float32)
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    ref = sk_ssim(b, a, channel_axis=-1)
    assert M.ssim(b, a) == pytest.approx(ref, abs=1e-3)
    # colour SSIM is the mean of the per-channel SSIMs
    per_channel = np.mean([M.ssim(b[..., i], a[..., i]) for i in range(3)])
    assert M.ssim(b, a) == pytest.approx(per_channel, abs=1e-9)


def test_ssim_batch():
    a = torch.from_numpy(smooth_image((2, 1, 32, 32), seed=6)).float()
    b = a.flip(-1)
    out = M.ssim(b, a)
    assert out.shape == (2,)
    assert out[1].item() == pytest.approx(M.ssim(b[1], a[1]), abs=1e-9)


# ---------------------------------------------------------------------------- up to shift
def test_crop_border_layouts():
    a = np.arange(10 * 12 * 3).reshape(10, 12, 3)
    assert M.crop_border(a, 2).shape == (6, 8, 3)
    assert np.array_equal(M.crop_border(a, 2), a[2:8, 2:10])
    assert M.crop_border(a[..., 0], 3).shape == (4, 6)
    t = torch.zeros(2, 3, 10, 12)
    assert M.crop_border(t, 1).shape == (2, 3, 8, 10)
    assert M.crop_border(t, 0) is t
    with pytest.raises(UserError):
        M.crop_border(a, 5)


def test_integer_shift_is_found():
    ref = smooth_image((96, 96), seed=7)
    x = np.roll(ref, (3, -2), axis=(0, 1))  # x[i, j] = ref[i - 3, j + 2]
    al = M.align_to_reference(x, ref, max_shift=6)
    assert al.shift == pytest.approx((3.0, -2.0), abs=1e-6)
    assert al.x.shape == al.ref.shape == (96 - 16, 96 - 16)
    np.testing.assert_allclose(al.x, al.ref, atol=1e-6)
    value, shift = M.psnr_shift_invariant(x, ref, max_shift=6, return_shift=True)
    assert shift == pytest.approx((3.0, -2.0), abs=1e-6)
    assert value > 100  # exact match up to rounding
    # with noise: finite, far above the plain PSNR
    rng = np.random.default_rng(8)
    xn = x + 0.01 * rng.standard_normal(x.shape)
    v_si = M.psnr_shift_invariant(xn, ref, max_shift=6)
    assert v_si == pytest.approx(40.0, abs=0.5)
    assert v_si > M.psnr(xn, ref) + 15
    assert M.ssim_shift_invariant(xn, ref, max_shift=6) > M.ssim(xn, ref) + 0.2


def test_half_pixel_shift_is_found():
    big = smooth_image((160, 160), seed=9, sigma=2.5)
    moved = np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(big), (2.5, -1.5))))
    ref, x = big[32:-32, 32:-32], moved[32:-32, 32:-32]  # away from the periodic wrap-around
    v_sub, shift = M.psnr_shift_invariant(x, ref, max_shift=5, return_shift=True)
    assert shift == pytest.approx((2.5, -1.5), abs=0.05)
    v_int = M.psnr_shift_invariant(x, ref, max_shift=5, subpixel=False)
    assert v_sub > v_int + 15
    assert v_int > M.psnr(x, ref) + 5
    s_sub = M.ssim_shift_invariant(x, ref, max_shift=5)
    assert s_sub > 0.999


def test_subpixel_never_worse_than_integer():
    rng = np.random.default_rng(10)
    ref = smooth_image((64, 64), seed=10)
    x = rng.random((64, 64))  # unrelated image: whatever the shift, subpixel cannot lose
    assert M.psnr_shift_invariant(x, ref, max_shift=3) >= \
        M.psnr_shift_invariant(x, ref, max_shift=3, subpixel=False) - 1e-9


def test_shift_batch_and_torch():
    ref = smooth_image((80, 80), seed=11)
    xs = np.stack([np.roll(ref, (1, 2), axis=(0, 1)), np.roll(ref, (-3, 0), axis=(0, 1))])
    x = torch.from_numpy(xs)[:, None].float()
    r = torch.from_numpy(np.stack([ref, ref]))[:, None].float()
    value, shift = M.psnr_shift_invariant(x, r, max_shift=4, return_shift=True)
    assert value.shape == (2,) and shift.shape == (2, 2)
    assert torch.allclose(shift.float(), torch.tensor([[1.0, 2.0], [-3.0, 0.0]]), atol=1e-4)
    s = M.ssim_shift_invariant(x, r, max_shift=4)
    assert s.shape == (2,) and bool((s > 0.999).all())
    al = M.align_to_reference(x, r, max_shift=4, border=6)
    assert al.x.shape == al.ref.shape == (2, 1, 68, 68)


def test_align_bad_border_raises():
    a = smooth_image((40, 40))
    with pytest.raises(UserError):
        M.align_to_reference(a, a, max_shift=5, border=3)


# ---------------------------------------------------------------------------- kernels
def random_kernel(shape, seed):
    k = np.random.default_rng(seed).random(shape) ** 3
    return k / k.sum()


def test_kernel_similarity_identical_and_shifted():
    k = random_kernel((9, 7), 0)
    assert M.kernel_similarity(k, k) == pytest.approx(1.0, abs=1e-12)
    big = np.zeros((17, 15))
    big[5:14, 1:8] = k  # the same kernel, off-centre in a larger array
    assert M.kernel_similarity(big, k) == pytest.approx(1.0, abs=1e-12)
    assert M.kernel_similarity(k, big) == pytest.approx(1.0, abs=1e-12)
    assert M.kernel_similarity(3 * k, k) == pytest.approx(1.0, abs=1e-12)  # scale invariant
    assert M.kernel_error(k, k) == 0.0
    assert M.kernel_error(big, k) == pytest.approx(0.0, abs=1e-12)
    assert M.kernel_error(k, big) == pytest.approx(0.0, abs=1e-12)


def test_kernel_similarity_different_kernels():
    k1 = random_kernel((9, 7), 1)
    k2 = random_kernel((5, 11), 2)
    s12 = M.kernel_similarity(k1, k2)
    assert 0 < s12 < 0.99
    assert M.kernel_similarity(k2, k1) == pytest.approx(s12, abs=1e-12)  # symmetric
    brute = correlate(k2, k1, mode="full").max() / (np.linalg.norm(k1) * np.linalg.norm(k2))
    assert s12 == pytest.approx(brute, abs=1e-12)
    assert M.kernel_error(k1, k2) > 0.1


def test_kernel_error_matches_brute_force():
    k1 = random_kernel((5, 5), 3)
    k2 = random_kernel((7, 3), 4)
    best = math.inf
    for s in range(-4, 7):
        for t in range(-4, 3):
            a = np.zeros((25, 25))
            b = np.zeros((25, 25))
            a[10 + s:15 + s, 10 + t:15 + t] = k1  # k1[i, j] on top of k2[i + s, j + t]
            b[10:17, 10:13] = k2
            best = min(best, np.linalg.norm(a - b) / np.linalg.norm(k2))
    assert M.kernel_error(k1, k2) == pytest.approx(best, abs=1e-12)
    # normalize=False compares raw values
    assert M.kernel_error(2 * k1, k1) == pytest.approx(0.0, abs=1e-12)
    assert M.kernel_error(2 * k1, k1, normalize=False) == pytest.approx(1.0, abs=1e-12)


def test_kernel_metrics_torch_and_batch():
    k = random_kernel((7, 7), 5)
    kt = torch.from_numpy(k).float()
    assert isinstance(M.kernel_similarity(kt, k), float)
    assert M.kernel_similarity(kt, k) == pytest.approx(1.0, abs=1e-6)
    other = torch.from_numpy(random_kernel((7, 7), 6)).float()
    batch = torch.stack([kt, other])[:, None]  # (2, 1, 7, 7)
    sim = M.kernel_similarity(batch, kt)
    err = M.kernel_error(batch, kt)
    assert sim.shape == err.shape == (2,)
    assert sim[0].item() == pytest.approx(1.0, abs=1e-6) and sim[1].item() < 0.99
    assert err[0].item() == pytest.approx(0.0, abs=1e-6) and err[1].item() > 0.05
    assert math.isnan(M.kernel_similarity(np.zeros((3, 3)), k))
    with pytest.raises(UserError):
        M.kernel_error(k, np.zeros((3, 3)))


# -- band energy ratio ------------------------------------------------------------------------------
def test_band_energy_ratio_known_answers():
    rng = np.random.default_rng(3)
    y = rng.random((64, 81))
    assert M.band_energy_ratio(y, y) == pytest.approx(1.0)
    # doubling the deviation from the mean quadruples the energy; an offset adds none
    assert M.band_energy_ratio(0.3 + y.mean() + 2 * (y - y.mean()), y) == pytest.approx(4.0)
    # the same as summing the full two-sided spectrum over the band
    x = rng.random((64, 81))
    win = np.outer(np.hanning(64), np.hanning(81))
    radius = np.hypot(np.fft.fftfreq(64)[:, None], np.fft.fftfreq(81)[None])
    band = (radius >= 0.01) & (radius <= 0.45)
    def energy(a):
        return (np.abs(np.fft.fft2((a - a.mean()) * win)) ** 2)[band].sum()
    assert M.band_energy_ratio(x, y) == pytest.approx(energy(x) / energy(y))
    # blurring removes band energy
    assert M.band_energy_ratio(gaussian_filter(y, 2.0), y) < 0.2


def test_band_energy_ratio_batched_and_colour():
    x = torch.rand(2, 3, 40, 50)
    out = M.band_energy_ratio(x, x.mean(1, keepdim=True).expand_as(x) * 0.5 + 0.25)
    assert out.shape == (2,)
    torch.testing.assert_close(out, torch.full((2,), 4.0, dtype=out.dtype))
