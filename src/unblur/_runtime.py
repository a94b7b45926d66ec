"""Process-wide settings chosen on the command line: device, threads, progress display."""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from unblur.errors import UserError

#: Console for progress and messages; it writes to stderr so stdout stays parseable.
console = Console(stderr=True)


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else CPU; ``"cuda"`` without CUDA is an error."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"unknown device {name!r}") from exc


def set_threads(n: int | None) -> None:
    """Limit the CPU threads torch uses (``None`` keeps torch's default)."""
    if n is not None:
        if n < 1:
            raise UserError("--threads must be at least 1")
        torch.set_num_threads(n)


T = TypeVar("T")


def run_concurrently(calls: list[Callable[[], T]]) -> list[T]:
    """Results of independent torch computations, run side by side on the CPU's threads.

    With ``n >= 2`` torch threads the calls run in up to ``n`` Python threads with one torch
    thread each (torch releases the GIL inside its kernels), and torch's thread count is restored
    afterwards. Each result is what the call gives in sequence with one torch thread (the rounding
    of some reductions depends on the thread count). Small tensors, such as the coarse scales of a
    pyramid, gain little from torch's own parallelism, so this is faster for them: with two
    threads, the two starts of the kernel estimator on a 255 x 255 gray image took a median
    1.5-1.8 s this way and 2.2-2.4 s in sequence (three runs of seven calls; timings vary by
    10-20 % from run to run on this machine). The caller's grad mode carries over. With one
    thread, or one call, the calls run in order. Torch's thread count is process-wide: do not
    call this from several threads.
    """
    n = torch.get_num_threads()
    if n < 2 or len(calls) < 2:
        return [call() for call in calls]
    grad = torch.is_grad_enabled()

    def run(call):
        with torch.set_grad_enabled(grad):
            return call()

    torch.set_num_threads(1)
    try:
        with concurrent.futures.ThreadPoolExecutor(min(n, len(calls))) as pool:
            return list(pool.map(run, calls))
    finally:
        torch.set_num_threads(n)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True, completed: int = 0, status: bool = False):
    """A rich progress bar with ETA on stderr; yields ``advance(n=1, status=None)``.

    ``completed`` starts the bar part-way (resumed work); with ``status=True`` the bar shows the
    last ``status`` text passed to ``advance`` (e.g. a training loss).
    """
    show = enabled and os.environ.get("UNBLUR_NO_PROGRESS") is None and sys.stderr is not None
    if not show:
        yield lambda n=1, status=None: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    columns += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total, completed=completed, status="")

        def advance(n=1, status=None):
            prog.update(task, advance=n, **({"status": status} if status is not None else {}))

        yield advance


def typed_command() -> str | None:
    """The command line as typed, when running from the ``unblur`` script (else None)."""
    argv = sys.argv
    if argv and Path(argv[0]).name in ("unblur", "__main__.py"):
        return shlex.join(["unblur", *argv[1:]])
    return None
