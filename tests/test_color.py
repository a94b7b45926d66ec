"""Tests for unblur.color: the sRGB transfer function."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unblur.color import linear_to_srgb, srgb_to_linear


def test_known_values():
    assert srgb_to_linear(0.0) == 0.0
    assert srgb_to_linear(1.0) == pytest.approx(1.0, abs=1e-15)
    assert linear_to_srgb(0.0) == 0.0
    assert linear_to_srgb(1.0) == pytest.approx(1.0, abs=1e-15)
    assert srgb_to_linear(0.5) == pytest.approx(0.21404114, abs=1e-7)
    assert linear_to_srgb(0.21404114048) == pytest.approx(0.5, abs=1e-9)
    # the linear segment below the knee
    assert srgb_to_linear(0.04) == pytest.approx(0.04 / 12.92, rel=1e-12)
    assert linear_to_srgb(0.003) == pytest.approx(0.003 * 12.92, rel=1e-12)
    # the two pieces meet (to the precision of the published constants)
    assert srgb_to_linear(0.04045) == pytest.approx(srgb_to_linear(0.04045 + 1e-12), abs=1e-8)


def test_round_trip_float64():
    x = np.linspace(0.0, 1.0, 100_001)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-6
    assert np.abs(srgb_to_linear(linear_to_srgb(x)) - x).max() < 1e-6
    t = torch.from_numpy(x)
    assert (linear_to_srgb(srgb_to_linear(t)) - t).abs().max() < 1e-6


def test_monotone_and_clamped():
    x = np.linspace(-0.5, 1.5, 2001)
    for f in (srgb_to_linear, linear_to_srgb):
        y = f(x)
        assert np.all(np.diff(y) >= 0)
        assert y.min() == 0.0 and y.max() == pytest.approx(1.0)
        assert np.all(y[x < 0] == 0) and np.all(y[x > 1] == y[-1])


def test_types_and_dtypes():
    a32 = np.linspace(0, 1, 7, dtype=np.float32).reshape(7, 1)
    out = srgb_to_linear(a32)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (7, 1)
    assert linear_to_srgb(np.linspace(0, 1, 5)).dtype == np.float64
    u8 = srgb_to_linear(np.array([0, 128, 255], np.uint8))
    assert u8.dtype == np.float32 and u8[-1] == pytest.approx(1.0)
    assert isinstance(srgb_to_linear(0.5), float) and isinstance(linear_to_srgb(1), float)
    t = torch.rand(1, 3, 4, 5)
    out = srgb_to_linear(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == t.shape
    np.testing.assert_allclose(out.numpy(), srgb_to_linear(t.numpy().astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(
        linear_to_srgb(t).numpy(), linear_to_srgb(t.numpy().astype(np.float64)), atol=1e-6
    )
    assert linear_to_srgb(t.to(torch.float64)).dtype == torch.float64


def test_torch_gradients_are_finite():
    x = torch.tensor(
        [-0.1, 0.0, 0.001, 0.0031308, 0.01, 0.04045, 0.5, 1.0, 1.2], dtype=torch.float64
    )
    for f in (srgb_to_linear, linear_to_srgb):
        xr = x.clone().requires_grad_(True)
        f(xr).sum().backward()
        assert torch.isfinite(xr.grad).all()
        assert xr.grad[0] == 0 and xr.grad[-1] == 0  # clamped
        assert (xr.grad[1:-1] > 0).all()
    inner = torch.tensor([0.2, 0.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(srgb_to_linear, (inner,))
    assert torch.autograd.gradcheck(linear_to_srgb, (inner,))
