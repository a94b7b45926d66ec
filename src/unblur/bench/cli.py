"""The ``unblur bench`` subcommand."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from unblur.errors import UserError

__all__ = ["add_bench_parser", "cmd_bench"]


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``unblur bench`` to the subcommands of the main parser; returns the new parser."""
    p = subparsers.add_parser(
        "bench", help="run the benchmark suites (quality and speed, with peer methods as anchors)",
        description="Run benchmark suites x methods; write results.csv (resumable), summary.md and report.html.")
    p.add_argument("--suite", default="quick", help="suite name(s), comma-separated (default quick; --list shows them)")
    p.add_argument("--methods", default=None, help="method names, comma-separated (default: every registered method that applies)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default bench-out/SUITE); an existing run there is resumed")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="run cases in N parallel processes (default 1)")
    p.add_argument("--data", default=None, metavar="DIR", help="reference data folder (default $UNBLUR_DATA, else ../shared/data)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N cases of each suite (smoke runs)")
    p.add_argument("--images", type=int, default=3, metavar="N", help="save inputs/outputs of N cases per suite for the report (default 3)")
    p.add_argument("--overwrite", action="store_true", help="discard the results already in --out instead of resuming")
    p.add_argument("--rerun", action="store_true",
                   help="recompute the rows of --methods already in --out (after a method changed); other rows are kept")
    p.add_argument("--benchmarks-md", default=None, metavar="PATH", help="also regenerate this BENCHMARKS.md from the run's summary")
    p.add_argument("--report-only", action="store_true",
                   help="compute nothing: summarise the rows already in --out (of --methods, if given)")
    p.add_argument("--list", action="store_true", help="list the suites and methods and exit")
    p.set_defaults(func=cmd_bench)
    return p


def _listing() -> str:
    from unblur.bench.methods import METHODS, load_plugins
    from unblur.bench.suites import SUITES

    load_plugins()
    lines = ["suites:"]
    w = max(len(n) for n in SUITES)
    lines += [f"  {n:<{w}}  {s.description}" for n, s in SUITES.items()]
    lines.append("methods:")
    w = max(len(n) for n in METHODS)
    for n, m in METHODS.items():
        params = ", ".join(f"{k}={v}" for k, v in m.params.items())
        lines.append(f"  {n:<{w}}  {m.kind:<9}  {m.description}" + (f" [{params}]" if params else ""))
    return "\n".join(lines)


def _command_line(args) -> str:
    """The command as typed when run from the ``unblur`` script, else rebuilt from ``args``."""
    from unblur._runtime import typed_command

    typed = typed_command()
    if typed is not None and "bench" in sys.argv[1:]:
        return typed
    parts = ["unblur"]
    if getattr(args, "threads", None):
        parts += ["--threads", str(args.threads)]
    parts += ["bench", "--suite", args.suite]
    for opt in ("methods", "out", "data", "limit", "benchmarks_md"):
        v = getattr(args, opt)
        if v is not None:
            parts += ["--" + opt.replace("_", "-"), str(v)]
    if args.jobs != 1:
        parts += ["--jobs", str(args.jobs)]
    if args.images != 3:
        parts += ["--images", str(args.images)]
    return shlex.join(parts)


def cmd_bench(args) -> int:
    """Run the benchmark described by ``args``; returns the exit code (1 when some runs failed)."""
    import torch

    from unblur._runtime import console
    from unblur.bench.machine import git_commit, machine_info
    from unblur.bench.report import (
        RunMeta,
        summarize,
        update_benchmarks_md,
        write_report,
        write_summary,
    )
    from unblur.bench.runner import read_results, run_bench, threads_per_job

    if args.list:
        print(_listing())
        return 0
    suites = _csv_list(args.suite)
    if not suites:
        raise UserError("--suite is empty")
    methods = _csv_list(args.methods) if args.methods is not None else None
    if methods is not None and not methods:
        raise UserError("--methods is empty")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    if args.images < 0:
        raise UserError("--images must be non-negative")
    out = Path(args.out) if args.out else Path("bench-out") / "+".join(suites)
    if args.out is None:
        out.parent.mkdir(exist_ok=True)
    if args.report_only and (args.overwrite or args.rerun):
        raise UserError("--report-only reports the rows in --out; it cannot be combined with --overwrite or --rerun")
    if args.overwrite and (out / "results.csv").is_file():
        (out / "results.csv").unlink()
    device = getattr(args, "device", None) or "cpu"
    if args.report_only:
        if not (out / "results.csv").is_file():
            raise UserError(f"--report-only: no results in {out}")
        result, shown = None, methods
    else:
        result = run_bench(suites, methods, out, data_root=args.data, jobs=args.jobs, limit=args.limit,
                           device=device, save_images=args.images, rerun=args.rerun)
        shown = None  # a run reports every method of its suites in --out, not only the ones it computed
    rows = [r for r in read_results(out / "results.csv")
            if r["suite"] in suites and (shown is None or r["method"] in shown)]
    if not rows:
        raise UserError(f"no results of {', '.join(suites)} in {out}")
    if result is None:  # the rows' own device and thread counts, not this invocation's
        row_devices = {(r.get("device") or "cpu").split(":")[0] for r in rows}
        if row_devices != {torch.device(device).type}:
            raise UserError(f"--report-only: the rows in {out} were computed on {', '.join(sorted(row_devices))}; "
                            "report them with the same --device, on the machine that computed them (the report names it)")
        threads = "/".join(sorted({r["threads"] for r in rows if r.get("threads")})) or "unknown"
    else:
        threads = torch.get_num_threads() if args.jobs == 1 else f"{threads_per_job(args.jobs)} per job x {args.jobs} jobs"
    meta = RunMeta(_command_line(args), git_commit(), machine_info(str(device), threads),
                   wall_seconds=None if result is None else result.seconds)
    summaries = summarize(rows)
    written = [write_summary(out, summaries, meta), write_report(out, rows, summaries, meta)]
    if args.benchmarks_md:
        written.append(update_benchmarks_md(args.benchmarks_md, summaries, meta))
    if result is not None:
        print(f"{result.computed} results computed, {result.skipped} already there, {result.errors} failed, "
              f"in {result.seconds:.1f} s")
        print(f"wrote {out / 'results.csv'}")
    for p in written:
        print(f"wrote {p}")
    if result is not None and result.errors:
        console.print(f"[yellow]{result.errors} method runs failed; see the status column of {out / 'results.csv'}[/yellow]")
        return 1
    return 0
