"""Process-level plumbing shared by the commands: logging, topics, and running a faust worker."""

from __future__ import annotations

import gc
import logging
import sys
import time

from config.settings import Settings

log = logging.getLogger(__name__)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S",
    )
    # kafka-python logs every connection at INFO; keep ours readable.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))


# Loggers kept above HOTLINE_LOG_LEVEL. faust logs every message it sends at DEBUG, value and all: the callers'
# full numbers (agencies' queues, the ticket table's changelog) and citizens' text, ~1 KB a line, 80% of a DEBUG
# log. Alembic announces each of its plugins at INFO in every process that checks the schema.
QUIET_LOGGERS = {"faust.topics": logging.INFO, "faust.transport.drivers.aiokafka": logging.INFO,
                 "alembic.runtime.plugins": logging.WARNING}


class TopicsMismatch(RuntimeError):
    """Existing topics have another partition count than the one configured."""


def ensure_topics(bootstrap: str, names: list[str], partitions: int, replicas: int,
                  must_match: tuple[str, ...] = ()) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    ``must_match``: topics that, when they exist, must have ``partitions`` partitions. Their keys' state
    (the ticket table's changelog, created by faust with the configured count) and the partition a link
    fact is sent to (``streams.app.link_partition``) are computed from the configured count: a topic kept
    from before a change of ``HOTLINE_TOPIC_PARTITIONS`` (or made by someone else) would take facts on
    partitions it does not have, or spread one key's state over two.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="hotline-admin")
    try:
        existing = set(admin.list_topics())
        if present := [n for n in must_match if n in existing]:
            counts = {t.get("name", t.get("topic")): len(t["partitions"]) for t in admin.describe_topics(present)}
            if wrong := {t: n for t, n in counts.items() if n != partitions}:
                listed = ", ".join(f"{t} has {n}" for t, n in sorted(wrong.items()))
                raise TopicsMismatch(
                    f"HOTLINE_TOPIC_PARTITIONS is {partitions}, but on {bootstrap} {listed} partitions. "
                    f"Set HOTLINE_TOPIC_PARTITIONS to the topics' count; the partitions of existing topics "
                    f"cannot change under running state")
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics([NewTopic(n, partitions, replicas) for n in missing])
            except TopicAlreadyExistsError:  # another worker won the race: fine
                pass
        return missing
    finally:
        admin.close()


def agency_codes(settings: Settings) -> list[str]:
    """Every agency's code: one routed queue ``tickets.routed.<code>`` each."""
    from config.catalogue import load_catalogue

    return sorted(load_catalogue(settings.domain_data_dir).agencies)


def run_worker(settings: Settings) -> None:
    """Run the faust worker until stopped (SIGINT/SIGTERM); start the embedded broker if configured."""
    import faust

    from classifier.router import Router
    from streams.app import SUPERVISION_LINKS, TICKETS_EVENTS, configure, contract_topics
    from streams.broker import check_transactions, kafka_bootstrap
    from streams.db import open_migrated
    from streams.wiring import Services, wire

    started = time.monotonic()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    router = Router.load(settings)  # ModelError (missing, corrupt, not ours) stops us here, clearly
    # NotMigrated (SchemaAhead) / LedgerUnavailable: a message, not a traceback. Pinned: every write of the stages
    # checks the revision is still the code's, and the worker stops when a newer version migrated it (SchemaMoved)
    ledger = open_migrated(settings, pin=True)
    with kafka_bootstrap(settings) as bootstrap:
        if settings.processing_guarantee == "exactly_once":
            check_transactions(bootstrap)
        created = ensure_topics(bootstrap, contract_topics(agency_codes(settings)),
                                settings.topic_partitions, settings.topic_replicas,
                                must_match=(TICKETS_EVENTS, SUPERVISION_LINKS))
        log.info("broker %s ready; %d topics created", bootstrap, len(created))
        services = wire(Services(settings=settings, ledger=ledger, router=router, catalogue=router.catalogue,
                                 bootstrap=bootstrap))
        assert services.classifier is not None
        services.classifier.warm_up()  # the children load the model now, not under the first tickets
        log.info("classifying in %s", f"{settings.classify_processes} child process(es)"
                 if settings.classify_processes else "a thread of the worker")
        app = configure(settings, bootstrap)
        log.info("worker starting: ledger %s, %.1fs after launch", settings.safe_database_url,
                 time.monotonic() - started)
        worker = faust.Worker(app, loglevel=settings.log_level, logfile=None, quiet=True)
        # No terminal spinner: at WARNING and above faust would hang it on the root logger and set that to
        # DEBUG, so every debug call of faust's per-message path (one per message sent) built a log record
        # only to drop it: 4% of a busy worker's CPU.
        worker.spinner = None
        # The model, the catalogue, jieba's dictionary and the libraries live as long as the process: out
        # of the collector's sight. Otherwise every full collection walked them all, pausing the event loop
        # for 170-470 ms every few seconds under load: the p99 latency tail (8-14 ms after the freeze).
        gc.collect()
        gc.freeze()
        # A routed ticket allocates thousands of short-lived objects (events, records, rows): with the young
        # generation collected every 700 allocations (the default), collections cost ~3% of a busy worker's
        # CPU (docs/results.md, session 13). Fewer, larger young collections; full ones stay rare.
        gc.set_threshold(20_000, 20, 20)
        try:
            worker.execute_from_commandline()  # raises SystemExit when the worker has stopped
        except SystemExit:
            if services.moved is not None:  # it stopped itself: the ledger's schema moved (Services.schema_moved)
                raise services.moved from None
            raise
        finally:
            services.close()
