"""Command line: happy paths and one-line errors with exit code 2."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from unblur import __version__, io
from unblur.cli import main


def run(*args):
    return main([str(a) for a in args])


def test_version_and_help(capsys):
    assert run("--version") == 0 and __version__ in capsys.readouterr().out
    assert run("deconv", "--help") == 0 and "--kernel" in capsys.readouterr().out
    assert run("frobnicate") == 2 and "invalid choice" in capsys.readouterr().err
    assert run() == 2  # no command: help, exit 2


def test_demo_writes_outputs_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run("demo", "-o", out) == 0
    for name in ("clock.png", "clock_deblurred.png", "clock_kernel.png", "clock_comparison.png"):
        assert (out / name).is_file()
    assert io.read_image(out / "clock_deblurred.png").pixels.shape == (300, 400, 1)
    assert io.read_image(out / "clock_comparison.png").pixels.shape[:2] == (300, 808)
    assert "kernel estimated" in capsys.readouterr().out
    assert run("demo", "-o", out) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_synth_command(tmp_path, data_root, capsys):
    assert run("synth", data_root / "natural" / "set12_gray", tmp_path / "ds", "--count", 2, "--size", 48, "--seed", 1) == 0
    assert (tmp_path / "ds" / "manifest.jsonl").is_file()
    assert "wrote 2 pairs" in capsys.readouterr().out
    assert run("synth", tmp_path / "nope", tmp_path / "ds2") == 2


@pytest.fixture
def blurred_file(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    path = tmp_path / "in.png"
    Image.fromarray(img).save(path)
    k = np.zeros((5, 5))
    k[2, 1:4] = 1 / 3
    np.save(tmp_path / "k.npy", k)
    return path


def test_deconv_and_blur_commands(blurred_file, tmp_path, capsys):
    kernel = tmp_path / "k.npy"
    assert run("deconv", blurred_file, "--kernel", kernel, "--noise", 0.01) == 0
    assert io.read_image(tmp_path / "in_deconv.png").pixels.shape == (64, 64, 3)
    assert "tv " in capsys.readouterr().out  # the space decided is reported
    for space, said in (("linear", "in linear light"), ("stored", "on the stored values")):
        assert run("deconv", blurred_file, "--kernel", kernel, "--space", space, "-o", tmp_path / f"{space}.png") == 0
        assert said in capsys.readouterr().out
    assert run("deconv", blurred_file, "--kernel", kernel, "--method", "wiener", "-o", tmp_path / "w.tif") == 0
    assert run("deconv", blurred_file, "--kernel", kernel, "--saturation", 0.99, "-o", tmp_path / "s.png") == 0
    assert run("deconv", blurred_file, "--kernel", kernel, "--method", "wiener", "--saturation", 0.99) == 2
    assert run("blur", blurred_file, "--kernel", kernel, "-o", tmp_path / "b.png") == 0
    assert io.read_image(tmp_path / "b.png").pixels.shape == (60, 60, 3)


@pytest.mark.parametrize(
    "kernel_values, message",
    [
        (np.full((3, 3), np.nan), "NaN or infinite"),
        (-np.ones((3, 3)), "negative"),
        (np.array([[0.5, -0.5, 1.0]]), "negative"),
        (np.zeros((3, 3)), "zero"),
        (np.ones((99, 99)), "larger than the image"),
        (np.ones((3, 3, 3)), "kernel"),
    ],
)
def test_deconv_bad_kernels(blurred_file, tmp_path, capsys, kernel_values, message):
    np.save(tmp_path / "bad.npy", kernel_values)
    assert run("deconv", blurred_file, "--kernel", tmp_path / "bad.npy") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unblur: error:") and message in err and "\n" not in err


def test_bad_inputs_exit_2_without_traceback(tmp_path, blurred_file, capsys):
    (tmp_path / "notimage.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    data = blurred_file.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    for bad in (tmp_path / "missing.png", tmp_path, tmp_path / "notimage.png", tmp_path / "empty.png", tmp_path / "trunc.png"):
        assert run("deconv", bad, "--kernel", tmp_path / "k.npy") == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.count("\n") == 1
    # Never overwrite the input unless asked.
    before = blurred_file.read_bytes()
    assert run("deconv", blurred_file, "--kernel", tmp_path / "k.npy", "-o", blurred_file) == 2
    assert blurred_file.read_bytes() == before
    assert run("deconv", blurred_file, "--kernel", tmp_path / "k.npy", "--method", "nope") == 2


def test_module_entry_point_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unblur", "deconv", str(tmp_path / "x.png"), "--kernel", "k.npy"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr
