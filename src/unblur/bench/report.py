"""Summaries and reports of benchmark results: ``summary.md``, ``report.html``, ``BENCHMARKS.md``.

Everything here is computed from the rows of ``results.csv`` (:func:`unblur.bench.runner.read_results`),
never typed by hand:

* :func:`summarize` -- per suite and method: number of cases, mean PSNR / SSIM (up to shift), mean
  PSNR gain over each anchor *paired on the same cases*, median seconds, time ratio to each anchor
  (geometric mean of the per-case ratios), mean kernel similarity, border vs interior PSNR; and
  mean PSNR per group (kernel) and, in suites with several, per noise level.
* :func:`render_summary_md` / :func:`write_summary` -- ``summary.md`` with those tables, the
  machine, the git commit and the exact command.
* :func:`write_report` -- ``report.html``, self-contained (plots and crops embedded as base64 PNG;
  the ``visual`` suite's full images are linked from ``images/`` next to it).
* :func:`update_benchmarks_md` -- regenerates the sections of ``BENCHMARKS.md`` for the suites of
  a run, keeping the other suites' sections.
"""
from __future__ import annotations

import base64
import html
import io as _io
import math
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unblur.bench.methods import ANCHORS
from unblur.errors import UserError

__all__ = [
    "MethodStats",
    "RunMeta",
    "SuiteSummary",
    "render_summary_md",
    "summarize",
    "update_benchmarks_md",
    "write_report",
    "write_summary",
]

#: Short labels of the anchors in table headers.
ANCHOR_LABELS = {"skimage-wiener": "sk-wiener", "skimage-unsupervised-wiener": "sk-uwiener", "skimage-rl": "sk-rl", "bm3d": "bm3d"}


@dataclass
class RunMeta:
    """How a run was made: command line, commit, machine description, date, wall time."""

    command: str
    commit: str
    machine: dict
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    wall_seconds: float | None = None


@dataclass
class MethodStats:
    """Aggregates of one method on one suite (None where not applicable)."""

    method: str
    kind: str
    n: int
    errors: int
    psnr: float | None
    ssim: float | None
    psnr_aligned: float | None
    gain: dict          # anchor -> (mean paired PSNR gain in dB, number of paired cases)
    seconds: float | None
    time_ratio: dict    # anchor -> geometric mean of per-case time ratios
    kernel_similarity: float | None
    psnr_border: float | None
    psnr_interior: float | None
    peak_mb: float | None
    delta_mb: float | None
    by_group: dict      # group -> mean PSNR
    by_case: dict       # case -> (PSNR, seconds, peak MB)
    by_noise: dict = field(default_factory=dict)  # noise std -> mean PSNR


@dataclass
class SuiteSummary:
    """Summary of one suite: per-method stats, the input's scores, groups, commits seen."""

    suite: str
    methods: list[MethodStats]
    cases: int
    input_psnr: float | None
    input_ssim: float | None
    groups: list[str]
    input_by_group: dict
    commits: list[str]
    anchors: list[str]
    case_ids: list[str]
    noises: list[float] = field(default_factory=list)
    input_by_noise: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# aggregation
# ------------------------------------------------------------------------------------------------
def _num(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if not math.isnan(x) else None


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.mean(xs)) if xs else None


def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(statistics.median(xs)) if xs else None


def _geomean(xs) -> float | None:
    xs = [x for x in xs if x is not None and x > 0 and math.isfinite(x)]
    return float(np.exp(np.mean(np.log(xs)))) if xs else None


def _suite_order(rows) -> list[str]:
    from unblur.bench.suites import SUITES

    seen = list(dict.fromkeys(r["suite"] for r in rows))
    order = {n: i for i, n in enumerate(SUITES)}
    return sorted(seen, key=lambda s: (order.get(s, len(order)), seen.index(s)))


def summarize(rows: list[dict]) -> list[SuiteSummary]:
    """Aggregate result rows per suite and method (see the module docstring)."""
    out = []
    for suite in _suite_order(rows):
        srows = [r for r in rows if r["suite"] == suite]
        ok = [r for r in srows if r["status"] == "ok"]
        by = {}  # method -> case -> row
        for r in ok:
            by.setdefault(r["method"], {})[r["case"]] = r
        groups = list(dict.fromkeys(r.get("group", "") for r in srows))
        noises = sorted({n for r in srows if (n := _num(r.get("noise"))) is not None})
        anchors = [a for a in ANCHORS if a in by]
        cases = {r["case"]: r for r in srows}
        stats = []
        for name in dict.fromkeys(r["method"] for r in srows):
            mrows = by.get(name, {})
            kind = next((r.get("kind", "") for r in srows if r["method"] == name), "")
            vals = lambda col, rs=mrows: [_num(r.get(col)) for r in rs.values()]
            gain, ratio = {}, {}
            for a in anchors:
                if a == name:
                    continue
                pairs = [(r, by[a][c]) for c, r in mrows.items() if c in by[a]]
                d = [_num(r.get("psnr")) - _num(b.get("psnr")) for r, b in pairs if _num(r.get("psnr")) is not None and _num(b.get("psnr")) is not None]
                if d:
                    gain[a] = (float(np.mean(d)), len(d))
                t = [_num(r.get("seconds")) / _num(b.get("seconds")) for r, b in pairs
                     if _num(r.get("seconds")) and _num(b.get("seconds"))]
                if t:
                    ratio[a] = _geomean(t)
            by_group = {g: _mean([_num(r.get("psnr")) for r in mrows.values() if r.get("group", "") == g]) for g in groups}
            by_noise = {n: _mean([_num(r.get("psnr")) for r in mrows.values() if _num(r.get("noise")) == n]) for n in noises}
            stats.append(MethodStats(
                name, kind, len(mrows), sum(1 for r in srows if r["method"] == name and r["status"] != "ok"),
                _mean(vals("psnr")), _mean(vals("ssim")), _mean(vals("psnr_aligned")), gain, _median(vals("seconds")), ratio,
                _mean(vals("kernel_similarity")), _mean(vals("psnr_border")), _mean(vals("psnr_interior")),
                _median(vals("peak_mb")), _median(vals("delta_mb")), by_group,
                {c: (_num(r.get("psnr")), _num(r.get("seconds")), _num(r.get("peak_mb"))) for c, r in mrows.items()},
                by_noise))
        stats.sort(key=lambda s: (s.psnr is None, -(s.psnr or 0), s.method))
        out.append(SuiteSummary(
            suite, stats, len(cases), _mean(_num(r.get("psnr_input")) for r in cases.values()),
            _mean(_num(r.get("ssim_input")) for r in cases.values()), groups,
            {g: _mean(_num(r.get("psnr_input")) for r in cases.values() if r.get("group", "") == g) for g in groups},
            sorted({r.get("commit", "") for r in srows if r.get("commit")}), anchors, list(cases), noises,
            {n: _mean(_num(r.get("psnr_input")) for r in cases.values() if _num(r.get("noise")) == n) for n in noises}))
    return out


# ------------------------------------------------------------------------------------------------
# markdown
# ------------------------------------------------------------------------------------------------
def _f(v, fmt: str, dash: str = "–") -> str:
    return dash if v is None else format(v, fmt)


def _signed(v) -> str:
    return "–" if v is None else f"{v:+.2f}"


def _secs(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _input_label(s: SuiteSummary) -> str:
    """The name of the suite's input in tables and plots: "blurred input" or, for instance, "noisy input"
    (:attr:`~unblur.bench.suites.Suite.degraded`)."""
    from unblur.bench.suites import SUITES

    return f"{SUITES[s.suite].degraded if s.suite in SUITES else 'blurred'} input"


def suite_tables_md(s: SuiteSummary) -> str:
    """The markdown tables of one suite (methods, then PSNR per group)."""
    has_truth = s.input_psnr is not None
    has_kernel_sim = any(m.kernel_similarity is not None for m in s.methods)
    head = ["method", "kind", "n"]
    if has_truth:
        head += ["PSNR", "SSIM"]
        head += [f"ΔdB {ANCHOR_LABELS.get(a, a)}" for a in s.anchors]
    head += ["median s"] + [f"time ×{ANCHOR_LABELS.get(a, a)}" for a in s.anchors]
    if has_kernel_sim:
        head += ["kernel sim"]
    if has_truth:
        head += ["PSNR border / interior"]
    head += ["peak MB (+call)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    for m in s.methods:
        cells = [f"`{m.method}`", m.kind, str(m.n) + (f" ({m.errors} failed)" if m.errors else "")]
        if has_truth:
            cells += [_f(m.psnr, ".2f"), _f(m.ssim, ".3f")]
            cells += ["–" if a == m.method else _signed(m.gain.get(a, (None,))[0]) for a in s.anchors]
        cells += [_secs(m.seconds)] + ["–" if a == m.method else _f(m.time_ratio.get(a), ".3g") for a in s.anchors]
        if has_kernel_sim:
            cells += [_f(m.kernel_similarity, ".3f")]
        if has_truth:
            cells += [f"{_f(m.psnr_border, '.2f')} / {_f(m.psnr_interior, '.2f')}"]
        cells += [f"{_f(m.peak_mb, '.0f')} (+{_f(m.delta_mb, '.0f')})"]
        lines.append("| " + " | ".join(cells) + " |")
    if has_truth:
        cells = [f"*{_input_label(s)}*", "", str(s.cases), _f(s.input_psnr, ".2f"), _f(s.input_ssim, ".3f")]
        cells += [""] * (len(head) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if has_truth and len(s.groups) > 1:
        text += "\n\nMean PSNR (dB, up to shift) per group (kernel):\n\n" + _breakdown_md(
            s, [f"`{g}`" for g in s.groups], lambda m: [m.by_group.get(g) for g in s.groups],
            [s.input_by_group.get(g) for g in s.groups])
    if has_truth and len(s.noises) > 1:
        text += "\n\nMean PSNR (dB, up to shift) per noise level (std, % of the range):\n\n" + _breakdown_md(
            s, [f"{100 * n:g} %" for n in s.noises], lambda m: [m.by_noise.get(n) for n in s.noises],
            [s.input_by_noise.get(n) for n in s.noises])
    if s.case_ids and 1 < len(s.case_ids) <= MAX_CASE_COLUMNS:
        c_lines = ["| method | " + " | ".join(f"`{c}`" for c in s.case_ids) + " |", "|---" + "|---:" * len(s.case_ids) + "|"]
        for m in s.methods:
            cells = []
            for c in s.case_ids:
                p, sec, mb = m.by_case.get(c, (None, None, None))
                cells.append(f"{_f(p, '.2f')} dB, {_secs(sec)} s, {_f(mb, '.0f')} MB" if sec is not None else "–")
            c_lines.append(f"| `{m.method}` | " + " | ".join(cells) + " |")
        text += "\n\nPer case (PSNR, wall time, peak memory):\n\n" + "\n".join(c_lines)
    return text


def _breakdown_md(s: SuiteSummary, columns: list[str], values, input_values: list) -> str:
    """A table of mean PSNR per column (``values(method)``) for every method with a PSNR, then the input."""
    lines = ["| method | " + " | ".join(columns) + " |", "|---" + "|---:" * len(columns) + "|"]
    rows = [(f"`{m.method}`", values(m)) for m in s.methods if m.psnr is not None] + [(f"*{_input_label(s)}*", input_values)]
    lines += ["| " + " | ".join([name] + [_f(v, ".2f") for v in vals]) + " |" for name, vals in rows]
    return "\n".join(lines)


#: Suites with at most this many cases also get a per-case table (the timing suites).
MAX_CASE_COLUMNS = 4


LEGEND = (
    "PSNR / SSIM: up to a translation (±2 whole px for non-blind methods, ±min(10, kernel half-size) px "
    "with sub-pixel refinement for blind ones; 12 px border ignored). ΔdB X: mean PSNR gain over the anchor X, paired on the same cases. "
    "time ×X: geometric mean over the cases of (seconds / X's seconds); below 1 is faster. "
    "median s: wall time of the method call. PSNR border / interior: plain PSNR on the band of "
    "width 10% of the shorter side along the edges / on the rest. peak MB (+call): median peak RSS of the process during the call (and its "
    "rise over the RSS before the call). "
    "Anchors: " + ", ".join(f"{ANCHOR_LABELS[a]} = `{a}`" for a in ANCHORS) + "."
)


def _machine_md(meta: RunMeta) -> str:
    return ", ".join(f"{k} {v}" for k, v in meta.machine.items())


def render_summary_md(summaries: list[SuiteSummary], meta: RunMeta) -> str:
    """The text of ``summary.md``."""
    from unblur.bench.suites import SUITES

    parts = ["# Benchmark summary", ""]
    parts += [f"- command: `{meta.command}`", f"- commit: `{meta.commit}`", f"- date: {meta.date}",
              f"- machine: {_machine_md(meta)}"]
    if meta.wall_seconds is not None:
        parts.append(f"- wall time of this invocation: {meta.wall_seconds:.1f} s")
    parts.append("")
    for s in summaries:
        desc = SUITES[s.suite].description if s.suite in SUITES else ""
        parts += [f"## {s.suite}", ""]
        if desc:
            parts += [f"{desc} ({s.cases} cases in this run).", ""]
        if len(s.commits) > 1 or (s.commits and s.commits[0] != meta.commit):
            parts += [f"Rows computed at commits: {', '.join(f'`{c}`' for c in s.commits)}.", ""]
        parts += [suite_tables_md(s), ""]
    parts += [LEGEND, ""]
    return "\n".join(parts)


def write_summary(out, summaries: list[SuiteSummary], meta: RunMeta) -> Path:
    """Write ``out/summary.md``; returns its path."""
    p = Path(out) / "summary.md"
    _atomic_write(p, render_summary_md(summaries, meta))
    return p


def _atomic_write(p: Path, text: str) -> None:
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)


# ------------------------------------------------------------------------------------------------
# BENCHMARKS.md
# ------------------------------------------------------------------------------------------------
_BEGIN = "<!-- bench:begin {} -->"
_END = "<!-- bench:end {} -->"
_SECTION_METHOD = re.compile(r"^\| `([^`]+)` \|", re.MULTILINE)
_SECTION = re.compile(r"<!-- bench:begin (\S+) -->\n(.*?)<!-- bench:end \1 -->\n?", re.DOTALL)

BENCHMARKS_HEADER = """# Benchmarks

<!-- Generated by `unblur bench ... --benchmarks-md BENCHMARKS.md`. Do not edit by hand: rerun. -->

This file is generated from real runs of `unblur bench`: each section below is the summary of one
suite, with the exact command, the git commit and the machine of the run it comes from. No number
here is typed by hand; to update a section, rerun its command with `--benchmarks-md BENCHMARKS.md`
(sections of other suites are kept).

{legend}
"""


def update_benchmarks_md(path, summaries: list[SuiteSummary], meta: RunMeta) -> Path:
    """Regenerate ``path`` (BENCHMARKS.md) with one section per suite of ``summaries``.

    Sections of suites not in ``summaries`` are kept as they were; sections are ordered as the
    suite registry. A run on a CUDA device writes its own section (``speed-cuda`` beside
    ``speed``). The header says the file is generated. A section is only replaced by a summary
    that has every method it listed: a run whose results lack some (e.g. one written to a
    fresh ``--out`` folder) raises :class:`~unblur.errors.UserError` and leaves the file unchanged.
    """
    from unblur.bench.suites import SUITES

    p = Path(path)
    sections = {}
    if p.is_file():
        for m in _SECTION.finditer(p.read_text(encoding="utf-8")):
            sections[m.group(1)] = m.group(2)
    gpu = str(meta.machine.get("device", "cpu")).startswith("cuda")
    for s in summaries:
        name = f"{s.suite}-cuda" if gpu else s.suite
        if name in sections:
            lost = sorted(set(_SECTION_METHOD.findall(sections[name])) - {m.method for m in s.methods})
            if lost:
                raise UserError(f"{p}: the {name} section lists {', '.join(lost)}, which this run's results lack; "
                                f"run in the folder that holds those results (default bench-out/{s.suite})")
        desc = SUITES[s.suite].description if s.suite in SUITES else ""
        body = [f"## {s.suite}" + (" on the GPU" if gpu else ""), ""]
        if desc:
            body += [f"{desc}.", ""]
        body += [f"- command: `{meta.command}`", f"- commit: `{meta.commit}`" + (
            f" (rows from {', '.join(f'`{c}`' for c in s.commits)})" if s.commits and s.commits != [meta.commit] else ""),
            f"- date: {meta.date}", f"- machine: {_machine_md(meta)}", "", suite_tables_md(s), ""]
        sections[name] = "\n".join(body) + "\n"
    order = {n: i for i, n in enumerate(SUITES)}
    text = BENCHMARKS_HEADER.format(legend=LEGEND)
    for name in sorted(sections, key=lambda n: (order.get(n.removesuffix("-cuda"), len(order)), n)):
        text += "\n" + _BEGIN.format(name) + "\n" + sections[name] + _END.format(name) + "\n"
    _atomic_write(p, text)
    return p


# ------------------------------------------------------------------------------------------------
# HTML report
# ------------------------------------------------------------------------------------------------
def _fig_png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return _img_tag(buf.getvalue())


def _img_tag(png: bytes, style: str = "", title: str = "") -> str:
    b64 = base64.b64encode(png).decode()
    t = f' title="{html.escape(title)}"' if title else ""
    return f'<img src="data:image/png;base64,{b64}" style="{style}"{t}>'


def _colors(names):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def _plot_psnr_per_group(s: SuiteSummary) -> str:
    from matplotlib.figure import Figure

    methods = [m for m in s.methods if m.psnr is not None]
    if not methods:
        return ""
    groups = s.groups
    col = _colors([m.method for m in methods])
    fig = Figure(figsize=(max(6, 1.1 * len(groups) * (1 + len(methods) / 6)), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / (len(methods) + 1)
    x = np.arange(len(groups))
    ax.bar(x, [s.input_by_group.get(g) or 0 for g in groups], width, color="0.8", label=_input_label(s))
    for i, m in enumerate(methods):
        ax.bar(x + (i + 1) * width, [m.by_group.get(g) or 0 for g in groups], width, color=col[m.method], label=m.method)
    ax.set_xticks(x + 0.4 - width / 2, groups)
    vals = [v for m in methods for v in m.by_group.values() if v] + [v for v in s.input_by_group.values() if v]
    if vals:
        ax.set_ylim(min(vals) - 2, max(vals) + 1)
    ax.set_ylabel("mean PSNR (dB, up to shift)")
    ax.set_title(f"{s.suite}: PSNR per kernel")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return _fig_png(fig)


def _plot_psnr_vs_time(s: SuiteSummary, rows: list[dict]) -> str:
    from matplotlib.figure import Figure

    methods = [m for m in s.methods if m.psnr is not None and m.seconds]
    if not methods:
        return ""
    col = _colors([m.method for m in methods])
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    for m in methods:
        pts = [(_num(r["seconds"]), _num(r["psnr"])) for r in rows
               if r["suite"] == s.suite and r["method"] == m.method and r["status"] == "ok"]
        pts = [(a, b) for a, b in pts if a and b is not None]
        if pts:
            a, b = zip(*pts)
            ax.scatter(a, b, s=8, alpha=0.25, color=col[m.method])
        ax.scatter([m.seconds], [m.psnr], s=60, color=col[m.method], edgecolor="k", marker="D" if m.kind == "anchor" else "o",
                   label=m.method, zorder=3)
        ax.annotate(m.method, (m.seconds, m.psnr), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if s.input_psnr is not None:
        ax.axhline(s.input_psnr, color="0.6", ls="--", lw=1, label=_input_label(s))
    ax.set_xscale("log")
    ax.set_xlabel("seconds per image (log; big marker: median)")
    ax.set_ylabel("PSNR (dB; big marker: mean)")
    ax.set_title(f"{s.suite}: quality vs time (diamonds: anchors)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _fig_png(fig)


def _read_png(path: Path):
    from unblur import io

    return io.read_image(path).pixels


def _png_bytes(a: np.ndarray) -> bytes:
    from PIL import Image

    a = np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    buf = _io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _kernel_montage(s: SuiteSummary, out: Path, saved: dict) -> str:
    """True vs estimated kernels of the blind methods on the saved cases of a suite."""
    from matplotlib.figure import Figure

    blind = [m.method for m in s.methods if m.kind == "blind"]
    cases = [c for c in saved if any((out / saved[c] / f"{b}_kernel.npy").is_file() for b in blind)]
    if not blind or not cases:
        return "<p>No kernel estimates in this suite (no blind method ran on a saved case).</p>"
    cols = ["truth"] + blind
    fig = Figure(figsize=(1.4 * len(cols), 1.5 * len(cases)))
    for i, c in enumerate(cases):
        for j, name in enumerate(cols):
            ax = fig.add_subplot(len(cases), len(cols), i * len(cols) + j + 1)
            f = out / saved[c] / ("kernel.npy" if name == "truth" else f"{name}_kernel.npy")
            if f.is_file():
                ax.imshow(np.load(f), cmap="gray", interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "none", ha="center", va="center", fontsize=7, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
            if j == 0:
                ax.set_ylabel(c, fontsize=6)
    return _fig_png(fig)


def _crops(s: SuiteSummary, out: Path, saved: dict, rows: list[dict]) -> str:
    """Before/after crops (a corner: boundary, and the centre) of the saved cases of a suite."""
    parts = []
    psnr_of = {(r["case"], r["method"]): _num(r["psnr"]) for r in rows if r["suite"] == s.suite and r["status"] == "ok"}
    methods = [m.method for m in s.methods]
    for case, rel in saved.items():
        d = out / rel
        cols = [("truth", d / "truth.png"), ("blurred", d / "blurred.png")] + [(m, d / f"{m}.png") for m in methods]
        cols = [(n, p) for n, p in cols if p.is_file()]
        if len(cols) < 2:
            continue
        imgs = {n: _read_png(p) for n, p in cols}
        H, W = next(iter(imgs.values())).shape[:2]
        c = max(32, min(128, H // 3, W // 3))
        windows = {"corner": (0, 0), "centre": ((H - c) // 2, (W - c) // 2)}
        head = "".join(f"<th>{html.escape(n)}</th>" for n, _ in cols)
        body = ""
        for wname, (top, left) in windows.items():
            cells = ""
            for n, _ in cols:
                a = imgs[n]
                if a.shape[:2] != (H, W):
                    cells += "<td>size differs</td>"
                    continue
                crop = a[top : top + c, left : left + c]
                p = psnr_of.get((case, n))
                if n == "blurred":
                    p = _num(next((r.get("psnr_input") for r in rows if r["suite"] == s.suite and r["case"] == case), None))
                cap = "" if p is None else f"{p:.2f} dB"
                cells += f'<td>{_img_tag(_png_bytes(crop), style=f"width:{2 * c}px;image-rendering:pixelated")}<br><small>{cap}</small></td>'
            body += f"<tr><th>{wname}</th>{cells}</tr>"
        parts.append(f"<h4>{html.escape(case)}</h4><div class='scroll'><table class='crops'><tr><th></th>{head}</tr>{body}</table></div>")
    return "\n".join(parts) if parts else "<p>No saved images for this suite.</p>"


def _visual_grid(s: SuiteSummary, out: Path, saved: dict) -> str:
    """Real photos without ground truth: the input and each method's output, linked from images/."""
    methods = [m.method for m in s.methods]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["blurred"] + methods)
    body = ""
    for case, rel in saved.items():
        cells = ""
        for n in ["blurred"] + methods:
            f = f"{rel}/{n}.png"
            cells += f'<td><a href="{html.escape(f)}"><img src="{html.escape(f)}" loading="lazy" style="max-width:360px"></a></td>' \
                if (out / f).is_file() else "<td>–</td>"
        body += f"<tr><th>{html.escape(case)}</th>{cells}</tr>"
    return f"<div class='scroll'><table class='crops'><tr><th></th>{head}</tr>{body}</table></div>"


def _md_table_to_html(md: str) -> str:
    out, rows = [], []

    def flush():
        if rows:
            h = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
            b = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[2:])
            out.append(f"<table class='stats'><tr>{h}</tr>{b}</table>")
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            rows.append([c.strip().strip("`*") for c in line.strip().strip("|").split("|")])
        else:
            flush()
            if line.strip():
                out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1600px;color:#222}
table{border-collapse:collapse;margin:.6em 0}
table.stats td,table.stats th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right}
table.stats td:first-child{text-align:left}
table.crops td,table.crops th{padding:2px;font-size:11px;text-align:center;vertical-align:top}
.scroll{overflow-x:auto}
code{background:#f3f3f3;padding:1px 3px}
"""


def write_report(out, rows: list[dict], summaries: list[SuiteSummary], meta: RunMeta) -> Path:
    """Write ``out/report.html`` (plots, kernel montage, crops) and return its path."""
    from unblur.bench.runner import case_dir
    from unblur.bench.suites import SUITES

    out = Path(out)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>unblur bench</title><style>{_CSS}</style></head><body>",
             "<h1>unblur benchmark report</h1>",
             (f"<p>command: <code>{html.escape(meta.command)}</code><br>commit: <code>{html.escape(meta.commit)}</code>"
              f"<br>date: {html.escape(meta.date)}<br>machine: {html.escape(_machine_md(meta))}</p>"),
             f"<p><small>{html.escape(LEGEND)}</small></p>"]
    for s in summaries:
        # saved images of this suite: case -> folder (relative to out), in the order of the rows
        saved = {}
        for r in rows:
            if r["suite"] == s.suite and r["case"] not in saved:
                rel = case_dir(r["suite"], r["case"])
                if (out / rel / "blurred.png").is_file():
                    saved[r["case"]] = rel
        parts.append(f"<h2>{html.escape(s.suite)}</h2>")
        if s.suite in SUITES:
            parts.append(f"<p>{html.escape(SUITES[s.suite].description)}</p>")
        parts.append(_md_table_to_html(suite_tables_md(s)))
        if s.input_psnr is not None:
            parts.append("<h3>PSNR per kernel</h3>" + _plot_psnr_per_group(s))
            parts.append("<h3>PSNR vs time</h3>" + _plot_psnr_vs_time(s, rows))
        parts.append("<h3>Kernels: truth vs estimates</h3>" + _kernel_montage(s, out, saved))
        if s.input_psnr is not None:
            parts.append("<h3>Before / after crops</h3><p>Top-left corner (where boundary artefacts show: compare "
                         "<code>wiener-circular</code> with the others) and centre, 2x nearest-neighbour zoom; "
                         "captions: PSNR of the whole image up to shift.</p>" + _crops(s, out, saved, rows))
        else:
            parts.append("<h3>Outputs</h3><p>No ground truth: look at them. Click for full size.</p>" + _visual_grid(s, out, saved))
    parts.append("</body></html>")
    p = out / "report.html"
    _atomic_write(p, "\n".join(parts))
    return p
