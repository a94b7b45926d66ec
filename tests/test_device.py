"""Device battery: every public operation keeps its input's device and, on a GPU, agrees with the CPU.

On a machine without CUDA only the ``cpu`` cases run (device preservation); where a GPU is present
the ``cuda`` cases also compare each result with the CPU's.
"""
import pytest
import torch
from skimage import data

import unblur
from unblur.blur import kernels
from unblur.blur.synth import Degradation, degrade
from unblur.deconv import METHODS
from unblur.metrics import kernel_similarity, psnr

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sharp(size: int = 96) -> torch.Tensor:
    img = torch.from_numpy(data.astronaut()[100:100 + size, 150:150 + size].copy()).float() / 255
    return img.permute(2, 0, 1)[None]


def _blurred(size: int = 96, noise: float = 0.01):
    k = kernels.camera_shake_kernel(size=9, rng=3)
    y, _ = degrade(_sharp(size), k, Degradation(sigma=noise), generator=0)
    return y, k


def _agree(a: torch.Tensor, b: torch.Tensor, min_psnr: float = 45.0):
    """``a`` (on the device) matches the CPU result ``b`` up to float rounding."""
    assert float(psnr(a.cpu().clamp(0, 1), b.clamp(0, 1))) > min_psnr


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_deconvolve_keeps_device(device, method):
    y, k = _blurred()
    ref = unblur.deconvolve(y, k, method=method, noise=0.01)
    out = unblur.deconvolve(y.to(device), k.to(device), method=method, noise=0.01)
    assert out.device.type == device and out.shape == y.shape and out.dtype == torch.float32
    _agree(out, ref, 40.0 if method.startswith("pnp") else 45.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["map", "polyblur"])
def test_deblur_keeps_device(device, method):
    y, _ = _blurred(128)
    ref = unblur.deblur(y, method=method, kernel_size=11)
    res = unblur.deblur(y.to(device), method=method, kernel_size=11)
    assert res.image.device.type == device and res.kernel.device.type == device
    assert res.image.shape == y.shape
    # the estimate may take another path on tiny float differences; the kernels must still agree
    assert float(kernel_similarity(res.kernel.cpu(), ref.kernel)) > 0.9


@pytest.mark.parametrize("device", DEVICES)
def test_denoise_and_estimators_keep_device(device):
    y, _ = _blurred(96, noise=0.05)
    out = unblur.denoise(y.to(device), 0.05)
    assert out.device.type == device
    _agree(out, unblur.denoise(y, 0.05), 40.0)
    sigma = unblur.estimate_noise_level(y.to(device))
    assert abs(float(sigma) - float(unblur.estimate_noise_level(y))) < 1e-4
    est, ref = unblur.estimate_gaussian_blur(y.to(device)), unblur.estimate_gaussian_blur(y)
    assert est.sigma_major == pytest.approx(ref.sigma_major, rel=1e-3)
    assert est.sigma_minor == pytest.approx(ref.sigma_minor, rel=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_synthesis_and_kernel_tools_keep_device(device):
    k = kernels.camera_shake_kernel(size=15, rng=1)
    x = _sharp(64).to(device)
    y, truth = degrade(x, k.to(device), Degradation(sigma=0.01, photons=100.0, read_sigma=0.002), generator=5)
    y_cpu, _ = degrade(x.cpu(), k, Degradation(sigma=0.01, photons=100.0, read_sigma=0.002), generator=5)
    assert y.device.type == device and truth.device.type == device and y.shape == y_cpu.shape
    kd = k.to(device)
    for f in (kernels.center_kernel, kernels.normalize_kernel, kernels.flip_kernel):
        assert f(kd).device.type == device
    assert kernels.resize_kernel(kd, scale=0.5).device.type == device
    assert kernels.kernel_spread(kd) == pytest.approx(kernels.kernel_spread(k), rel=1e-5)
