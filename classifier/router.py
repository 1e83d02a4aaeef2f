"""The router as a service object: one loaded model and catalogue, deciding for tickets in batches.

Loaded once per process (CLI, worker); the routing agent and ``hotline classify`` both call
:meth:`Router.route_many`, so the decision is the same whichever door the ticket came in by.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from classifier import model as mm
from classifier import text as textmod
from classifier.decision import Decision, OwnerCache, decide
from classifier.training import catalogue_terms
from config.catalogue import load_catalogue
from config.settings import Settings
from models.directory import Catalogue

log = logging.getLogger(__name__)


def configure_tokenizer(model: mm.MatterModel, catalogue: Catalogue) -> None:
    """Cut tickets into words as the model was trained to read them.

    ``mm.load`` taught the tokenizer the terms the model recorded. The catalogue's current terms are added
    only for a model that recorded none: a term added to the catalogue since training would cut tickets into
    words the model never saw (油烟扰民 read as 饭店油烟 / 油 / 烟扰民), worse than not knowing the term. The
    catalogue's place names are always added: they are masked, not learnt.
    """
    words, places = catalogue_terms(catalogue)
    recorded = model.metadata.get("user_words")
    if not recorded:
        textmod.configure(words, places)
        return
    textmod.configure((), places)
    if new := textmod.terms(words) - set(recorded):
        log.warning("the catalogue has %d term(s) model %s was not trained with (e.g. %s): they are not used "
                    "until `hotline train` builds a model that knows them", len(new), model.version,
                    "、".join(sorted(new)[:5]))


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
        configure_tokenizer(model, catalogue)

    @classmethod
    def load(cls, settings: Settings) -> Router:
        catalogue = load_catalogue(settings.domain_data_dir)
        return cls(mm.load(settings.resolved_model_dir, signing_key=settings.signing_key), catalogue, settings)

    def route_many(self, requests: Sequence[RouteRequest]) -> list[Decision]:
        if not requests:
            return []
        # Normalised once: the model's features and the decision's "is there any text" both read it.
        normalized = mm.normalize_all([r.text for r in requests])
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
