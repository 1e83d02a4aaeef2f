"""Training's two fits run side by side (the hold-out part in a forked child): same results as one after
the other, and the child's failure reaches the caller."""

from __future__ import annotations

import os

import pytest

from classifier import training
from classifier.training import run_beside


class Part:
    """Stands in for the hold-out part: returns the process it ran in, so the test can tell."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def run(self) -> tuple[float, dict]:
        if self.fail:
            raise ValueError("hold-out fit failed")
        return 3.4, {"pid": os.getpid()}


def test_the_hold_out_part_runs_in_a_child_beside_the_final_fit() -> None:
    final, calibration, report = run_beside(Part(), lambda: "final model")  # type: ignore[arg-type, return-value]
    assert (final, calibration) == ("final model", 3.4)
    assert report["pid"] != os.getpid()


def test_one_core_runs_them_one_after_the_other_with_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training.os, "cpu_count", lambda: 1)
    final, calibration, report = run_beside(Part(), lambda: "final model")  # type: ignore[arg-type, return-value]
    assert (final, calibration, report) == ("final model", 3.4, {"pid": os.getpid()})


def test_a_failing_hold_out_fit_fails_the_training() -> None:
    with pytest.raises(ValueError, match="hold-out fit failed"):
        run_beside(Part(fail=True), lambda: "final model")  # type: ignore[arg-type, return-value]
