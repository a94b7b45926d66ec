"""Convolution operators: scipy agreement per mode, exact adjoints, batching, gradients."""
import numpy as np
import pytest
import scipy.signal
import torch

from unblur.blur import Blur, blur, conv2d, conv2d_adjoint, fast_length, output_shape

MODES = ["valid", "same", "circular"]
METHODS = ["fft", "direct"]


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


def _scipy_reference(x, k, mode, pad="reflect"):
    """Reference blur of a 2-D array with scipy, using the documented conventions."""
    kh, kw = k.shape
    if mode == "valid":
        return scipy.signal.convolve2d(x, k, mode="valid")
    if mode == "same":
        np_mode = {"reflect": "reflect", "replicate": "edge", "zeros": "constant"}[pad]
        xp = np.pad(x, ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2)), mode=np_mode)
        return scipy.signal.convolve2d(xp, k, mode="valid")
    # circular: y[i] = sum_j k[j] x[(i + c - j) mod H]
    H, W = x.shape
    xp = np.pad(x, ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2)), mode="wrap")
    return scipy.signal.convolve2d(xp, k, mode="valid")[:H, :W]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kshape", [(5, 5), (7, 4), (1, 9), (15, 15)])
def test_matches_scipy(mode, method, kshape):
    x = _rand(1, 1, 23, 31)
    k = _rand(*kshape, seed=1)
    y = conv2d(x, k, mode=mode, method=method)
    ref = _scipy_reference(x[0, 0].numpy(), k.numpy(), mode)
    assert y.shape[-2:] == ref.shape == output_shape((23, 31), kshape, mode)
    np.testing.assert_allclose(y[0, 0].numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pad", ["reflect", "replicate", "zeros"])
def test_same_padding_modes_match_scipy(pad):
    x = _rand(1, 1, 20, 20)
    k = _rand(5, 3, seed=2)
    y = conv2d(x, k, mode="same", pad=pad)
    np.testing.assert_allclose(y[0, 0].numpy(), _scipy_reference(x[0, 0].numpy(), k.numpy(), "same", pad), atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pad", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize("kshape", [(9, 9), (6, 5)])
def test_adjoint_identity(mode, method, pad, kshape):
    x = _rand(2, 3, 32, 27, seed=3)
    k = _rand(*kshape, seed=4)
    Ax = conv2d(x, k, mode=mode, pad=pad, method=method)
    y = _rand(*Ax.shape, seed=5)
    ATy = conv2d_adjoint(y, k, mode=mode, pad=pad, method=method)
    assert ATy.shape == x.shape
    lhs, rhs = (Ax * y).sum(), (x * ATy).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-12


def test_batched_kernels_apply_per_image():
    x = _rand(3, 2, 30, 30)
    ks = _rand(3, 1, 7, 7, seed=7)
    y = conv2d(x, ks, mode="valid")
    for b in range(3):
        np.testing.assert_allclose(y[b : b + 1].numpy(), conv2d(x[b : b + 1], ks[b, 0]).numpy(), atol=1e-12)
    kc = _rand(3, 2, 7, 7, seed=8)
    yc = conv2d(x, kc, mode="circular")
    np.testing.assert_allclose(yc[1, 1].numpy(), conv2d(x[1:2, 1:2], kc[1, 1], mode="circular")[0, 0].numpy(), atol=1e-12)


def test_delta_kernel_is_identity_and_constant_preserved():
    x = _rand(1, 3, 16, 16)
    delta = torch.zeros(5, 5, dtype=torch.float64)
    delta[2, 2] = 1
    for mode in MODES:
        y = conv2d(x, delta, mode=mode)
        expected = x[..., 2:-2, 2:-2] if mode == "valid" else x
        torch.testing.assert_close(y, expected)
    box = torch.ones(9, 9, dtype=torch.float64) / 81
    torch.testing.assert_close(conv2d(torch.full((1, 1, 20, 20), 0.3, dtype=torch.float64), box), torch.full((1, 1, 12, 12), 0.3, dtype=torch.float64))


def test_fft_and_direct_agree_float32():
    x = _rand(2, 3, 64, 48, dtype=torch.float32)
    k = _rand(7, 7, seed=9, dtype=torch.float32)
    k = k / k.sum()
    for mode in MODES:
        a, b = conv2d(x, k, mode=mode, method="fft"), conv2d(x, k, mode=mode, method="direct")
        assert (a - b).abs().max() < 1e-5


def test_gradcheck():
    x = _rand(1, 1, 10, 10).requires_grad_()
    k = _rand(3, 3, seed=1).requires_grad_()
    for mode in MODES:
        assert torch.autograd.gradcheck(lambda a, b, mode=mode: conv2d(a, b, mode=mode, method="fft"), (x, k))


def test_numpy_wrapper_and_module():
    img = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    k = np.ones((3, 3)) / 9
    out = blur(img, k, mode="same")
    assert isinstance(out, np.ndarray) and out.shape == img.shape and out.dtype == np.float32
    op = Blur(k, mode="valid")
    x = torch.from_numpy(np.moveaxis(img, -1, 0))[None]
    assert op(x).shape == (1, 3, 18, 22) and op.output_shape((20, 24)) == (18, 22)
    assert op.A_normal(x).shape == x.shape


def test_errors():
    x = torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="boundary mode"):
        conv2d(x, torch.ones(3, 3), mode="full")
    with pytest.raises(ValueError, match="larger than the image"):
        conv2d(x, torch.ones(9, 9))
    with pytest.raises(ValueError, match="broadcast"):
        conv2d(torch.rand(2, 1, 8, 8), torch.ones(3, 1, 3, 3))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        conv2d(torch.rand(8, 8), torch.ones(3, 3))


def test_fast_length():
    assert fast_length(1000) == 1000 and fast_length(1021) == 1024 and fast_length(97) == 100
    assert fast_length(218) == 240 and fast_length(1) == 2  # even: 225 is 5-smooth but odd


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x, k = _rand(1, 3, 40, 40, dtype=torch.float32), _rand(9, 9, seed=1, dtype=torch.float32)
    for mode in MODES:
        torch.testing.assert_close(conv2d(x.cuda(), k.cuda(), mode=mode).cpu(), conv2d(x, k, mode=mode), atol=1e-5, rtol=1e-5)
