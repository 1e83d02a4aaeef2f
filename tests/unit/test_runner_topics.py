"""The worker's topic set-up: missing topics are created, existing ones must have the configured partitions."""

from __future__ import annotations

from typing import Any

import kafka
import pytest

from streams.app import SUPERVISION_LINKS, TICKETS_EVENTS, TICKETS_RECEIVED
from streams.runner import TopicsMismatch, ensure_topics


class FakeAdmin:
    topics: dict[str, int] = {}

    def __init__(self, **_: Any) -> None:
        pass

    def list_topics(self) -> list[str]:
        return list(self.topics)

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "partitions": [{"partition_index": i} for i in range(self.topics[n])]} for n in names]

    def create_topics(self, new: list[Any]) -> None:
        self.topics.update({t.name: t.num_partitions for t in new})

    def close(self) -> None:
        pass


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(FakeAdmin, "topics", {})
    monkeypatch.setattr(kafka, "KafkaAdminClient", FakeAdmin)
    return FakeAdmin


MUST = (TICKETS_EVENTS, SUPERVISION_LINKS)


def test_topics_are_created_once_with_the_configured_partitions(admin: type[FakeAdmin]) -> None:
    assert ensure_topics("b:1", [TICKETS_RECEIVED, TICKETS_EVENTS], 4, 1, MUST) == [TICKETS_RECEIVED, TICKETS_EVENTS]
    assert admin.topics == {TICKETS_RECEIVED: 4, TICKETS_EVENTS: 4}
    assert ensure_topics("b:1", [TICKETS_RECEIVED, TICKETS_EVENTS], 4, 1, MUST) == []


def test_a_changed_partition_count_is_refused_with_what_to_do(admin: type[FakeAdmin]) -> None:
    # HOTLINE_TOPIC_PARTITIONS raised from 4 to 8 on a cluster that keeps the topics of the first start
    ensure_topics("b:1", [TICKETS_RECEIVED, TICKETS_EVENTS], 4, 1, MUST)
    admin.topics[SUPERVISION_LINKS] = 4  # made by faust at the first start
    with pytest.raises(TopicsMismatch, match="HOTLINE_TOPIC_PARTITIONS is 8.*tickets.events has 4"):
        ensure_topics("b:1", [TICKETS_RECEIVED, TICKETS_EVENTS], 8, 1, MUST)
