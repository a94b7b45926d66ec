"""Camera model and dataset generator."""
import json

import numpy as np
import pytest
import torch

from unblur import io
from unblur.blur import conv2d
from unblur.blur.kernels import camera_shake_kernel
from unblur.blur.synth import Degradation, aligned_crop, average_frames, degrade, generate_dataset
from unblur.errors import UserError


def test_degrade_valid_shapes_and_alignment():
    x = torch.rand(1, 3, 60, 50, generator=torch.Generator().manual_seed(0))
    k = torch.zeros(7, 5)
    k[3, 2] = 1  # delta: blurred == aligned truth up to noise/quantisation
    y, truth = degrade(x, k, Degradation(sigma=0.0, bits=0), mode="valid")
    assert y.shape == truth.shape == (1, 3, 54, 46)
    torch.testing.assert_close(y, truth, atol=1e-5, rtol=0)


def test_degrade_linear_light_differs_from_srgb_blur():
    x = torch.zeros(1, 1, 20, 20)
    x[..., :, 10:] = 1.0  # a hard edge
    k = torch.ones(1, 5) / 5
    lin, _ = degrade(x, k, Degradation(sigma=0, bits=0, linear=True))
    srgb, _ = degrade(x, k, Degradation(sigma=0, bits=0, linear=False))
    torch.testing.assert_close(srgb[0, 0, 0, 6:10], torch.tensor([0.2, 0.4, 0.6, 0.8]))
    assert (lin[0, 0, 0, 6:10] > srgb[0, 0, 0, 6:10]).all()  # blurring light brightens dark side


def test_degrade_noise_level_and_determinism():
    x = torch.full((1, 1, 128, 128), 0.5)
    k = torch.ones(3, 3) / 9
    d = Degradation(sigma=0.02, bits=0, linear=False)
    y1, _ = degrade(x, k, d, generator=5)
    y2, _ = degrade(x, k, d, generator=5)
    torch.testing.assert_close(y1, y2)
    assert abs(float((y1 - 0.5).std()) - 0.02) < 0.002


def test_degrade_saturation_and_quantisation():
    x = torch.full((1, 1, 16, 16), 0.8)
    y, _ = degrade(x, torch.ones(1, 1), Degradation(sigma=0, exposure=2.0, bits=8))
    assert float(y.max()) == 1.0
    y, _ = degrade(torch.rand(1, 1, 16, 16), torch.ones(1, 1), Degradation(sigma=0.01, bits=8))
    assert torch.allclose(y * 255, torch.round(y * 255), atol=1e-4)


def test_aligned_crop_matches_valid_blur_of_delta():
    x = torch.rand(1, 1, 30, 30)
    k = camera_shake_kernel(size=9, rng=0)
    assert aligned_crop(x, k.shape).shape[-2:] == conv2d(x, k).shape[-2:]


def test_average_frames_in_linear_light():
    frames = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 1.0, 0.0)])
    blurred, middle = average_frames(frames)
    torch.testing.assert_close(middle, frames[1:2])
    # The mean of linear light 1/3 encoded back to sRGB, not 1/3.
    assert abs(float(blurred.mean()) - 0.6135) < 1e-3
    assert abs(float(average_frames(frames, linear=False)[0].mean()) - 1 / 3) < 1e-6


def _tree(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_dataset_is_deterministic_and_consistent(tmp_path, data_root):
    src = data_root / "natural" / "cbsd68"
    kw = {"count": 3, "size": 64, "kernel_size": (11, 21), "seed": 7}
    m1 = generate_dataset(src, tmp_path / "a", **kw)
    generate_dataset(src, tmp_path / "b", **kw)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")  # byte-identical
    rows = [json.loads(line) for line in m1.read_text().splitlines()]
    assert len(rows) == 3 and {"seed", "kernel_shape", "source", "noise_sigma", "kind"} <= set(rows[0])
    for r in rows:
        blurred = io.read_image(tmp_path / "a" / r["blurred"])
        sharp = io.read_image(tmp_path / "a" / r["sharp"])
        k = io.read_kernel(tmp_path / "a" / r["kernel"])
        assert blurred.pixels.shape == sharp.pixels.shape == (64, 64, 3)
        assert k.shape == tuple(r["kernel_shape"]) and abs(k.sum() - 1) < 1e-9
        # Re-synthesising from the recorded crop reproduces the blurred image (up to noise).
        src_img = io.read_image(src / r["source"]).to_tensor()
        kh, kw_ = k.shape
        crop = src_img[..., r["crop_top"] : r["crop_top"] + 64 + kh - 1, r["crop_left"] : r["crop_left"] + 64 + kw_ - 1]
        clean, truth = degrade(crop, torch.from_numpy(k).float(), Degradation(sigma=0, bits=0))
        np.testing.assert_allclose(truth[0].permute(1, 2, 0).numpy(), sharp.pixels, atol=1 / 255)
        assert float((clean[0].permute(1, 2, 0) - torch.from_numpy(blurred.pixels)).std()) < 0.02
    generate_dataset(src, tmp_path / "c", **{**kw, "seed": 8})
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")


def test_dataset_from_kernel_folder_and_frames(tmp_path, data_root):
    m = generate_dataset(data_root / "natural" / "set12_gray", tmp_path / "k", kernel=f"folder:{data_root / 'kernels'}", count=2, size=48)
    assert all(json.loads(line)["kind"] == "folder" for line in m.read_text().splitlines())
    m = generate_dataset(data_root / "gopro" / "GOPR0477_11_00_240fps", tmp_path / "f", frames="7-9", count=2, size=64)
    rows = [json.loads(line) for line in m.read_text().splitlines()]
    assert all(7 <= r["num_frames"] <= 9 and len(r["frames"]) == r["num_frames"] for r in rows)
    assert io.read_image(tmp_path / "f" / rows[0]["blurred"]).pixels.shape == (64, 64, 3)


def test_dataset_errors(tmp_path, data_root):
    with pytest.raises(UserError, match="not a folder"):
        generate_dataset(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(UserError, match="does not exist"):
        generate_dataset(data_root / "natural" / "set12_gray", tmp_path / "no" / "o")
    with pytest.raises(UserError, match="kernel"):
        generate_dataset(data_root / "natural" / "set12_gray", tmp_path / "o", kernel="sinc", count=1)
    generate_dataset(data_root / "natural" / "set12_gray", tmp_path / "o2", count=1, size=32)
    with pytest.raises(UserError, match="--overwrite"):
        generate_dataset(data_root / "natural" / "set12_gray", tmp_path / "o2", count=1, size=32)
