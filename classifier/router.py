"""The router as a service object: one loaded model and catalogue, deciding for tickets in batches.

Loaded once per process (CLI, worker); the routing agent and ``hotline classify`` both call
:meth:`Router.route_many`, so the decision is the same whichever door the ticket came in by.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from classifier import model as mm
from classifier.decision import Decision, OwnerCache, decide
from classifier.training import configure_text
from config.catalogue import load_catalogue
from config.settings import Settings
from models.directory import Catalogue


@dataclass(frozen=True)
class RouteRequest:
    text: str
    address: str | None = None
    received_at: datetime | None = None
    exclude_agencies: tuple[str, ...] = ()


class Router:
    def __init__(self, model: mm.MatterModel, catalogue: Catalogue, settings: Settings) -> None:
        self.model = model
        self.catalogue = catalogue
        self.settings = settings
        self.owners = OwnerCache()  # this router's catalogue only (see OwnerCache)
        configure_text(catalogue)

    @classmethod
    def load(cls, settings: Settings) -> Router:
        catalogue = load_catalogue(settings.domain_data_dir)
        return cls(mm.load(settings.resolved_model_dir), catalogue, settings)

    def route_many(self, requests: Sequence[RouteRequest]) -> list[Decision]:
        if not requests:
            return []
        # Normalised once: the model's features and the decision's "is there any text" both read it.
        normalized = mm.normalize_all([r.text[:mm.MAX_CHARS] for r in requests])
        rankings = self.model.top_normalized(normalized, k=8)
        now = datetime.now(UTC)
        return [
            decide(ranking, self.catalogue, text=r.text, address=r.address, received_at=r.received_at or now,
                   threshold=self.settings.confidence_threshold,
                   default_jurisdiction=self.settings.default_jurisdiction, model_version=self.model.version,
                   exclude_agencies=r.exclude_agencies, label_kind=self.model.label_kind,
                   normalized=norm, owners=self.owners)
            for r, ranking, norm in zip(requests, rankings, normalized, strict=True)
        ]

    def route(self, text: str, address: str | None = None, received_at: datetime | None = None,
              exclude_agencies: Iterable[str] = ()) -> Decision:
        return self.route_many([RouteRequest(text, address, received_at, tuple(exclude_agencies))])[0]
