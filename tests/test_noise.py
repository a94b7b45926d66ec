"""Tests for unblur.blur.noise."""

import numpy as np
import pytest
import torch

from unblur.blur.noise import (
    add_gaussian_noise,
    add_poisson_gaussian_noise,
    clip,
    jpeg_compress,
    make_generator,
    poisson_gaussian_std,
    quantize,
    saturate,
)
from unblur.errors import UserError


def flat(value, shape=(2, 3, 128, 128)):
    return torch.full(shape, value, dtype=torch.float32)


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.2])
def test_gaussian_noise_std_and_mean(sigma):
    x = flat(0.5)
    y = add_gaussian_noise(x, sigma, generator=0)
    n = (y - x).double()
    assert abs(float(n.std()) - sigma) / sigma < 0.03
    assert abs(float(n.mean())) < 4 * sigma / np.sqrt(n.numel())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(add_gaussian_noise(x, 0.0, generator=0), x)


def test_gaussian_noise_determinism_and_generators():
    x = torch.rand(1, 1, 32, 32)
    a = add_gaussian_noise(x, 0.1, generator=3)
    b = add_gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    c = add_gaussian_noise(x, 0.1, generator=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # one generator continues its stream
    g = torch.Generator().manual_seed(3)
    first, second = add_gaussian_noise(x, 0.1, g), add_gaussian_noise(x, 0.1, g)
    assert torch.equal(first, a) and not torch.equal(second, a)
    # float64 input keeps its dtype; the noise is the same draw
    d = add_gaussian_noise(x.double(), 0.1, generator=3)
    assert d.dtype == torch.float64 and torch.allclose(d.float(), a, atol=1e-6)
    with pytest.raises(UserError):
        add_gaussian_noise(x[0], 0.1)
    with pytest.raises(UserError):
        add_gaussian_noise(x, -0.1)
    with pytest.raises(UserError):
        make_generator("seed")


def test_gaussian_noise_per_image_sigma():
    x = flat(0.5, (2, 1, 128, 128))
    y = add_gaussian_noise(x, [0.01, 0.1], generator=1)
    s = (y - x).double().std(dim=(1, 2, 3))
    assert torch.allclose(s, torch.tensor([0.01, 0.1], dtype=torch.float64), rtol=0.03)
    with pytest.raises(UserError):
        add_gaussian_noise(x, [0.1, 0.2, 0.3])


@pytest.mark.parametrize("level,photons,sigma", [(0.3, 100.0, 0.02), (0.8, 1000.0, 0.0), (0.05, 50.0, 0.01), (0.5, 765000.0, 0.0)])
def test_poisson_gaussian_unbiased_and_variance(level, photons, sigma):
    x = flat(level, (4, 1, 128, 128))
    y = add_poisson_gaussian_noise(x, photons, sigma, generator=11).double()
    var = level / photons + sigma**2
    n = y.numel()
    assert abs(float(y.mean()) - level) < 5 * np.sqrt(var / n)
    assert abs(float(y.var()) - var) / var < 0.03
    std = poisson_gaussian_std(x, photons, sigma)
    assert std.shape == x.shape and torch.allclose(std.double(), torch.full_like(std.double(), np.sqrt(var)), rtol=1e-5)


def test_poisson_gaussian_signal_dependence_and_limits():
    x = torch.linspace(0, 1, 256).repeat(1, 1, 256, 1)  # columns from 0 to 1
    y = add_poisson_gaussian_noise(x, 200.0, 0.0, generator=2)
    std = (y - x).std(dim=2).flatten()
    assert float(std[:32].mean()) < float(std[-32:].mean())
    # zero signal with no read noise stays exactly zero; counts are multiples of 1/lambda
    z = add_poisson_gaussian_noise(torch.zeros(1, 1, 8, 8), 50.0, 0.0, generator=0)
    assert torch.equal(z, torch.zeros(1, 1, 8, 8))
    k = add_poisson_gaussian_noise(flat(0.2, (1, 1, 16, 16)), 50.0, 0.0, generator=0) * 50
    assert torch.allclose(k, k.round(), atol=1e-4)
    # photons=None or inf: Gaussian only, same draw as add_gaussian_noise
    x = flat(0.4, (1, 1, 16, 16))
    g_only = add_gaussian_noise(x, 0.05, generator=5)
    assert torch.equal(add_poisson_gaussian_noise(x, None, 0.05, generator=5), g_only)
    assert torch.equal(add_poisson_gaussian_noise(x, float("inf"), 0.05, generator=5), g_only)
    assert torch.equal(add_poisson_gaussian_noise(x, 30.0, 0.01, generator=5), add_poisson_gaussian_noise(x, 30.0, 0.01, generator=5))
    assert torch.allclose(poisson_gaussian_std(x, None, 0.05), torch.full_like(x, 0.05))
    with pytest.raises(UserError):
        add_poisson_gaussian_noise(x, 0.0, 0.01)


def test_quantize_levels():
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    for bits in (1, 4, 8):
        q = quantize(x, bits)
        L = 2**bits - 1
        codes = q * L
        assert torch.allclose(codes, codes.round(), atol=1e-4)
        assert float(q.min()) >= 0 and float(q.max()) <= 1
        assert len(torch.unique((codes).round())) <= L + 1
        inside = (x >= 0) & (x <= 1)
        assert float((q - x)[inside].abs().max()) <= 0.5 / L + 1e-6
    assert len(torch.unique(quantize(torch.linspace(0, 1, 1000).view(1, 1, 1, -1), 3))) == 8
    assert float(quantize(x, 8, clip=False).max()) > 1


def test_saturate_and_clip():
    x = torch.linspace(-0.2, 1.0, 50).view(1, 1, 5, 10)
    s = saturate(x, gain=2.0, level=1.0)
    assert float(s.max()) == 1.0
    assert torch.allclose(s[x < 0.5], 2 * x[x < 0.5])
    assert int((s == 1.0).sum()) == int((x >= 0.5).sum())
    assert float(saturate(x, 1.0, 0.8).max()) == pytest.approx(0.8)
    c = clip(x)
    assert float(c.min()) == 0.0 and float(c.max()) == 1.0
    assert torch.equal(clip(x, 0.2, 0.4), x.clamp(0.2, 0.4))


@pytest.mark.parametrize("channels", [1, 3, 2])
def test_jpeg_shape_range_and_fidelity(channels):
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(2, channels, 8, 8, generator=g), size=(48, 40), mode="bilinear")
    y = jpeg_compress(base, 90)
    assert y.shape == base.shape and y.dtype == base.dtype
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-3)
    err_hi = float((y - base).abs().mean())
    err_lo = float((jpeg_compress(base, 10) - base).abs().mean())
    assert err_hi < 0.03 and err_hi < err_lo
    assert torch.equal(jpeg_compress(base, 90), y)  # deterministic
    with pytest.raises(UserError):
        jpeg_compress(base, 0)


