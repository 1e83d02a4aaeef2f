"""benchmarks/_common.py: the median of runs leaves out runs that produced no figure (NaN), whatever their order."""

from __future__ import annotations

import importlib.util
import math
from itertools import permutations
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "_common.py"
_spec = importlib.util.spec_from_file_location("bench_common", _PATH)
assert _spec and _spec.loader
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)

NAN = float("nan")


def test_a_timed_out_run_is_left_out_in_any_order() -> None:
    # statistics.median answered 11.0 or 12.0 for these runs depending on where the NaN stood
    for runs in permutations([10.0, NAN, 12.0, 11.0, 13.0]):
        assert common.median(list(runs)) == 11.5
        assert common.failed(list(runs)) == 1


def test_runs_without_nan_keep_the_plain_median() -> None:
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert common.failed([1.0, 2.0]) == 0


def test_no_figure_at_all_is_nan() -> None:
    assert math.isnan(common.median([NAN, NAN]))
    assert math.isnan(common.median([]))
    assert common.failed([NAN, NAN]) == 2
