"""Helpers shared by the benchmark scripts: the data folder, the shipped model, medians."""

from __future__ import annotations

import atexit
import csv
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def data_file(name: str) -> Path:
    """A file of ../shared/data, or exit cleanly (status 0, a message) when it is absent."""
    path = SHARED_DATA / name
    if not path.is_file():
        print(f"skipped: {path} is not here (the benchmark reads real messages from ../shared/data)")
        sys.exit(0)
    return path


def read_csv(name: str) -> list[dict[str, str]]:
    with open(data_file(name), encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def median(xs: list[float]) -> float:
    """The median of the runs that produced a figure. A run that timed out or saw nothing reports NaN: it is
    left out (print how many, see :func:`failed`), because ``statistics.median`` sorts NaN arbitrarily and
    would answer a different figure for the same runs in another order. NaN when no run produced one."""
    finite = [x for x in xs if not math.isnan(x)]
    return statistics.median(finite) if finite else float("nan")


def failed(xs: list[float]) -> int:
    """How many runs reported NaN (timed out, saw nothing): what :func:`median` left out."""
    return sum(1 for x in xs if math.isnan(x))


def shipped_model_dir(remove_at_exit: bool = False) -> Path:
    """Train the shipped model (team corpus, deterministic) into a temporary folder; return it.

    ``remove_at_exit``: delete the folder (~50 MB) when this process exits, for a script that trains its own
    model; the A/B recipe of README.md keeps it (the default) to hand it to several runs."""
    from classifier.training import team_dataset, train
    from config.catalogue import load_catalogue
    from config.settings import Settings

    settings = Settings()
    catalogue = load_catalogue(settings.domain_data_dir)
    folder = Path(tempfile.mkdtemp(prefix="hotline-bench-model-"))
    if remove_at_exit:
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    train(team_dataset(catalogue), catalogue, folder, threshold=settings.confidence_threshold)
    return folder


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, its children that exited included (Linux /proc);
    0 when it is gone."""
    import os

    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2:].split()
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), i.e. 11-14 after the command name
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant (a worker's classifier children, say)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(raw[raw.rindex(")") + 2:].split()[1])
    out, todo = [pid], [pid]
    while todo:
        current = todo.pop()
        kids = [p for p, pp in parents.items() if pp == current]
        out += kids
        todo += kids
    return out
