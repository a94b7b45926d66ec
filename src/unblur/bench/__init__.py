"""The benchmark harness behind ``unblur bench``: suites, methods, runner and reports.

* :mod:`unblur.bench.suites` -- named, deterministic sets of cases built from the reference data.
* :mod:`unblur.bench.methods` -- the registry of methods (unblur's and peer anchors).
* :mod:`unblur.bench.runner` -- runs cases x methods into a resumable ``results.csv``.
* :mod:`unblur.bench.report` -- ``summary.md``, ``report.html`` and ``BENCHMARKS.md``.

Every quality and speed figure of the project comes from here.
"""
from unblur.bench.methods import METHODS, Method, register
from unblur.bench.runner import run_bench
from unblur.bench.suites import SUITES, Case, get_suite

__all__ = ["METHODS", "SUITES", "Case", "Method", "get_suite", "register", "run_bench"]
