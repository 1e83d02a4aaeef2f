"""Differential test: a retrained model must not silently change many routing decisions.

A fixed set of tickets (tests/data/differential_tickets.jsonl, written by this team) and the matters
the accepted model chose for them (tests/data/differential_reference.json). When a change to the corpus,
the catalogue or the pipeline moves more than the allowed share of decisions, this fails and lists them;
if the change is intended, refresh the reference with ``python -m tests.refresh_differential`` and
review the diff like code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.router import Router
from config.settings import Settings

pytestmark = pytest.mark.integration
DATA = Path(__file__).resolve().parent.parent / "data"
MAX_CHANGED_SHARE = 0.10


def test_retrained_model_keeps_most_decisions(trained_model_dir):
    tickets = [json.loads(x) for x in (DATA / "differential_tickets.jsonl").read_text(encoding="utf-8").splitlines()]
    reference = json.loads((DATA / "differential_reference.json").read_text(encoding="utf-8"))
    router = Router.load(Settings(model_dir=trained_model_dir))
    decisions = router.route_many([_request(t) for t in tickets])
    changed = {t["id"]: (reference["decisions"][t["id"]], d.matter) for t, d in zip(tickets, decisions, strict=True)
               if reference["decisions"][t["id"]] != d.matter}
    share = len(changed) / len(tickets)
    assert share <= MAX_CHANGED_SHARE, (
        f"{len(changed)}/{len(tickets)} decisions changed (reference model {reference['model_version']}): "
        + "; ".join(f"{k}: {a}->{b}" for k, a, b in ((k, *v) for k, v in list(changed.items())[:20]))
        + "\nIf intended: python -m tests.refresh_differential, and review the diff.")


def _request(t: dict):  # type: ignore[no-untyped-def]
    from classifier.router import RouteRequest

    return RouteRequest(t["text"], t.get("address"))
