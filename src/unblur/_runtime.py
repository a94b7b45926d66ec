"""Process-wide settings chosen on the command line: device, threads, progress display."""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

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
