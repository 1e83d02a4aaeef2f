"""Refresh the differential test's reference: train as the test session does, record each decision.

    .venv/bin/python -m tests.refresh_differential [--regenerate-tickets]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from classifier.corpus import build_corpus
from classifier.router import Router, RouteRequest
from classifier.training import team_dataset, train
from config.catalogue import load_catalogue
from config.settings import Settings

DATA = Path(__file__).resolve().parent / "data"
TEST_PER_MATTER = 30  # as tests/conftest.py's trained_model_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regenerate-tickets", action="store_true")
    args = ap.parse_args()
    catalogue = load_catalogue()
    tickets_path = DATA / "differential_tickets.jsonl"
    if args.regenerate_tickets or not tickets_path.exists():
        rnd = random.Random(2024)
        pool = [e for e in build_corpus(catalogue.matters.values(), per_matter=36, seed=2024)
                if e.source == "generated"]
        picked = rnd.sample(pool, 200)
        tickets_path.write_text("".join(json.dumps({"id": f"D{i:03d}", "text": e.text}, ensure_ascii=False) + "\n"
                                        for i, e in enumerate(picked)), encoding="utf-8")
    tickets = [json.loads(x) for x in tickets_path.read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        train(team_dataset(catalogue, per_matter=TEST_PER_MATTER), catalogue, Path(tmp),
              threshold=Settings().confidence_threshold)
        router = Router.load(Settings(model_dir=Path(tmp)))
        decisions = router.route_many([RouteRequest(t["text"], t.get("address")) for t in tickets])
        ref = {"model_version": router.model.version,
               "decisions": {t["id"]: d.matter for t, d in zip(tickets, decisions, strict=True)}}
    (DATA / "differential_reference.json").write_text(json.dumps(ref, ensure_ascii=False, indent=1) + "\n",
                                                      encoding="utf-8")


if __name__ == "__main__":
    main()
