"""Run benchmark cases through methods and record one row per (case, method) in ``results.csv``.

For each case the runner builds the blurred input once, then calls every applicable method
(:meth:`unblur.bench.methods.Method.run`), timing the call alone (``seconds``) and measuring the
peak resident memory during it (``peak_mb``: ``VmHWM`` after resetting it through
``/proc/self/clear_refs``; the process-lifetime ``ru_maxrss`` where that is not possible), then
scores the result against the ground truth:

==================  ==========================================================================
column              meaning
==================  ==========================================================================
psnr, ssim          up to a translation (:func:`unblur.metrics.align_to_reference`): a search of
                    +/- min(10, kernel half-size) px, refined below a pixel, for blind methods
                    (10 when the kernel is unknown); +/- 2 whole pixels for non-blind ones; the
                    central region without a 12 px border is compared, for every method alike;
                    denoisers (``denoise`` suite): the whole image, no shift (published protocol)
shift_y, shift_x    the translation found
psnr_aligned        plain PSNR of the whole image, no shift (non-blind results must line up)
psnr_border         plain PSNR on the band of width 10 % of the shorter side along the edges
psnr_interior       plain PSNR on the rest (boundary artefacts show as border << interior)
psnr_input          PSNR (and ``ssim_input`` SSIM) of the blurred input itself, for reference
kernel_similarity   max normalised cross-correlation with the true kernel (estimated kernels);
kernel_error        relative l2 error after alignment (:func:`unblur.metrics.kernel_error`)
seconds, peak_mb    wall time and peak RSS of the method call; ``delta_mb`` = peak - RSS before
==================  ==========================================================================

Rows are appended to ``results.csv`` as soon as they are computed (and flushed), so an interrupted
run loses at most the cases in flight; a new run with the same ``--out`` skips every
(suite, case, method) already present. A failing method gives a row with ``status`` starting
with ``error:`` and the run goes on; the next run with the same ``--out`` retries it.
"""
from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from unblur.bench.machine import cpu_count, git_commit
from unblur.bench.methods import METHODS, Method, get_method, load_plugins
from unblur.bench.suites import SUITES, Case, CaseData, get_suite
from unblur.errors import UserError

__all__ = [
    "BAND_FRACTION",
    "BORDER",
    "COLUMNS",
    "NONBLIND_MAX_SHIFT",
    "RunResult",
    "case_dir",
    "evaluate",
    "plan",
    "read_results",
    "run_bench",
]

#: Columns of ``results.csv``, in order.
COLUMNS = [
    "suite", "case", "group", "source", "kernel_size", "noise", "height", "width", "channels",
    "method", "kind", "status",
    "psnr", "ssim", "shift_y", "shift_x", "psnr_aligned", "psnr_border", "psnr_interior",
    "psnr_input", "ssim_input", "kernel_similarity", "kernel_error",
    "seconds", "peak_mb", "delta_mb", "gpu_mb", "threads", "device", "image", "input_sha", "commit", "finished",
]

#: Shift search of non-blind methods (they receive the true kernel, so should not move).
NONBLIND_MAX_SHIFT = 2
#: Largest shift searched for blind methods.
BLIND_MAX_SHIFT = 10
#: Border ignored by the shift-invariant metrics (>= the largest shift + 2), the same for all methods.
BORDER = BLIND_MAX_SHIFT + 2
#: Width of the border band of ``psnr_border``, as a fraction of the shorter side.
BAND_FRACTION = 0.10


# ------------------------------------------------------------------------------------------------
# results file
# ------------------------------------------------------------------------------------------------
def read_results(path) -> list[dict]:
    """Rows of a ``results.csv`` (dicts of strings); rows cut short by an interruption are dropped."""
    p = Path(path)
    if not p.is_file():
        return []
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r.get("finished") and r.get("method") and None not in r]
    return rows


class _ResultsWriter:
    """Appends rows to ``results.csv`` (rewriting it first if its header or last line is stale)."""

    def __init__(self, path: Path, existing: list[dict]):
        self.path = path
        clean = path.is_file() and _header(path) == COLUMNS and _ends_cleanly(path, len(existing))
        if not clean:
            tmp = path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
                w.writeheader()
                for r in existing:
                    w.writerow(r)
            os.replace(tmp, path)
        self.file = open(path, "a", newline="")  # noqa: SIM115 - open for the whole run, closed by close()
        self.writer = csv.DictWriter(self.file, COLUMNS, extrasaction="ignore")

    def write(self, row: dict) -> None:
        self.writer.writerow({k: _fmt(row.get(k)) for k in COLUMNS})
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def _ends_cleanly(path: Path, n_rows: int) -> bool:
    """True when the file ends with a newline and holds exactly the parsed rows."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        return False
    with open(path, newline="") as f:
        return sum(1 for _ in csv.reader(f)) == n_rows + 1


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not np.isfinite(v):
            return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
        return f"{v:.6g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


# ------------------------------------------------------------------------------------------------
# measuring one call
# ------------------------------------------------------------------------------------------------
def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_kb(reset_ok: bool) -> int:
    if reset_ok:
        v = _status_kb("VmHWM")
        if v is not None:
            return v
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r


def _measured(method: Method, blurred: torch.Tensor, kernel: torch.Tensor | None, sigma: float | None = None):
    """Run ``method`` once: ``(restored, kernel estimate, seconds, peak_mb, delta_mb, gpu_mb)``."""
    cuda = blurred.is_cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = _status_kb("VmRSS") or 0
    reset_ok = _reset_peak()
    t0 = time.perf_counter()
    restored, est = method.run(blurred, kernel, sigma)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak = _peak_kb(reset_ok)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return restored, est, seconds, peak / 1024, max(0, peak - before) / 1024, gpu


_WARM: set[str] = set()


def _warm_up(method: Method, device: torch.device) -> None:
    """Call a method once on a tiny image so that lazy imports and caches are not timed."""
    if method.name in _WARM or not method.warmup:
        return
    _WARM.add(method.name)
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 48, 48, generator=g).to(device)
    k = torch.ones(5, 5, device=device) / 25
    try:
        method.run(y, None if method.blind else k, 0.1)
    except Exception:  # noqa: BLE001, S110 - a failure shows up, with its message, on the real case
        pass


# ------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------
def _f(v) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def _band_psnrs(x: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """Plain PSNR on the border band (width :data:`BAND_FRACTION` of the shorter side) and inside it."""
    H, W = x.shape[-2:]
    b = max(1, round(BAND_FRACTION * min(H, W)))
    err = (x - ref).pow(2).reshape(-1, H, W).mean(dim=0)
    total = float(err.sum())
    inner = float(err[b : H - b, b : W - b].sum())
    n_inner = max(0, H - 2 * b) * max(0, W - 2 * b)

    def p(sse, n):
        if n == 0:
            return float("nan")
        return 10 * np.log10(n / sse) if sse > 0 else float("inf")

    return p(total - inner, H * W - n_inner), p(inner, n_inner)


def evaluate(restored: torch.Tensor, data: CaseData, case: Case, method: Method, est_kernel=None) -> dict:
    """Score a restored image (and estimated kernel) of ``case`` against its ground truth.

    Returns a dict of the metric columns (see the module docstring); empty without ground truth.
    """
    from unblur.metrics import align_to_reference, kernel_error, kernel_similarity, psnr, ssim

    row: dict = {}
    if est_kernel is not None and data.kernel is not None:
        row["kernel_similarity"] = _f(kernel_similarity(est_kernel.double(), data.kernel.double()))
        row["kernel_error"] = _f(kernel_error(est_kernel.double(), data.kernel.double()))
    truth = data.truth
    if truth is None:
        return row
    if tuple(restored.shape) != tuple(truth.shape):
        raise ValueError(f"the result is {tuple(restored.shape)}, the ground truth {tuple(truth.shape)}")
    x, ref = restored[0].double(), truth[0].double()
    if method.task == "denoise":  # the published protocol: whole image, no alignment
        row["psnr"] = row["psnr_aligned"] = _f(psnr(x, ref))
        row["ssim"] = _f(ssim(x, ref))
        return row
    if method.blind:
        m = min(BLIND_MAX_SHIFT, case.kernel_size // 2) if case.kernel_size else BLIND_MAX_SHIFT
    else:
        m = NONBLIND_MAX_SHIFT
    # non-blind results should line up: integer search only (a sub-pixel one costs more)
    al = align_to_reference(x, ref, max_shift=m, border=BORDER, subpixel=method.blind)
    row["psnr"] = _f(psnr(al.x, al.ref))
    row["ssim"] = _f(ssim(al.x, al.ref))
    row["shift_y"], row["shift_x"] = (float(s) for s in al.shift)
    row["psnr_aligned"] = _f(psnr(x, ref))
    row["psnr_border"], row["psnr_interior"] = _band_psnrs(x, ref)
    return row


def _input_scores(data: CaseData) -> dict:
    from unblur.metrics import psnr, ssim

    if data.truth is None:
        return {}
    y, ref = data.blurred[0].double(), data.truth[0].double()
    return {"psnr_input": _f(psnr(y, ref)), "ssim_input": _f(ssim(y, ref))}


# ------------------------------------------------------------------------------------------------
# running cases
# ------------------------------------------------------------------------------------------------
def case_dir(suite: str, case_id: str) -> str:
    """Folder (relative to the output folder) holding the saved images of a case."""
    return "images/" + suite + "/" + case_id.replace("/", "__")


def _save_case_inputs(out: Path, case: Case, data: CaseData) -> None:
    from unblur import io

    d = out / case_dir(case.suite, case.id)
    d.mkdir(parents=True, exist_ok=True)
    io.write_image(d / "blurred.png", data.blurred, overwrite=True)
    if data.truth is not None:
        io.write_image(d / "truth.png", data.truth, overwrite=True)
    if data.kernel is not None:
        k = data.kernel.double().numpy()
        io.write_kernel(d / "kernel.npy", k, overwrite=True)
        io.write_kernel(d / "kernel.png", k, overwrite=True)


def _save_output(out: Path, case: Case, method: Method, restored: torch.Tensor, est) -> str:
    from unblur import io

    d = out / case_dir(case.suite, case.id)
    d.mkdir(parents=True, exist_ok=True)
    rel = f"{case_dir(case.suite, case.id)}/{method.name}.png"
    io.write_image(out / rel, restored, overwrite=True)
    if est is not None:
        from unblur._tensor import kernel_to_numpy

        k = kernel_to_numpy(est)
        if k.ndim == 2:
            io.write_kernel(d / f"{method.name}_kernel.npy", k, overwrite=True)
            io.write_kernel(d / f"{method.name}_kernel.png", k, overwrite=True)
    return rel


def _input_sha(data: CaseData) -> str:
    return hashlib.sha1(data.blurred.contiguous().numpy().tobytes()).hexdigest()[:12]


def _error_text(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"error: {type(exc).__name__}: {msg}"[:300]


def run_case(case: Case, methods: list[Method], out: Path, *, save: bool, device="cpu", commit: str = "", emit=None,
             repeats: int | None = None) -> list[dict]:
    """Run ``methods`` on one case; returns the rows (and passes each to ``emit`` as it is done).

    A case that cannot be built gives an error row for every method. Each method is called
    ``repeats`` times (default: the suite's :attr:`~unblur.bench.suites.Suite.repeats`); the
    median wall time and the largest peak memory are recorded, the last call's output is scored.
    """
    device = torch.device(device)
    if repeats is None:
        repeats = SUITES[case.suite].repeats if case.suite in SUITES else 1
    base = {
        "suite": case.suite, "case": case.id, "group": case.group, "source": case.source,
        "kernel_size": case.kernel_size, "noise": case.sigma, "threads": torch.get_num_threads(),
        "device": str(device), "commit": commit,
    }
    rows = []

    def done(row):
        row["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        rows.append(row)
        if emit is not None:
            emit(row)

    try:
        data = case.load()
        base.update(height=data.blurred.shape[-2], width=data.blurred.shape[-1], channels=data.blurred.shape[1],
                    input_sha=_input_sha(data), **_input_scores(data))
        if save:
            _save_case_inputs(out, case, data)
    except Exception as exc:  # noqa: BLE001 - recorded in the results
        for m in methods:
            done({**base, "method": m.name, "kind": m.kind, "status": _error_text(exc)})
        return rows
    blurred = data.blurred.to(device)
    kernel = data.kernel.to(device) if data.kernel is not None else None
    for m in methods:
        row = {**base, "method": m.name, "kind": m.kind}
        try:
            _warm_up(m, device)
            calls = [_measured(m, blurred, None if m.blind else kernel, case.sigma) for _ in range(repeats)]
            restored, est = calls[-1][:2]
            seconds = statistics.median(c[2] for c in calls)
            peak, delta = max(c[3] for c in calls), max(c[4] for c in calls)
            gpu = None if calls[-1][5] is None else max(c[5] for c in calls)
            row.update(seconds=seconds, peak_mb=peak, delta_mb=delta, gpu_mb=gpu)
            row.update(evaluate(restored, data, case, m, est))
            if save:
                row["image"] = _save_output(out, case, m, restored, est)
            row["status"] = "ok"
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the results
            row["status"] = _error_text(exc)
            if os.environ.get("UNBLUR_BENCH_TRACEBACK"):
                traceback.print_exc()
        done(row)
    return rows


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["UNBLUR_NO_PROGRESS"] = "1"
    load_plugins()


def _worker(case: Case, method_names: list[str], out: str, save: bool, device: str, commit: str) -> list[dict]:
    methods = [get_method(n) for n in method_names]
    return run_case(case, methods, Path(out), save=save, device=device, commit=commit)


# ------------------------------------------------------------------------------------------------
# planning and the whole run
# ------------------------------------------------------------------------------------------------
@dataclass
class RunResult:
    """What :func:`run_bench` did.

    Attributes
    ----------
    rows : list of dict
        Every row of ``results.csv`` after the run (old and new).
    computed : int
        Rows computed by this run.
    skipped : int
        (case, method) pairs already in ``results.csv`` and skipped.
    errors : int
        New rows whose status is an error.
    seconds : float
        Wall time of the run.
    suites : list of str
        The suites run.
    """

    rows: list[dict]
    computed: int
    skipped: int
    errors: int
    seconds: float
    suites: list[str] = field(default_factory=list)


def _sample_indices(n: int, k: int) -> set[int]:
    if k <= 0 or n == 0:
        return set()
    return {round(i) for i in np.linspace(0, n - 1, min(k, n))}


def plan(suites: list[str], methods: list[str] | None = None, data_root=None, limit: int | None = None):
    """The work of a run: ``[(case, [Method, ...]), ...]`` for the given suites and methods.

    ``methods=None`` takes the suite's default methods (every registered method for most); each
    case gets the methods that apply to it (non-blind methods need the true kernel; real photos
    take blind methods only).

    Raises
    ------
    UserError
        For unknown suites or methods, missing data, or a suite no selected method applies to.
    """
    load_plugins()
    chosen = list(METHODS.values()) if methods is None else [get_method(n) for n in methods]
    work = []
    for s in suites:
        cases = get_suite(s, data_root)
        if limit is not None:
            cases = cases[: max(0, limit)]
        for_suite = chosen
        if methods is None and SUITES[s].methods is not None:
            for_suite = [get_method(n) for n in SUITES[s].methods]
        suite_work = [(c, [m for m in for_suite if m.applies_to(c)]) for c in cases]
        if cases and not any(ms for _, ms in suite_work):
            needs = "blind methods" if not any(c.has_kernel for c in cases) else "methods"
            names = ", ".join(m.name for m in for_suite) or "none"
            raise UserError(f"no selected method applies to suite {s!r} (it needs {needs}; selected: {names})")
        work.extend(suite_work)
    return work


def run_bench(suites: list[str], methods: list[str] | None, out, *, data_root=None, jobs: int = 1,
              limit: int | None = None, device="cpu", save_images: int = 3, progress: bool = True,
              rerun: bool = False) -> RunResult:
    """Run suites x methods, appending to ``out/results.csv`` and resuming from it.

    Parameters
    ----------
    suites : list of str
        Suite names (:data:`unblur.bench.suites.SUITES`).
    methods : list of str or None
        Method names (None: all registered methods that apply).
    out : path
        Output folder (created): ``results.csv`` and ``images/``.
    data_root : path, optional
        Reference data folder (see :func:`unblur.bench.suites.resolve_data_root`).
    jobs : int
        Worker processes (cases run in parallel; torch threads per worker = cores // jobs).
    limit : int, optional
        Run only the first ``limit`` cases of each suite.
    device : str or torch.device
        Where methods compute.
    save_images : int
        Save the inputs and outputs of this many cases per suite (spread over the suite) under
        ``out/images/`` for the report; every case of the ``visual`` suite is saved.
    progress : bool
        Show a progress bar with ETA (on stderr).
    rerun : bool
        Recompute the planned (case, method) pairs even when ``results.csv`` has them (after a
        method changed); rows of other methods and suites are kept.

    Returns
    -------
    RunResult
    """
    from unblur._runtime import console, progress_bar

    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    t0 = time.perf_counter()
    out = Path(out)
    if not out.parent.is_dir():
        raise UserError(f"cannot create {out}: folder {out.parent} does not exist")
    work = plan(suites, methods, data_root, limit)
    timed = sorted({c.suite for c, _ in work if c.suite in SUITES and SUITES[c.suite].timed})
    if jobs > 1 and timed:
        console.print(f"[yellow]warning: the times of {', '.join(timed)} are meant for one job; with --jobs {jobs} "
                      f"each job gets {threads_per_job(jobs)} torch thread(s) and the times grow[/yellow]")
    out.mkdir(exist_ok=True)
    results = out / "results.csv"
    existing = read_results(results)
    # finished rows are kept and skipped; failed ones of this plan (all of them with rerun) are
    # dropped and computed again
    planned = {(c.suite, c.id, m.name) for c, ms in work for m in ms}
    existing = [r for r in existing
                if (r["suite"], r["case"], r["method"]) not in planned or (r["status"] == "ok" and not rerun)]
    done_keys = {(r["suite"], r["case"], r["method"]) for r in existing}

    # which cases save their images: a spread sample per suite, every real photo
    save = set()
    by_suite: dict[str, list[Case]] = {}
    for c, _ in work:
        by_suite.setdefault(c.suite, []).append(c)
    for s, cs in by_suite.items():
        idx = range(len(cs)) if s == "visual" else _sample_indices(len(cs), save_images)
        save.update((s, cs[i].id) for i in idx)

    todo, skipped = [], 0
    for c, ms in work:
        pending = [m for m in ms if (c.suite, c.id, m.name) not in done_keys]
        skipped += len(ms) - len(pending)
        if pending:
            todo.append((c, pending))
    total = sum(len(ms) for _, ms in todo)
    commit = git_commit()
    writer = _ResultsWriter(results, existing)
    new_rows: list[dict] = []
    label = "bench " + ",".join(suites)
    if skipped:
        console.print(f"resuming: {skipped} results already in {results}, {total} to compute")
    try:
        with progress_bar(label, total=total, enabled=progress) as advance:
            def emit(row):
                writer.write(row)
                new_rows.append(row)
                advance()
                if row["status"] != "ok":
                    console.print(f"[yellow]{row['suite']}/{row['case']} {row['method']}: {row['status']}[/yellow]")

            if jobs == 1 or len(todo) <= 1:
                for c, ms in todo:
                    run_case(c, ms, out, save=(c.suite, c.id) in save, device=device, commit=commit, emit=emit)
            else:
                _run_parallel(todo, jobs, out, save, str(device), commit, emit)
    finally:
        writer.close()
    errors = sum(1 for r in new_rows if r["status"] != "ok")
    return RunResult(read_results(results), len(new_rows), skipped, errors, time.perf_counter() - t0, list(suites))


def threads_per_job(jobs: int) -> int:
    """Torch threads of each worker when cases run in ``jobs`` parallel processes (the cores shared out)."""
    return max(1, cpu_count() // jobs)


def _run_parallel(todo, jobs: int, out: Path, save: set, device: str, commit: str, emit) -> None:
    threads = threads_per_job(jobs)
    methods = sorted({m.name for _, ms in todo for m in ms})
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    if ctx.get_start_method() != "fork":
        unknown = [n for n in methods if METHODS[n].fn.__module__ in ("__main__",)]
        if unknown:
            raise UserError(f"--jobs needs methods defined in importable modules: {', '.join(unknown)}")
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
    try:
        futures = {
            pool.submit(_worker, c, [m.name for m in ms], str(out), (c.suite, c.id) in save, device, commit): (c, ms)
            for c, ms in todo
        }
        for fut in cf.as_completed(futures):
            c, ms = futures[fut]
            try:
                rows = fut.result()
            except Exception as exc:  # noqa: BLE001 - recorded in the results
                rows = [{"suite": c.suite, "case": c.id, "group": c.group, "source": c.source, "method": m.name,
                         "kind": m.kind, "status": _error_text(exc), "commit": commit,
                         "finished": time.strftime("%Y-%m-%dT%H:%M:%S")} for m in ms]
            for r in rows:
                emit(r)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
