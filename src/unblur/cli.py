"""The ``unblur`` command line: a thin layer over the library.

Every subcommand parses its arguments, calls library functions and reports. User mistakes
(:class:`unblur.errors.UserError`, bad arguments) print one line and exit with code 2.
"""
from __future__ import annotations

import argparse
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
    """Blur a built-in sharp photo with a random camera shake and write the results."""
    import numpy as np
    import skimage.data
    import torch

    from unblur import io
    from unblur.blur.kernels import camera_shake_kernel
    from unblur.blur.synth import Degradation, degrade

    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"folder {out.parent} does not exist")
    out.mkdir(exist_ok=True)
    sharp = torch.from_numpy(np.moveaxis(skimage.data.astronaut(), -1, 0)[None].astype(np.float32) / 255)
    kernel = camera_shake_kernel(size=31, rng=args.seed)
    blurred, truth = degrade(sharp, kernel, Degradation(sigma=0.01), mode="valid", generator=args.seed)
    written = [
        io.write_image(out / "sharp.png", truth, overwrite=args.overwrite),
        io.write_image(out / "blurred.png", blurred, overwrite=args.overwrite),
        io.write_kernel(out / "kernel.png", kernel.double().numpy(), overwrite=args.overwrite, upscale=4),
        io.write_kernel(out / "kernel.npy", kernel.double().numpy(), overwrite=args.overwrite),
    ]
    print(f"camera-shake kernel {kernel.shape[-1]}x{kernel.shape[-2]} (seed {args.seed}), noise 1%")
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
    from unblur.deconv import deconvolve

    img = io.read_image(args.input)
    kernel = io.read_kernel(args.kernel)
    if args.noise is not None and args.noise < 0:
        raise UserError("--noise must be non-negative")
    t0 = time.perf_counter()
    restored = deconvolve(img.to_tensor().to(args.device), kernel, method=args.method, noise=args.noise)
    seconds = time.perf_counter() - t0
    out = args.output or _default_output(args.input, "deconv")
    path = io.write_image(out, restored.cpu(), like=img, overwrite=args.overwrite, inputs=(args.input,))
    print(f"wrote {path} ({args.method}, kernel {kernel.shape[1]}x{kernel.shape[0]}, {seconds:.2f} s)")
    return 0


# ------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unblur", description="Blind deblurring of photos and videos: synthesize, estimate and remove blur, and measure it.")
    parser.add_argument("--version", action="version", version=f"unblur {__version__}")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="blur a built-in photo with a random camera shake (no arguments needed)")
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
    p.add_argument("--method", choices=list(METHODS), default="hyperlaplacian", help="solver (default hyperlaplacian)")
    p.add_argument("--noise", type=float, default=None, help="noise std in [0, 1] units (default: estimated)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_deconv)

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
