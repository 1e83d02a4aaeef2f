"""Classifier speed on real-length tickets: tickets/s of ``Router.route_many`` (the full decision path:
model, then responsibility-list lookup) and of ``MatterModel.predict_proba`` alone, over the ``text``
column of messages_unlabeled.csv in batches of 256 (median of several runs, one process, the two measured
alternately after a warm-up of each); model load
time; resident memory (peak RSS of a process that only loads the model and classifies).

Without ``--model-dir`` the shipped model is trained first (team corpus, into a temporary folder) and
the measurement runs in a fresh child process, so training's memory does not count. Goal: >= 800/s.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import data_file, read_csv

BATCH = 256


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM where /proc has it: ru_maxrss survives exec on Linux, so a
    child started from the training process would report the trainer's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(model_dir: Path, runs: int) -> None:
    from classifier import model as mm
    from classifier.router import Router, RouteRequest
    from config.catalogue import load_catalogue
    from config.settings import Settings

    texts = [r["text"] for r in read_csv("messages_unlabeled.csv") if r.get("text", "").strip()]
    settings = Settings()
    catalogue = load_catalogue(settings.domain_data_dir)
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    model = mm.load(model_dir)
    load_s = time.perf_counter() - started
    rss_loaded = peak_rss_mb()
    router = Router(model, catalogue, settings)
    batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]
    requests = [[RouteRequest(t) for t in b] for b in batches]
    # warm-up of both paths (jieba's dictionary, lazy imports, the address matcher's first use)
    model.predict_proba(batches[0])
    router.route_many(requests[0])

    def once(fn) -> float:  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        fn()
        return len(texts) / (time.perf_counter() - t0)

    # the two alternate run by run, so that both see the same load on a shared machine (run one after the
    # other, a busy minute once put predict_proba's median below route_many's, which does strictly more)
    proba_runs, route_runs = [], []
    for _ in range(runs):
        proba_runs.append(once(lambda: [model.predict_proba(b) for b in batches]))
        route_runs.append(once(lambda: [router.route_many(r) for r in requests]))
    proba, route = statistics.median(proba_runs), statistics.median(route_runs)
    rss_end = peak_rss_mb()
    avg_chars = sum(map(len, texts)) / len(texts)
    print(f"model {model.version}: {len(model.labels)} labels, retrieval weight {model.retrieval_weight}")
    print(f"{len(texts)} real tickets ({avg_chars:.0f} chars on average), batches of {BATCH}, {runs} runs")
    print(f"predict_proba:      median {proba:7.0f} tickets/s  (runs: {', '.join(f'{x:.0f}' for x in proba_runs)})")
    print(f"Router.route_many:  median {route:7.0f} tickets/s  (runs: {', '.join(f'{x:.0f}' for x in route_runs)})"
          "  (goal >= 800)")
    print(f"model load: {load_s:.2f}s; peak RSS {rss_before:.0f} MB before load, "
          f"{rss_loaded:.0f} MB after load, {rss_end:.0f} MB after classifying")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-dir", help="a model folder (with `current`); default: train the shipped model")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    data_file("messages_unlabeled.csv")  # exits cleanly when ../shared/data is absent
    if args.model_dir:
        measure(Path(args.model_dir), args.runs)
        return
    from _common import shipped_model_dir

    started = time.perf_counter()
    folder = shipped_model_dir(remove_at_exit=True)  # the child has finished with it when this process exits
    print(f"trained the shipped model in {time.perf_counter() - started:.1f}s (hold-out fit + final fit)")
    sys.stdout.flush()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--model-dir", str(folder), "--runs", str(args.runs)]
    sys.exit(subprocess.call(cmd, cwd=Path(__file__).resolve().parent))


if __name__ == "__main__":
    main()
