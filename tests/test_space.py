"""The blur's tone space: linear light or the stored values (unblur.deconv.space)."""
import numpy as np
import pytest
import skimage.data
import torch

from unblur.blur.kernels import camera_shake_kernel
from unblur.blur.synth import Degradation, degrade
from unblur.deconv import deconvolve
from unblur.deconv.space import blur_space, linear_noise
from unblur.errors import UserError
from unblur.metrics import psnr


@pytest.fixture(scope="module")
def kernel():
    return camera_shake_kernel(size=15, rng=3)


def _case(linear: bool, kernel, seed=0):
    sharp = torch.from_numpy(skimage.data.astronaut()[100:300, 150:350].astype(np.float32) / 255).permute(2, 0, 1)[None]
    return degrade(sharp, kernel, Degradation(sigma=0.01, linear=linear, bits=8), generator=seed)


def test_linear_noise_is_the_stored_noise_times_the_curve_slope():
    assert linear_noise(torch.ones(1, 1, 4, 4), 0.01) == pytest.approx(0.01 * 2.4 / 1.055)
    assert linear_noise(torch.zeros(1, 1, 4, 4), 0.01) == pytest.approx(0.01 / 12.92)


@pytest.mark.parametrize("linear", [True, False])
def test_the_space_of_the_blur_is_found_and_deconvolving_there_is_better(kernel, linear):
    y, truth = _case(linear, kernel)
    right, wrong = ("linear", "stored") if linear else ("stored", "linear")
    assert blur_space(y, kernel, 0.01) == right
    restored = {s: deconvolve(y, kernel, noise=0.01, space=s) for s in ("auto", "linear", "stored")}
    torch.testing.assert_close(restored["auto"], restored[right])
    gain = float(psnr(restored[right], truth) - psnr(restored[wrong], truth))
    assert gain > 1.0


def test_a_batch_decides_per_image(kernel):
    lin, _ = _case(True, kernel)
    sto, _ = _case(False, kernel, seed=1)
    batch = deconvolve(torch.cat([lin, sto]), kernel, method="tv", noise=0.01)
    one_by_one = torch.cat([deconvolve(lin, kernel, noise=0.01), deconvolve(sto, kernel, noise=0.01)])
    torch.testing.assert_close(batch, one_by_one)


def test_unknown_space_is_a_user_error():
    with pytest.raises(UserError, match="blur space"):
        deconvolve(torch.rand(1, 1, 40, 40), torch.ones(3, 3) / 9, space="gamma")


def test_a_margin_leans_the_decision_towards_linear_light(kernel):
    y, _ = _case(False, kernel)  # blurred on the stored values
    assert blur_space(y, kernel, 0.01, margin=0.0) == "stored"
    assert blur_space(y, kernel, 0.01, margin=100.0) == "linear"
