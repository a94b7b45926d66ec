"""Latent predictor: shipped weights, the training task (on a tiny generated data folder), CLI."""
import json

import numpy as np
import pytest
import torch

from unblur.blur.kernels import camera_shake_kernel
from unblur.cli import main
from unblur.metrics import psnr
from unblur.models import predict_latent, weights_info
from unblur.train.latent import (
    LatentTrainConfig,
    blur_valid,
    degrade_batch,
    dihedral,
    kernel_bank,
    train_latent,
)


def _blurred_camera(size=17, sigma=0.01):
    import skimage.data

    sharp = torch.from_numpy(skimage.data.camera()[80:296, 120:336].astype(np.float32) / 255)[None, None]
    k = camera_shake_kernel(size, rng=5)
    y, truth = degrade_batch(sharp, k[None], torch.tensor([False]), torch.tensor([sigma]), torch.Generator().manual_seed(0))
    return y, truth


def test_shipped_weights_sharpen_a_blurred_photo():
    """The shipped predictor loads offline and sharpens a camera-shake blur it was not told.

    Regression value measured with the shipped weights: 24.17 dB from a 21.92 dB input (17 px
    kernel, 1 % noise, 6 px border ignored).
    """
    info = weights_info(name="latent.pt")
    assert info is not None and "train latent" in info["command"] and info["steps"] > 0
    assert info["validation"]["psnr"]["predicted"] > info["validation"]["psnr"]["blurred"] + 1
    y, truth = _blurred_camera()
    x = predict_latent(y, 0.01)
    assert x.shape == y.shape and x.dtype == torch.float32
    crop = (..., slice(6, -6), slice(6, -6))
    p_in, p_out = float(psnr(y[crop], truth[crop])), float(psnr(x[crop], truth[crop]))
    assert p_in == pytest.approx(21.92, abs=0.02)
    assert p_out == pytest.approx(24.17, abs=0.05)


def test_predict_latent_rejects_colour():
    with pytest.raises(ValueError, match="gray"):
        predict_latent(torch.rand(1, 3, 32, 32), 0.01)


# -- training data ----------------------------------------------------------------------------------
def test_kernel_bank_is_normalised_centred_and_seeded():
    a = kernel_bank(40, 15, np.random.default_rng(0))
    b = kernel_bank(40, 15, np.random.default_rng(0))
    assert a.shape == (40, 15, 15) and torch.equal(a, b)
    assert torch.allclose(a.sum((1, 2)), torch.ones(40), atol=1e-5) and float(a.min()) >= 0
    k = dihedral(a, np.arange(40) % 8)
    assert torch.allclose(k.sum((1, 2)), torch.ones(40), atol=1e-5)
    assert torch.equal(k[8], a[8]) and torch.equal(k[2], a[2].flip(0).flip(1))  # identity, rotation by 180


def test_degradation_is_a_valid_blur_aligned_with_its_target():
    from unblur.blur.operators import conv2d

    x = torch.rand(2, 1, 40, 40)
    k = torch.stack([camera_shake_kernel(9, rng=1), torch.zeros(9, 9)])
    k[1, 4, 4] = 1
    assert torch.allclose(blur_valid(x, k)[:1], conv2d(x[:1], k[0], mode="valid"), atol=1e-5)
    y, t = degrade_batch(x, k, torch.tensor([True, False]), torch.zeros(2))
    assert y.shape == t.shape == (2, 1, 32, 32)
    assert float((y[1] - t[1]).abs().max()) <= 0.5 / 255 + 1e-6  # a delta kernel: the target, quantised


def _tiny(**kw):
    base = {"steps": 6, "batch": 4, "patch": 24, "kernel_max": 9, "kernel_bank": 30, "val_images": 1, "val_every": 3,
            "checkpoint_every": 3, "warmup": 2, "lr": 2e-3, "channels": (8, 16), "blocks": 1}
    return LatentTrainConfig(**{**base, **kw})


def test_training_is_deterministic_resumes_and_learns(tiny_data, tmp_path):
    from unblur.models.denoiser import load_weights

    a = load_weights(train_latent(tmp_path / "a", _tiny(), data_root=tiny_data, progress=False))
    train_latent(tmp_path / "b", _tiny(steps=3), data_root=tiny_data, progress=False)
    b = load_weights(train_latent(tmp_path / "b", _tiny(), data_root=tiny_data, progress=False))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    path = train_latent(tmp_path / "c", _tiny(steps=60, val_every=20, checkpoint_every=60, lr=3e-3),
                        data_root=tiny_data, progress=False)
    hist = json.loads(torch.load(path, weights_only=True)["info"])["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["val"]["predicted"] > hist[0]["val"]["predicted"]


def test_cli_train_latent(tiny_data, tmp_path):
    cfg = _tiny(steps=2)
    (tmp_path / "cfg.json").write_text(json.dumps({k: getattr(cfg, k) for k in ("steps", "batch", "patch", "kernel_max",
                                                                               "kernel_bank", "val_images", "blocks")}
                                                  | {"channels": [8, 16]}))
    assert main(["train", "latent", "--out", str(tmp_path / "run"), "--config", str(tmp_path / "cfg.json"),
                 "--data", str(tiny_data)]) == 0
    assert (tmp_path / "run" / "latent.pt").is_file()
    assert main(["train", "latent", "--out", str(tmp_path / "x"), "--profile", "nope"]) == 2
