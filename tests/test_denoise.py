"""Learned denoiser: network, training loop (on a tiny generated data folder), denoise API, PnP."""
import json

import numpy as np
import pytest
import torch
from conftest import smooth_image as _smooth_image

from unblur.cli import main
from unblur.denoising import denoise, learned_denoiser
from unblur.metrics import psnr
from unblur.models.denoiser import DenoiserConfig, DenoiserNet, load_weights, weights_info
from unblur.train import TrainConfig, train_denoiser

TINY = DenoiserConfig(channels=(8, 16), blocks=1)


# -- network ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3, 16, 16), (2, 3, 37, 53), (1, 3, 5, 9)])
def test_network_any_size(shape):
    net = DenoiserNet(TINY)
    x = torch.rand(shape)
    out = net(x, 0.1)
    assert out.shape == x.shape and out.dtype == x.dtype


def test_network_per_image_sigma_matches_scalar():
    net = DenoiserNet(TINY).eval()
    x = torch.rand(2, 3, 32, 32)
    both = net(x, torch.tensor([0.05, 0.2]))
    assert torch.allclose(both[0], net(x[:1], 0.05)[0], atol=1e-5)
    assert torch.allclose(both[1], net(x[1:], 0.2)[0], atol=1e-5)


def test_network_rejects_wrong_channels():
    with pytest.raises(ValueError):
        DenoiserNet(TINY)(torch.rand(1, 1, 16, 16), 0.1)


def test_network_gradcheck():
    net = DenoiserNet(TINY).double()
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: net(t, 0.1), (x,), eps=1e-6, atol=1e-4)


def test_save_load_roundtrip(tmp_path):
    from unblur.models.denoiser import save_weights

    net = DenoiserNet(TINY).eval()
    save_weights(net, tmp_path / "w.pt", {"note": "test"})
    back = load_weights(tmp_path / "w.pt")
    x = torch.rand(1, 3, 24, 24)
    # weights are stored in float16
    assert torch.allclose(back(x, 0.1), net(x, 0.1), atol=2e-3)
    assert back.config == net.config


# -- shipped weights --------------------------------------------------------------------------------
@pytest.mark.parametrize("which, expected", [("rgb", 32.297), ("gray", 29.259)])
def test_shipped_weights_regression(which, expected):
    """The shipped denoiser loads offline and gives a known PSNR on fixed noisy crops.

    Regression values measured with the shipped weights (sigma 25/255; inputs at 21.0 / 20.7 dB; the
    weights of the CPU run alone gave 31.244 / 28.745 dB).
    """
    import skimage.data

    info = weights_info()
    assert info is not None and info["steps"] > 0 and "command" in info
    g = torch.Generator().manual_seed(1)
    rgb = torch.from_numpy(skimage.data.astronaut()[100:228, 150:278].astype(np.float32) / 255).permute(2, 0, 1)[None]
    noisy = rgb + (25 / 255) * torch.randn(rgb.shape, generator=g)
    clean = rgb
    if which == "gray":
        clean = torch.from_numpy(skimage.data.camera()[100:228, 150:278].astype(np.float32) / 255)[None, None]
        noisy = clean + (25 / 255) * torch.randn(clean.shape, generator=g)
    assert float(psnr(denoise(noisy, 25 / 255), clean)) == pytest.approx(expected, abs=0.02)


def test_denoise_numpy_gray_and_estimated_sigma():
    clean = _smooth_image(2, 80, 80, c=1)[0, 0].numpy()
    rng = np.random.default_rng(0)
    noisy = (clean + 0.05 * rng.standard_normal(clean.shape)).astype(np.float32)
    out = denoise(noisy)
    assert isinstance(out, np.ndarray) and out.shape == clean.shape
    assert np.mean((out - clean) ** 2) < 0.25 * np.mean((noisy - clean) ** 2)


def test_learned_denoiser_channels():
    f = learned_denoiser()
    for c in (1, 2, 3, 4):
        x = torch.rand(1, c, 20, 24)
        assert f(x, 0.05).shape == x.shape


def test_denoise_tiles_match_whole():
    clean = _smooth_image(3, 96, 120)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    whole = denoise(noisy, 0.1)
    tiled = denoise(noisy, 0.1, tile=80)
    assert float(psnr(tiled, whole)) > 35


def test_denoise_rejects_bad_sigma():
    from unblur.errors import UserError

    with pytest.raises(UserError):
        denoise(torch.rand(1, 3, 16, 16), -0.1)


# -- plug-and-play ----------------------------------------------------------------------------------
def test_pnp_improves_over_its_total_variation_start():
    import skimage.data

    from unblur.blur.kernels import gaussian_kernel
    from unblur.blur.operators import conv2d
    from unblur.deconv import deconvolve

    sharp = torch.from_numpy(skimage.data.astronaut()[60:170, 160:270].astype(np.float32) / 255).permute(2, 0, 1)[None]
    k = gaussian_kernel(1.6, size=9)
    y = conv2d(sharp, k, mode="valid")
    y = y + 0.01 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    truth = sharp[..., 4:-4, 4:-4]
    p_in = float(psnr(y.clamp(0, 1), truth))
    p_tv = float(psnr(deconvolve(y, k, method="tv", noise=0.01), truth))
    p_pnp = float(psnr(deconvolve(y, k, method="pnp", noise=0.01), truth))
    # measured: input 26.28, tv 28.66 (pnp's warm start), pnp 29.72 dB
    assert p_pnp > p_tv + 0.6
    assert p_pnp > p_in + 2.5


def test_two_domain_denoiser_levels_and_round_trip():
    from unblur.deconv.splitting import two_domain_denoiser

    x = torch.linspace(-0.2, 1.2, 48).reshape(1, 3, 4, 4)
    levels = []

    def identity(v, s):
        levels.append(s)
        return v

    out = two_domain_denoiser(identity, 0.5)(x, 0.01)
    # without denoising both branches give the clipped estimate back (the sRGB round trip is exact)
    torch.testing.assert_close(out, x.clamp(0, 1), atol=1e-6, rtol=0)
    assert levels == [pytest.approx(0.02), 0.01]  # the encoded branch is told the stored values' level


def test_pnp_in_linear_light_restores_dark_photos():
    """Linear-light plug-and-play also denoises the sRGB encoding (two_domain_denoiser): on a dark
    photo the plain denoiser in linear light is told too low a noise level for the bright parts."""
    import skimage.data

    from unblur.blur.kernels import camera_shake_kernel
    from unblur.blur.operators import conv2d
    from unblur.color import linear_to_srgb, srgb_to_linear
    from unblur.deconv import deconvolve

    sharp = torch.from_numpy(skimage.data.astronaut()[40:200, 150:310].astype(np.float32) / 255).permute(2, 0, 1)[None]
    dark = 0.15 * srgb_to_linear(sharp)  # exposed 2.7 stops lower, in linear light
    k = camera_shake_kernel(size=11, rng=4)
    y = linear_to_srgb(conv2d(dark, k, mode="valid"))
    y = (y + 0.02 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    truth = linear_to_srgb(dark)[..., 5:-5, 5:-5]
    plain = float(psnr(deconvolve(y, k, method="pnp", noise=0.02, space="linear", srgb_slope=None), truth))
    both = float(psnr(deconvolve(y, k, method="pnp", noise=0.02, space="linear"), truth))
    tv = float(psnr(deconvolve(y, k, method="tv", noise=0.02, space="linear"), truth))
    # measured: plain denoiser 31.61, both tone spaces 33.29, tv 30.56 dB
    assert both > plain + 1.0 and both > tv


# -- training ---------------------------------------------------------------------------------------
def _tiny_config(**kw):
    base = {"steps": 6, "batch": 4, "patch": 32, "val_images": 1, "val_every": 3, "checkpoint_every": 3,
            "warmup": 2, "lr": 2e-3, "channels": (8, 16), "blocks": 1}
    return TrainConfig(**{**base, **kw})


def test_training_is_deterministic_and_resumes(tiny_data, tmp_path):
    cfg = _tiny_config()
    a = load_weights(train_denoiser(tmp_path / "a", cfg, data_root=tiny_data, progress=False))
    b = load_weights(train_denoiser(tmp_path / "b", cfg, data_root=tiny_data, progress=False))
    # interrupted after 3 steps, then resumed to 6
    train_denoiser(tmp_path / "c", _tiny_config(steps=3), data_root=tiny_data, progress=False)
    c = load_weights(train_denoiser(tmp_path / "c", cfg, data_root=tiny_data, progress=False))
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
        assert torch.equal(pa, pc), name
    log = [json.loads(line) for line in (tmp_path / "a" / "train.log").read_text().splitlines()]
    assert [e["step"] for e in log] == [3, 6]


def test_training_reduces_loss(tiny_data, tmp_path):
    cfg = _tiny_config(steps=60, val_every=20, checkpoint_every=60, lr=3e-3)
    path = train_denoiser(tmp_path / "run", cfg, data_root=tiny_data, progress=False)
    info = json.loads(torch.load(path, weights_only=True)["info"])
    hist = info["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert hist[-1]["val"]["color"] > hist[0]["val"]["color"]


def test_patch_sampler_batches(tiny_data):
    from unblur.train.denoiser import load_training_data

    cfg = _tiny_config(batch=64, gray_fraction=0.5)
    sampler, val = load_training_data(tiny_data, cfg)
    clean, gray = sampler.sample(np.random.default_rng(3))
    assert clean.shape == (64, 3, 32, 32) and gray.shape == (64,) and clean.dtype == torch.float32
    assert float(clean.min()) >= 0 and float(clean.max()) <= 1
    assert 10 < int(gray.sum()) < 54  # about half are gray, and those are gray in all three channels
    assert torch.equal(clean[gray][:, 0], clean[gray][:, 1]) and torch.equal(clean[gray][:, 0], clean[gray][:, 2])
    assert not torch.equal(clean[~gray][:, 0], clean[~gray][:, 1])
    again, _ = load_training_data(tiny_data, cfg)[0].sample(np.random.default_rng(3))
    assert torch.equal(clean, again)
    assert val.shape[0] == cfg.val_images


def test_resume_with_other_config_is_refused(tiny_data, tmp_path):
    from unblur.errors import UserError

    train_denoiser(tmp_path / "r", _tiny_config(steps=3), data_root=tiny_data, progress=False)
    with pytest.raises(UserError):
        train_denoiser(tmp_path / "r", _tiny_config(steps=3, lr=1e-4), data_root=tiny_data, progress=False)


def test_config_file_overrides(tmp_path):
    from unblur.errors import UserError

    (tmp_path / "c.json").write_text(json.dumps({"steps": 5, "channels": [8, 16]}))
    cfg = TrainConfig.from_file(tmp_path / "c.json")
    assert cfg.steps == 5 and cfg.channels == (8, 16) and cfg.batch == TrainConfig().batch
    (tmp_path / "bad.json").write_text(json.dumps({"stepz": 5}))
    with pytest.raises(UserError):
        TrainConfig.from_file(tmp_path / "bad.json")


# -- command line -----------------------------------------------------------------------------------
def test_cli_train_and_denoise(tiny_data, tmp_path, capsys):
    (tmp_path / "cfg.json").write_text(json.dumps({"steps": 2, "batch": 2, "patch": 32, "val_images": 1,
                                                   "channels": [8, 16], "blocks": 1}))
    assert main(["train", "denoiser", "--out", str(tmp_path / "run"), "--config", str(tmp_path / "cfg.json"),
                 "--data", str(tiny_data)]) == 0
    assert (tmp_path / "run" / "denoiser.pt").is_file()
    src = tiny_data / "natural" / "cbsd432" / "000.png"
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.png"), "--sigma", "0.05"]) == 0
    assert (tmp_path / "out.png").is_file()
    assert main(["denoise", str(src), "-o", str(tmp_path / "out.png"), "--sigma", "0.05"]) == 2  # exists
    assert main(["denoise", str(src), "-o", str(tmp_path / "x.png"), "--sigma", "-1"]) == 2
    assert main(["denoise", str(tmp_path / "missing.png")]) == 2


def test_training_from_init_weights_keeps_their_record(tiny_data, tmp_path):
    from unblur.errors import UserError

    first = train_denoiser(tmp_path / "a", _tiny_config(), data_root=tiny_data, progress=False)
    second = train_denoiser(tmp_path / "b", _tiny_config(steps=3), data_root=tiny_data, progress=False, init=first)
    assert weights_info(second)["init"] == weights_info(first)
    with pytest.raises(UserError, match="network"):
        train_denoiser(tmp_path / "c", _tiny_config(channels=(8, 16, 32)), data_root=tiny_data, progress=False, init=first)
