"""The console's writes to the topics: tickets to ``tickets.received``, actions to ``tickets.events``,
refused input to ``tickets.invalid`` — with a plain kafka-python producer, like every other client.

The broker is found like the CLI finds it (``streams.broker.client_bootstrap``: the configured cluster,
or the embedded broker the worker announced under the data directory), lazily, on the first write: the
console may start before the worker. A failed write drops the producer so the next one reconnects.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from config.settings import Settings

log = logging.getLogger(__name__)


class BusUnavailable(RuntimeError):
    """The broker did not take the message; nothing was sent, the caller may retry."""


class Publisher:
    def __init__(self, settings: Settings, *, timeout: float = 15.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._producer: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        from streams.broker import BrokerUnavailable, client_bootstrap

        with self._lock:
            if self._producer is None:
                try:
                    bootstrap = client_bootstrap(self.settings)
                    self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                                   client_id="hotline-console", max_block_ms=10_000)
                except (BrokerUnavailable, KafkaError, OSError) as exc:
                    raise BusUnavailable(str(exc)) from None
            return self._producer

    def send(self, topic: str, key: str, value: bytes) -> None:
        """Send one message and wait for the broker's acknowledgement."""
        from kafka.errors import KafkaError

        producer = self._get()
        try:
            producer.send(topic, key=key.encode(), value=value).get(timeout=self.timeout)
        except KafkaError as exc:
            log.warning("the broker did not take a message for %s: %s", topic, exc)
            self._reset()
            raise BusUnavailable(str(exc)) from None

    def _reset(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=2)
            except Exception:  # closing a broken producer must not hide the original error
                log.debug("closing the producer failed", exc_info=True)

    def close(self) -> None:
        self._reset()
