"""Classification in a child process (``HOTLINE_CLASSIFY_PROCESSES``): the same decisions as in-process, and a
child that dies is replaced without losing the batch it was working on."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from classifier.pool import RouterPool
from classifier.router import Router, RouteRequest
from config.settings import Settings

pytestmark = pytest.mark.integration


def _run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine on a fresh loop in its own thread (another test's loop may be running in this one)."""
    with ThreadPoolExecutor(max_workers=1) as ex:
        return ex.submit(asyncio.run, coro).result()

TEXTS = [
    "小区门口烧烤店油烟太大，晚上十一点还在营业，呛得开不了窗，请城管处理",
    "公司拖欠我三个月工资不发，老板电话也不接，我要投诉",
    "孩子报的课外培训班跑路了，预交的八千元学费退不回来",
    "",
]


def test_a_child_process_decides_like_the_worker_and_survives_being_killed(trained_model_dir: Path) -> None:
    router = Router.load(Settings(model_dir=trained_model_dir))
    requests = [RouteRequest(text) for text in TEXTS]
    expected = router.route_many(requests)
    pool = RouterPool(router, processes=1)
    try:
        for f in pool.warm_up():
            f.result(timeout=60)
        # Given the child's answer equals the in-process one
        assert [d.as_dict() for d in _run(pool.route_many(requests))] == [d.as_dict() for d in expected]
        # When the child is killed
        executor = pool._executor
        (pid,) = list(executor._processes)  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        # Then the next batch is still answered (by a new child), the same way
        again = _run(pool.route_many(requests))
        assert [d.as_dict() for d in again] == [d.as_dict() for d in expected]
        assert pool._executor is not executor
    finally:
        pool.close()
