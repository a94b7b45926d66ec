"""The ``unblur`` command line: a thin layer over the library.

Every subcommand parses its arguments, calls library functions and reports. User mistakes
(:class:`unblur.errors.UserError`, bad arguments) print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from unblur import __version__
from unblur.errors import UserError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) and no usage dump."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")



def _add_degradation_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("noise and camera model")
    g.add_argument("--noise", type=float, default=0.01, metavar="SIGMA", help="Gaussian noise std in sRGB units (default 0.01 = 1%%)")
    g.add_argument("--photons", type=float, default=None, help="photon count at full scale for Poisson shot noise (default: none)")
    g.add_argument("--read-noise", type=float, default=0.0, help="read noise std (linear units) with --photons")
    g.add_argument("--exposure", type=float, default=1.0, help="linear gain before clipping; >1 saturates highlights")
    g.add_argument("--bits", type=int, choices=(8, 16), default=8, help="quantisation bit depth of the outputs")
    g.add_argument("--jpeg", type=int, default=None, metavar="QUALITY", help="re-compress as JPEG at this quality")
    g.add_argument("--no-linear", action="store_true", help="blur sRGB values instead of linear light")


def _degradation(args):
    from unblur.blur.synth import Degradation

    if args.noise < 0 or args.read_noise < 0:
        raise UserError("noise levels must be non-negative")
    if args.jpeg is not None and not 1 <= args.jpeg <= 100:
        raise UserError("--jpeg quality must be between 1 and 100")
    return Degradation(
        sigma=args.noise, photons=args.photons, read_sigma=args.read_noise, exposure=args.exposure,
        bits=args.bits, jpeg_quality=args.jpeg, linear=not args.no_linear,
    )


# ------------------------------------------------------------------------------------------------
# subcommands
# ------------------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    """Deblur a real motion-blurred photo that ships with scikit-image and show before/after."""
    import numpy as np
    import skimage.data
    import torch

    from unblur import io
    from unblur.blind import deblur
    from unblur.report import comparison_image

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    torch.manual_seed(args.seed)
    ow = args.overwrite

    # A real blurred photograph shipped with scikit-image (a clock moving sideways).
    clock = skimage.data.clock().astype(np.float32) / 255
    t0 = time.perf_counter()
    res = deblur(clock, method="map")
    seconds = time.perf_counter() - t0
    written = [
        io.write_image(out / "clock.png", clock, overwrite=ow),
        io.write_image(out / "clock_deblurred.png", res.image, overwrite=ow),
        io.write_kernel(out / "clock_kernel.png", res.kernel, overwrite=ow, upscale=4),
        io.write_image(out / "clock_comparison.png", comparison_image(clock, res.image, res.kernel), overwrite=ow),
    ]
    print(f"real photo (skimage clock, {clock.shape[1]}x{clock.shape[0]}): kernel estimated in {seconds:.1f} s, "
          f"noise {res.noise * 100:.2f}%")

    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_synth(args) -> int:
    from unblur._runtime import progress_bar
    from unblur.blur.synth import generate_dataset

    t0 = time.perf_counter()
    with progress_bar("synthesising", total=args.count) as advance:
        manifest = generate_dataset(
            args.sharp_dir, args.out_dir, kernel=args.kernel, count=args.count,
            size=args.size or None, kernel_size=args.kernel_size, degradation=_degradation(args),
            mode=args.mode, frames=args.frames, seed=args.seed, overwrite=args.overwrite, progress=advance,
        )
    print(f"wrote {args.count} pairs to {args.out_dir} in {time.perf_counter() - t0:.1f} s (manifest {manifest})")
    return 0


def cmd_blur(args) -> int:
    from unblur import io
    from unblur.blur.synth import degrade

    img = io.read_image(args.input)
    kernel = io.read_kernel(args.kernel)
    import torch

    blurred, _ = degrade(img.to_tensor(), torch.from_numpy(kernel).float(), _degradation(args), mode=args.mode, generator=args.seed)
    out = args.output or _default_output(args.input, "blurred")
    path = io.write_image(out, blurred, like=img if args.mode != "valid" else None, bit_depth=args.bits, overwrite=args.overwrite, inputs=(args.input,))
    print(f"wrote {path} ({blurred.shape[-1]}x{blurred.shape[-2]}, {args.mode} blur)")
    return 0


def _default_output(path: str, suffix: str) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}_{suffix}{p.suffix}")


def cmd_deconv(args) -> int:
    from unblur import io
    from unblur._tensor import as_kernel
    from unblur.deconv import check_kernel, deconvolve, resolve_space
    from unblur.estimate import estimate_noise_level

    img = io.read_image(args.input)
    kernel = io.read_kernel(args.kernel)
    if args.noise is not None and args.noise < 0:
        raise UserError("--noise must be non-negative")
    t0 = time.perf_counter()
    y = img.to_tensor().to(args.device)
    noise = float(estimate_noise_level(y)) if args.noise is None else args.noise
    # decided here to be reported; deconvolve would decide the same way
    space = resolve_space(y, check_kernel(as_kernel(kernel, device=y.device, dtype=y.dtype), y.shape[-2:]), noise,
                          args.method, args.space)
    restored = deconvolve(y, kernel, method=args.method, noise=noise, space=space, saturation=args.saturation)
    seconds = time.perf_counter() - t0
    out = args.output or _default_output(args.input, "deconv")
    path = io.write_image(out, restored.cpu(), like=img, overwrite=args.overwrite, inputs=(args.input,))
    where = "in linear light" if space == "linear" else "on the stored values"
    print(f"wrote {path} ({args.method} {where}, kernel {kernel.shape[1]}x{kernel.shape[0]}, noise {noise:.4f}, "
          f"{seconds:.2f} s)")
    return 0


def cmd_denoise(args) -> int:
    from unblur import io
    from unblur.denoising import denoise
    from unblur.estimate import estimate_noise_level

    if args.sigma is not None and not 0 <= args.sigma <= 1:
        raise UserError("--sigma is a std in image units, between 0 and 1 (e.g. 0.1 for 25.5/255)")
    img = io.read_image(args.input)
    x = img.to_tensor().to(args.device)
    t0 = time.perf_counter()
    sigma = float(estimate_noise_level(x[:1])) if args.sigma is None else args.sigma
    restored = denoise(x, sigma)
    seconds = time.perf_counter() - t0
    out = args.output or _default_output(args.input, "denoised")
    path = io.write_image(out, restored.cpu(), like=img, overwrite=args.overwrite, inputs=(args.input,))
    how = "given" if args.sigma is not None else "estimated"
    print(f"wrote {path} (sigma {sigma * 255:.1f}/255 {how}, {seconds:.2f} s)")
    return 0


def _deblur_one(args, src: Path, out: Path, kernel_out: Path | None, inputs) -> str:
    import torch

    from unblur import io
    from unblur.blind import deblur
    from unblur.blur.kernels import kernel_support

    img = io.read_image(src)
    t0 = time.perf_counter()
    res = deblur(img.to_tensor().to(args.device), method=args.method, kernel_size=args.kernel_size,
                 noise=args.noise, prior=args.prior, quality=args.quality, saturation=args.saturation)
    seconds = time.perf_counter() - t0
    path = io.write_image(out, res.image.cpu(), like=img, overwrite=args.overwrite, inputs=inputs)
    k = res.kernel.detach().cpu().double()
    if kernel_out is not None:
        io.write_kernel(kernel_out, k.numpy(), overwrite=args.overwrite, upscale=4 if kernel_out.suffix == ".png" else None)
    rows, cols = torch.nonzero(torch.as_tensor(kernel_support(k, 0.02))).unbind(1)
    size = f"{int(cols.max() - cols.min()) + 1}x{int(rows.max() - rows.min()) + 1}"
    return f"{src.name}: {res.method}, kernel {size} px, noise {res.noise * 100:.2f}%, {seconds:.1f} s -> {path}"


def cmd_deblur(args) -> int:
    from unblur import io
    from unblur._runtime import progress_bar

    if args.noise is not None and args.noise < 0:
        raise UserError("--noise must be non-negative")
    if args.seed is not None:
        import torch

        torch.manual_seed(args.seed)
    src = Path(args.input)
    if src.is_dir():
        files = io.list_images(src)
        if not files:
            raise UserError(f"no images found in {src}")
        out_dir = Path(args.output) if args.output else None
        if out_dir is not None and not out_dir.is_dir():
            raise UserError(f"output folder {out_dir} does not exist")
        kdir = Path(args.save_kernel) if args.save_kernel else None
        if kdir is not None and not kdir.is_dir():
            raise UserError("--save-kernel must be an existing folder when the input is a folder")
        with progress_bar("deblurring", total=len(files)) as advance:
            for f in files:
                out = (out_dir / f.name) if out_dir else _default_output(str(f), "deblurred")
                kout = kdir / f"{f.stem}_kernel.png" if kdir else None
                print(_deblur_one(args, f, out, kout, inputs=files))
                advance()
        return 0
    out = Path(args.output) if args.output else _default_output(args.input, "deblurred")
    kout = Path(args.save_kernel) if args.save_kernel else None
    print(_deblur_one(args, src, out, kout, inputs=(src,)))
    return 0


# ------------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    """Train a shipped network (the denoiser prior or the latent predictor); the final weights can
    replace the shipped ones."""
    from unblur import train as t
    from unblur._runtime import typed_command

    profiles, config_type, train = {"denoiser": (t.PROFILES, t.TrainConfig, t.train_denoiser),
                                    "latent": (t.LATENT_PROFILES, t.LatentTrainConfig, t.train_latent)}[args.model]
    config = profiles[args.profile]
    if args.config:
        config = config_type.from_file(args.config, base=config)
    if args.steps is not None:
        config = dataclasses.replace(config, steps=args.steps)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.init is not None and not Path(args.init).is_file():
        raise UserError(f"no weights file {args.init}")
    path = train(args.out, config, data_root=args.data, device=args.device, command=typed_command(), init=args.init)
    print(f"weights: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unblur", description="Blind deblurring of photos and videos: synthesize, estimate and remove blur, and measure it.")
    parser.add_argument("--version", action="version", version=f"unblur {__version__}")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="deblur a built-in real blurred photo (no arguments needed)")
    p.add_argument("-o", "--out", default="unblur-demo", help="output folder (default ./unblur-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="generate a blurred/sharp dataset from a folder of sharp images or video frames")
    p.add_argument("sharp_dir", help="folder of sharp images (or consecutive frames with --frames)")
    p.add_argument("out_dir", help="output folder (blurred/, sharp/, kernels/, manifest.jsonl)")
    p.add_argument("--kernel", default="camera-shake", help="camera-shake | gp-shake | gaussian | defocus | linear | folder:PATH")
    p.add_argument("--count", type=int, default=100, help="number of pairs (default 100)")
    p.add_argument("--size", type=int, default=256, help="side of the blurred crops, 0 for whole images (default 256)")
    p.add_argument("--kernel-size", default="11-41", help="kernel size range N-M for synthetic kernels (default 11-41)")
    p.add_argument("--frames", default=None, metavar="N-M", help="average N to M consecutive frames instead of using kernels (GoPro-style)")
    p.add_argument("--mode", choices=("valid", "same", "circular"), default="valid", help="boundary model (default valid, as a camera)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    _add_degradation_args(p)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("blur", help="blur one image with a kernel file and the camera noise model")
    p.add_argument("input")
    p.add_argument("--kernel", required=True, help="kernel file (.npy or .png)")
    p.add_argument("-o", "--output", default=None)
    p.add_argument("--mode", choices=("valid", "same", "circular"), default="valid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    _add_degradation_args(p)
    p.set_defaults(func=cmd_blur)

    from unblur.deconv import METHODS

    p = sub.add_parser("deconv", help="non-blind deconvolution with a known kernel")
    p.add_argument("input", help="blurred image")
    p.add_argument("--kernel", required=True, help="kernel file (.npy, or an image scaled to its max)")
    p.add_argument("-o", "--output", default=None, help="output image (default: INPUT_deconv.EXT next to the input)")
    p.add_argument("--method", choices=list(METHODS), default="tv", help="solver (default tv)")
    p.add_argument("--noise", type=float, default=None, help="noise std in [0, 1] units (default: estimated)")
    p.add_argument("--space", choices=("auto", "linear", "stored"), default="auto",
                   help="where the blur acted: linear = in linear light, as in a camera (the sRGB curve is undone "
                        "first); stored = on the values as stored (linear data, blur added to a file); "
                        "auto (default) = tested on the image")
    p.add_argument("--saturation", type=float, default=None, metavar="LEVEL",
                   help="leave clipped highlights (plateaus at or above LEVEL, e.g. 0.99) out of the fit "
                        "(tv, hyperlaplacian, pnp, pnp-tv; default: off)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_deconv)

    p = sub.add_parser("deblur", help="blind deblurring: estimate the blur kernel of a photo and remove it")
    p.add_argument("input", help="blurred photo, or a folder of photos")
    p.add_argument("-o", "--output", default=None, help="output image (or folder); default INPUT_deblurred.EXT next to the input")
    p.add_argument("--method", choices=("auto", "map", "polyblur"), default="auto",
                   help="auto: Polyblur for mild blur, MAP kernel estimation otherwise (default)")
    p.add_argument("--kernel-size", type=int, default=None, help="kernel support in pixels (default: automatic)")
    p.add_argument("--prior", choices=("l0", "dark"), default="l0", help="latent prior of the MAP estimator")
    p.add_argument("--quality", choices=("fast", "high"), default="fast",
                   help="fast: 2 candidate kernels, total variation; high: 4 candidate kernels, the mean of total variation and plug-and-play with the learned denoiser (about 2x slower)")
    p.add_argument("--save-kernel", default=None, metavar="K.png", help="write the estimated kernel (.png viewable, .npy exact)")
    p.add_argument("--noise", type=float, default=None, help="noise std in [0, 1] units (default: estimated)")
    p.add_argument("--saturation", type=float, default=None, metavar="LEVEL",
                   help="clipped highlights (plateaus at or above LEVEL, e.g. 0.99): left out of the kernel fit and "
                        "the deconvolution (night lights; default: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_deblur)

    p = sub.add_parser("train", help="train a model that ships with unblur")
    train_sub = p.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser, required=True)
    from unblur.train import LATENT_PROFILES, PROFILES

    for model, what, profiles, hint in (
            ("denoiser", "the noise-conditioned denoiser used by plug-and-play restoration", PROFILES,
             "cpu: about an hour on 2 cores; gpu, gpu-finetune: about 5 minutes each on an H100"),
            ("latent", "the blind latent predictor that guides MAP kernel estimation", LATENT_PROFILES,
             "cpu: a smoke-sized run; gpu, gpu-finetune: about 8 minutes each on an H100")):
        p = train_sub.add_parser(model, help=what)
        p.add_argument("--out", required=True, help=f"output folder (checkpoint.pt, train.log, {model}.pt); resumes if it holds a checkpoint")
        p.add_argument("--profile", choices=list(profiles), default="cpu", help=hint)
        p.add_argument("--config", default=None, help="JSON or TOML file overriding profile fields")
        p.add_argument("--steps", type=int, default=None, help="override the number of steps")
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--data", default=None, help="reference data folder (default ../shared/data)")
        p.add_argument("--init", default=None, metavar="WEIGHTS",
                       help=f"start from these weights (e.g. src/unblur/models/weights/{model}.pt) instead of random ones")
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("denoise", help="remove Gaussian noise with the shipped learned denoiser")
    p.add_argument("input")
    p.add_argument("-o", "--output", default=None, help="output image (default: INPUT_denoised.EXT next to the input)")
    p.add_argument("--sigma", type=float, default=None, help="noise std in [0, 1] units (default: estimated)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_denoise)

    from unblur.bench.cli import add_bench_parser

    add_bench_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors (code 2)
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        from unblur._runtime import resolve_device, set_threads

        set_threads(args.threads)
        args.device = resolve_device(args.device)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"unblur: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("unblur: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
