"""The benchmark harness: suites, method registry, runner (resume, parallel), reports, CLI."""
import csv
import functools
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch

from unblur.bench import methods as bm
from unblur.bench import suites as bs
from unblur.bench.report import RunMeta, summarize, update_benchmarks_md
from unblur.bench.runner import COLUMNS, read_results, run_bench
from unblur.cli import main
from unblur.errors import UserError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "lai2016").is_dir() or not (DATA / "natural").is_dir(),
                                reason="reference data ../shared/data not present")


# ------------------------------------------------------------------------------------------------
# a tiny suite and fake methods, registered for the duration of a test
# ------------------------------------------------------------------------------------------------
def _tiny_builder(seed: int, ksize: int | None) -> bs.CaseData:
    from unblur.blur.kernels import camera_shake_kernel
    from unblur.blur.synth import Degradation, degrade

    img = torch.from_numpy(skimage.data.camera()[100 + 10 * seed : 180 + 10 * seed, 150:230].astype(np.float32) / 255)[None, None]
    if ksize is None:  # a "real" pair without kernel: a shifted copy as the blurred image
        return bs.CaseData(torch.roll(img, 1, -1), img, None)
    k = camera_shake_kernel(size=ksize, rng=seed)
    y, truth = degrade(img, k, Degradation(sigma=0.01), generator=seed)
    return bs.CaseData(y, truth, k)


def _tiny_suite(root):
    cases = [bs.Case(f"img{i}/k{ks}", "test-tiny", f"k{ks}", "camera", 0.01, ks, True, functools.partial(_tiny_builder, i, ks))
             for i, ks in enumerate((5, 7, 9))]
    cases.append(bs.Case("pair", "test-tiny", "pair", "camera", None, None, True, functools.partial(_tiny_builder, 3, None)))
    return cases


CALLS = []


def _counting(blurred, kernel):
    """A non-blind 'method': returns its input and records the call."""
    CALLS.append(tuple(blurred.shape))
    return blurred


def _fake_blind(blurred):
    k = torch.zeros(5, 5)
    k[2, 2] = 1
    return blurred, k


INTERRUPT_AT = []


def _interrupting(blurred, kernel):
    if len(CALLS) >= INTERRUPT_AT[0]:
        raise KeyboardInterrupt
    CALLS.append(tuple(blurred.shape))
    return blurred


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setitem(bs.SUITES, "test-tiny", bs.Suite("test-tiny", "tiny synthetic suite for tests", _tiny_suite))
    for name, fn, blind in (("test-count", _counting, False), ("test-blind", _fake_blind, True),
                            ("test-interrupt", _interrupting, False)):
        monkeypatch.setitem(bm.METHODS, name, bm.Method(name, blind, fn, {}, False, "test method", warmup=False))
    monkeypatch.setenv("UNBLUR_NO_PROGRESS", "1")
    monkeypatch.setenv(bs.DATA_ENV, str(tmp_path))  # the tiny suite reads no data
    CALLS.clear()
    return tmp_path


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------
def test_anchors_and_solvers_registered():
    from unblur.deconv import METHODS as SOLVERS

    for name in bm.ANCHORS:
        m = bm.METHODS[name]
        assert m.anchor and not m.blind and m.kind == "anchor"
    assert {"skimage-wiener", "skimage-unsupervised-wiener", "skimage-rl"} <= set(bm.ANCHORS)
    for name in list(SOLVERS) + ["wiener-circular"]:
        assert name in bm.METHODS and not bm.METHODS[name].blind
    assert bm.METHODS["skimage-rl"].params == {"num_iter": 30}
    with pytest.raises(ValueError):
        bm.register("skimage-wiener", lambda y, k: y, blind=False)
    with pytest.raises(UserError):
        bm.get_method("no-such-method")


def test_anchors_restore_a_blurred_image():
    from unblur.blur.kernels import camera_shake_kernel
    from unblur.blur.synth import Degradation, degrade

    img = torch.from_numpy(skimage.data.camera()[200:300, 200:300].astype(np.float32) / 255)[None, None]
    k = camera_shake_kernel(9, rng=1)
    y, truth = degrade(img, k, Degradation(sigma=0.005), generator=0)
    before = float(((y - truth) ** 2).mean())
    for name in (a for a in bm.ANCHORS if bm.METHODS[a].task == "deblur"):
        x, est = bm.METHODS[name].run(y, k)
        assert x.shape == y.shape and est is None and torch.isfinite(x).all()
        if name != "skimage-unsupervised-wiener":  # it over-sharpens small images: no claim
            assert float(((x - truth) ** 2).mean()) < before, name


def test_denoisers_run_on_the_denoise_suite_only(data_root):
    from unblur.bench.suites import get_suite

    cases = get_suite("denoise", data_root)
    assert len(cases) == 136 and all(c.task == "denoise" and not c.has_kernel for c in cases)
    assert cases[0].load().blurred.shape == cases[0].load().truth.shape
    for name in ("denoise", "denoise-estimated", "bm3d"):
        assert bm.METHODS[name].applies_to(cases[0])
    assert not bm.METHODS["tv"].applies_to(cases[0]) and not bm.METHODS["deblur-map"].applies_to(cases[0])
    shake = get_suite("shake-synth", data_root)[0]
    assert not bm.METHODS["denoise"].applies_to(shake)


def test_bm3d_anchor_denoises():
    pytest.importorskip("bm3d")
    clean = torch.from_numpy(skimage.data.camera()[200:264, 200:264].astype(np.float32) / 255)[None, None]
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    x, est = bm.METHODS["bm3d"].run(noisy, None, 0.1)
    assert est is None and float(((x - clean) ** 2).mean()) < 0.3 * float(((noisy - clean) ** 2).mean())


def test_register_decorator_for_blind_methods(monkeypatch):
    monkeypatch.setattr(bm, "METHODS", dict(bm.METHODS))

    @bm.register("test-deco", blind=True, params={"a": 1})
    def _m(blurred, a=0):
        return blurred, torch.ones(3, 3) / 9

    m = bm.METHODS["test-deco"]
    assert m.blind and m.params == {"a": 1} and _m is m.fn
    x, k = m.run(torch.rand(1, 1, 16, 16))
    assert x.shape == (1, 1, 16, 16) and k.shape == (3, 3)


# ------------------------------------------------------------------------------------------------
# suites
# ------------------------------------------------------------------------------------------------
def test_unknown_suite_and_missing_data(tmp_path):
    with pytest.raises(UserError, match="unknown suite"):
        bs.get_suite("no-such-suite", tmp_path)
    with pytest.raises(UserError, match="lai2016"):
        bs.get_suite("lai-synth", tmp_path)
    with pytest.raises(UserError, match="not found"):
        bs.resolve_data_root(tmp_path / "absent")


def test_suite_determinism_tiny(tiny):
    a, b = bs.get_suite("test-tiny"), bs.get_suite("test-tiny")
    assert [c.id for c in a] == [c.id for c in b]
    for ca, cb in zip(a, b):
        da, db = ca.load(), cb.load()
        assert torch.equal(da.blurred, db.blurred) and torch.equal(da.truth, db.truth)


@needs_data
def test_suite_definitions_and_determinism():
    counts = {name: len(bs.get_suite(name, DATA)) for name in ("lai-synth", "shake-synth", "gopro", "speed", "quick", "visual")}
    assert counts == {"lai-synth": 100, "shake-synth": 144, "gopro": 6, "speed": 2, "quick": 4, "visual": 100}
    lai = bs.get_suite("lai-synth", DATA)
    assert {c.group for c in lai} == {f"kernel_0{i}" for i in range(1, 5)}
    assert [c.kernel_size for c in lai[:1]] == [31] and all(c.sigma == 0.01 for c in lai)
    quick = bs.get_suite("quick", DATA)
    # the same case twice, from two listings: bit-identical tensors
    for case in (quick[0], quick[2]):
        twin = next(c for c in bs.get_suite("quick", DATA) if c.id == case.id)
        d1, d2 = case.load(), twin.load()
        assert torch.equal(d1.blurred, d2.blurred) and torch.equal(d1.truth, d2.truth) and torch.equal(d1.kernel, d2.kernel)
        assert d1.blurred.shape == d1.truth.shape
        kh, kw = d1.kernel.shape
        assert (kh, kw) == (case.kernel_size, case.kernel_size)
    # quick's cases are those of their parent suites
    parent = {c.id: c for c in bs.get_suite("shake-synth", DATA)}
    assert torch.equal(parent[quick[2].id].load().blurred, quick[2].load().blurred)
    assert all(not c.has_kernel for c in bs.get_suite("gopro", DATA))
    assert all(not c.has_truth for c in bs.get_suite("visual", DATA))
    # large: the speed case's recipe at 12 and 24 MP (cases are not loaded here: 24 MP takes seconds)
    large = bs.get_suite("large", DATA)
    assert [c.meta["blurred_size"] for c in large] == [[3000, 4000], [4000, 6000]]
    speed = bs.get_suite("speed", DATA)
    assert [c.id for c in speed] == ["manmade_01-1MP/shake-31", "set12_08-255px/shake-31"]
    assert speed[1].meta["blurred_size"] == [255, 255] and speed[1].source == "natural/set12_gray/08.png"
    # denoise-speed: the 1 MP image of speed, sharp, with the denoise suite's noise
    (case,) = bs.get_suite("denoise-speed", DATA)
    d = case.load()
    assert case.task == "denoise" and tuple(d.truth.shape) == (1, 3, *bs.SPEED_BLURRED)
    assert float((d.blurred - d.truth).std()) == pytest.approx(25 / 255, rel=0.01)
    assert bs.SUITES["denoise-speed"].repeats == bs.SPEED_REPEATS


@needs_data
def test_train_shake_is_a_training_set_of_two_kernel_families():
    """The tuning suite reads training images only; its "fill" kernels reach the edge of their support."""
    cases = bs.get_suite("train-shake", DATA)
    assert len(cases) == 2 * bs.TRAIN_CASES and len({c.id for c in cases}) == len(cases)
    assert all(c.source.startswith("natural/cbsd432/") for c in cases)
    fill = [c for c in cases if c.id.startswith("fill/")]
    assert {c.kernel_size for c in fill} == {31, 41, 51, 61} and all(c.sigma == 0.01 for c in fill)
    assert {c.sigma for c in cases if c.id.startswith("compact/")} == {0.005, 0.01, 0.02}

    def reach(k):  # largest distance of a tap from the centre, as a fraction of the half-size
        rows, cols = torch.nonzero(k > 0, as_tuple=True)
        c = k.shape[-1] // 2
        return float(torch.maximum((rows - c).abs(), (cols - c).abs()).max()) / c

    d1, d2 = fill[1].load(), bs.get_suite("train-shake", DATA)[1].load()
    assert torch.equal(d1.blurred, d2.blurred) and torch.equal(d1.kernel, d2.kernel)
    assert reach(d1.kernel) > 0.85 > reach(cases[bs.TRAIN_CASES + 3].load().kernel)


@needs_data
def test_suite_default_methods():
    """``large`` runs its own method list when none is named; other suites run every method."""
    from unblur.bench.runner import plan

    work = plan(["large"], data_root=DATA)
    assert [[m.name for m in ms] for _, ms in work] == [list(bs.LARGE_METHODS)] * 2
    assert [[m.name for m in ms] for _, ms in plan(["large"], ["tv"], data_root=DATA)] == [["tv"]] * 2
    assert len(plan(["speed"], data_root=DATA)[0][1]) > len(bs.LARGE_METHODS)


# ------------------------------------------------------------------------------------------------
# runner
# ------------------------------------------------------------------------------------------------
def test_timing_suites_repeat_each_call(tiny, monkeypatch):
    assert bs.SUITES["speed"].repeats == bs.SPEED_REPEATS > 1 and bs.SUITES["lai-synth"].repeats == 1
    monkeypatch.setitem(bs.SUITES, "test-tiny", bs.Suite("test-tiny", "tiny", _tiny_suite, repeats=3))
    run_bench(["test-tiny"], ["test-count"], tiny / "rep", progress=False)
    rows = read_results(tiny / "rep" / "results.csv")
    assert len(CALLS) == 3 * len(rows) and len(rows) == 3 and all(r["status"] == "ok" for r in rows)


def test_run_rows_metrics_and_applicability(tiny):
    out = tiny / "run"
    res = run_bench(["test-tiny"], ["test-count", "test-blind", "skimage-wiener"], out, progress=False)
    rows = read_results(out / "results.csv")
    assert res.computed == len(rows) == 3 * 2 + 4  # non-blind methods skip the case without kernel
    assert res.errors == 0 and all(r["status"] == "ok" for r in rows)
    with open(out / "results.csv", newline="") as f:
        assert next(csv.reader(f)) == COLUMNS
    by = {(r["case"], r["method"]): r for r in rows}
    assert ("pair", "test-count") not in by and ("pair", "test-blind") in by
    r = by[("img0/k5", "test-count")]
    # the identity 'method' scores exactly as the blurred input
    assert float(r["psnr_aligned"]) == pytest.approx(float(r["psnr_input"]), abs=1e-3)
    assert float(r["seconds"]) >= 0 and float(r["peak_mb"]) > 0
    assert r["kind"] == "non-blind" and by[("img0/k5", "skimage-wiener")]["kind"] == "anchor"
    assert by[("img0/k5", "skimage-wiener")]["psnr"] > r["psnr"]
    assert 0 < float(by[("img1/k7", "test-blind")]["kernel_similarity"]) <= 1
    assert r["kernel_similarity"] == ""
    # the blind method finds the one-pixel shift of the kernel-less pair
    assert float(by[("pair", "test-blind")]["psnr"]) > 60
    assert float(by[("pair", "test-blind")]["shift_x"]) == pytest.approx(1, abs=0.05)
    assert (out / "images" / "test-tiny" / "img0__k5" / "test-count.png").is_file()


def test_resume_after_interruption(tiny):
    out = tiny / "run"
    INTERRUPT_AT[:] = [2]
    with pytest.raises(KeyboardInterrupt):
        run_bench(["test-tiny"], ["test-interrupt"], out, progress=False)
    assert len(CALLS) == 2 and len(read_results(out / "results.csv")) == 2
    # a line cut short by the interruption is dropped, and the file rewritten cleanly
    with open(out / "results.csv", "a") as f:
        f.write("test-tiny,img2/k9,k9,camera,9")
    INTERRUPT_AT[:] = [100]
    res = run_bench(["test-tiny"], ["test-interrupt"], out, progress=False)
    assert res.skipped == 2 and res.computed == 1 and len(CALLS) == 3
    rows = read_results(out / "results.csv")
    assert sorted(r["case"] for r in rows) == ["img0/k5", "img1/k7", "img2/k9"]
    # limit 1 then 2 with another method: only the new pair is computed the second time
    CALLS.clear()
    run_bench(["test-tiny"], ["test-count"], out, limit=1, progress=False)
    run_bench(["test-tiny"], ["test-count"], out, limit=2, progress=False)
    assert len(CALLS) == 2
    assert len(read_results(out / "results.csv")) == 5
    # rerun recomputes the planned pairs only and keeps the other rows
    CALLS.clear()
    res = run_bench(["test-tiny"], ["test-count"], out, limit=1, progress=False, rerun=True)
    assert len(CALLS) == 1 and res.computed == 1 and res.skipped == 0
    assert len(read_results(out / "results.csv")) == 5


def test_timed_suites_warn_about_parallel_jobs(tiny, capsys):
    assert all(bs.SUITES[n].timed for n in ("speed", "denoise-speed", "large")) and not bs.SUITES["lai-synth"].timed
    assert bs.Suite("t", "t", _tiny_suite, repeats=3).timed  # repeated calls are timed ones
    run_bench(["test-tiny"], ["test-count"], tiny / "untimed", jobs=2, progress=False)
    assert "meant for one job" not in capsys.readouterr().err
    tiny_timed = bs.Suite("test-tiny", "tiny", _tiny_suite, timed=True)
    for jobs, warned in ((1, False), (2, True)):
        bs.SUITES["test-tiny"] = tiny_timed
        run_bench(["test-tiny"], ["test-count"], tiny / f"timed{jobs}", jobs=jobs, progress=False)
        assert ("times of test-tiny are meant for one job" in " ".join(capsys.readouterr().err.split())) == warned


def test_parallel_jobs_match_serial(tiny):
    serial = run_bench(["test-tiny"], ["test-count", "skimage-wiener"], tiny / "a", progress=False)
    parallel = run_bench(["test-tiny"], ["test-count", "skimage-wiener"], tiny / "b", jobs=2, progress=False)
    key = lambda r: (r["case"], r["method"])
    a, b = sorted(serial.rows, key=key), sorted(parallel.rows, key=key)
    assert [key(r) for r in a] == [key(r) for r in b]
    assert [r["psnr"] for r in a] == [r["psnr"] for r in b]
    assert [r["input_sha"] for r in a] == [r["input_sha"] for r in b]


def test_failing_method_is_recorded(tiny, monkeypatch):
    def boom(blurred, kernel):
        raise RuntimeError("solver exploded")

    monkeypatch.setitem(bm.METHODS, "test-boom", bm.Method("test-boom", False, boom))
    res = run_bench(["test-tiny"], ["test-boom"], tiny / "run", limit=1, progress=False)
    assert res.errors == 1 and "solver exploded" in res.rows[0]["status"]
    # the next run retries it (and replaces the failed row)
    monkeypatch.setitem(bm.METHODS, "test-boom", bm.Method("test-boom", False, _counting, warmup=False))
    res = run_bench(["test-tiny"], ["test-boom"], tiny / "run", limit=1, progress=False)
    assert res.computed == 1 and [r["status"] for r in res.rows] == ["ok"]


def _real_suite(root):
    return [bs.Case(f"photo{i}", "test-real", "real", "camera", None, None, False, functools.partial(_real_builder, i))
            for i in range(2)]


def _real_builder(i):
    return bs.CaseData(_tiny_builder(i, 5).blurred, None, None)


def test_suite_without_ground_truth(tiny, monkeypatch):
    monkeypatch.setitem(bs.SUITES, "test-real", bs.Suite("test-real", "photos without ground truth", _real_suite))
    out = tiny / "real"
    with pytest.raises(UserError, match="blind"):
        run_bench(["test-real"], ["test-count"], out, progress=False)
    assert main(["bench", "--suite", "test-real", "--methods", "test-blind,test-count", "--out", str(out)]) == 0
    rows = read_results(out / "results.csv")
    assert [r["method"] for r in rows] == ["test-blind"] * 2 and rows[0]["psnr"] == ""
    report = (out / "report.html").read_text()
    assert 'src="images/test-real/photo0/test-blind.png"' in report
    assert "test-blind" in (out / "summary.md").read_text()


# ------------------------------------------------------------------------------------------------
# command line and reports
# ------------------------------------------------------------------------------------------------
def test_cli_end_to_end(tiny, capsys):
    out = tiny / "cli"
    bench_md = tiny / "BENCHMARKS.md"
    rc = main(["bench", "--suite", "test-tiny", "--methods", "test-count,test-blind,skimage-wiener,skimage-rl",
               "--out", str(out), "--benchmarks-md", str(bench_md)])
    assert rc == 0
    rows = read_results(out / "results.csv")
    assert {r["method"] for r in rows} == {"test-count", "test-blind", "skimage-wiener", "skimage-rl"}
    summary = (out / "summary.md").read_text()
    report = (out / "report.html").read_text()
    for name in ("test-count", "test-blind", "skimage-wiener", "skimage-rl"):
        assert name in summary and name in report
    assert "ΔdB sk-wiener" in summary and "commit" in summary and "unblur bench" in summary
    assert "torch" in summary and "cores" in summary
    assert "data:image/png;base64" in report and "<h2>test-tiny</h2>" in report
    md = bench_md.read_text()
    assert "generated" in md.lower() and "<!-- bench:begin test-tiny -->" in md and "skimage-rl" in md
    assert "wrote" in capsys.readouterr().out
    # rerun: nothing new to compute
    assert main(["bench", "--suite", "test-tiny", "--methods", "test-count", "--out", str(out)]) == 0
    assert "0 results computed" in capsys.readouterr().out


def test_cli_report_only_computes_nothing(tiny, capsys):
    out, md = tiny / "ro", tiny / "B.md"
    assert main(["bench", "--suite", "test-tiny", "--report-only", "--out", str(out)]) == 2
    assert "no results" in capsys.readouterr().err
    assert main(["bench", "--suite", "test-tiny", "--methods", "test-count,test-blind", "--out", str(out)]) == 0
    before = (out / "results.csv").read_text()
    capsys.readouterr()
    # without --report-only, a method missing from --out (skimage-rl here) would be computed
    assert main(["bench", "--suite", "test-tiny", "--methods", "test-blind,skimage-rl", "--report-only",
                 "--out", str(out), "--benchmarks-md", str(md)]) == 0
    assert (out / "results.csv").read_text() == before
    assert "results computed" not in capsys.readouterr().out
    section = md.read_text()
    assert "| `test-blind` |" in section and "| `test-count` |" not in section and "| `skimage-rl` |" not in section
    # it never deletes or recomputes what it reports
    assert main(["bench", "--suite", "test-tiny", "--report-only", "--overwrite", "--out", str(out)]) == 2
    assert (out / "results.csv").read_text() == before
    # rows computed on another device are reported where they were computed
    assert main(["--device", "cpu", "bench", "--suite", "test-tiny", "--report-only", "--out", str(out)]) == 0
    (out / "results.csv").write_text(before.replace(",cpu,", ",cuda,"))
    capsys.readouterr()
    assert main(["--device", "cpu", "bench", "--suite", "test-tiny", "--report-only", "--out", str(out)]) == 2
    assert "computed on cuda" in capsys.readouterr().err


def test_cli_user_errors(tiny, capsys):
    assert main(["bench", "--suite", "no-such-suite", "--out", str(tiny / "x")]) == 2
    assert main(["bench", "--suite", "test-tiny", "--methods", "nope", "--out", str(tiny / "x")]) == 2
    assert main(["bench", "--suite", "test-tiny", "--jobs", "0", "--out", str(tiny / "x")]) == 2
    assert main(["bench", "--suite", "lai-synth", "--data", str(tiny / "absent"), "--out", str(tiny / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown suite" in err and "unknown method" in err
    assert main(["bench", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "lai-synth" in listing and "skimage-unsupervised-wiener" in listing and "anchor" in listing


def test_benchmarks_md_keeps_other_suites(tmp_path):
    def rows(suite, psnr):
        return [{"suite": suite, "case": "c", "group": "g", "method": "m", "kind": "non-blind", "status": "ok", "psnr": str(psnr),
                 "ssim": "0.5", "seconds": "1", "psnr_input": "20", "ssim_input": "0.4", "commit": "abc"}]

    meta = RunMeta("unblur bench", "abc", {"cpu": "x"})
    p = tmp_path / "BENCHMARKS.md"
    update_benchmarks_md(p, summarize(rows("lai-synth", 25.5)), meta)
    update_benchmarks_md(p, summarize(rows("shake-synth", 27.25)), meta)
    text = p.read_text()
    assert "25.50" in text and "27.25" in text and text.index("lai-synth") < text.index("## shake-synth")
    update_benchmarks_md(p, summarize(rows("lai-synth", 26.0)), meta)
    text = p.read_text()
    assert "26.00" in text and "25.50" not in text and "27.25" in text
    # a run whose results lack a method the section lists must not erase that method's rows
    fewer = [dict(r, method="other") for r in rows("lai-synth", 30.0)]
    with pytest.raises(UserError, match="lists m,"):
        update_benchmarks_md(p, summarize(fewer), meta)
    assert p.read_text() == text
    # a GPU run gets its own section beside the CPU one, which stays
    update_benchmarks_md(p, summarize(rows("lai-synth", 31.0)), RunMeta("unblur bench", "abc", {"device": "cuda (H100)"}))
    gpu = p.read_text()
    assert "<!-- bench:begin lai-synth-cuda -->" in gpu and "## lai-synth on the GPU" in gpu and "31.00" in gpu
    assert "26.00" in gpu and gpu.index("begin lai-synth -->") < gpu.index("begin lai-synth-cuda") < gpu.index("## shake-synth")


def test_tables_name_the_input_of_each_suite():
    from unblur.bench.report import suite_tables_md

    def table(suite):
        row = {"suite": suite, "case": "c", "group": "g", "method": "m", "kind": "non-blind", "status": "ok",
               "psnr": "30", "ssim": "0.8", "seconds": "1", "psnr_input": "20", "ssim_input": "0.4", "commit": "abc"}
        return suite_tables_md(summarize([row])[0])

    assert "| *noisy input* |  | 1 | 20.00 |" in table("denoise") and "blurred" not in table("denoise")
    assert "| *blurred input* |  | 1 | 20.00 |" in table("lai-synth")


def test_suites_with_several_noise_levels_get_a_table_per_level():
    from unblur.bench.report import suite_tables_md

    def row(case, method, noise, psnr):
        return {"suite": "shake-synth", "case": case, "group": "g", "noise": str(noise), "method": method, "kind": "blind",
                "status": "ok", "psnr": str(psnr), "ssim": "0.8", "seconds": "1", "psnr_input": "26" if noise < 0.015 else "20",
                "ssim_input": "0.4", "commit": "abc"}

    rows = [row("a", "m", 0.01, 30), row("b", "m", 0.01, 32), row("c", "m", 0.02, 25), row("a", "n", 0.01, 29)]
    text = suite_tables_md(summarize(rows)[0])
    assert "| method | 1 % | 2 % |" in text
    assert "| `m` | 31.00 | 25.00 |" in text and "| `n` | 29.00 | – |" in text and "| *blurred input* | 26.00 | 20.00 |" in text
    assert "per noise level" not in suite_tables_md(summarize([r for r in rows if r["noise"] == "0.01"])[0])


@needs_data
def test_quick_suite_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("UNBLUR_NO_PROGRESS", "1")
    out = tmp_path / "quick"
    assert main(["bench", "--suite", "quick", "--limit", "1", "--methods", "wiener,skimage-wiener",
                 "--out", str(out), "--data", str(DATA)]) == 0
    rows = read_results(out / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert all(float(r["psnr"]) > float(r["psnr_input"]) for r in rows)
