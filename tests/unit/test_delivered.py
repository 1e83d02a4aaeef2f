"""streams.app.delivered: a failed send is raised (the batch is not acknowledged as published), and a waiter
cancelled by a stop leaves the send futures alone."""

from __future__ import annotations

import asyncio

import pytest

from streams.app import delivered


def test_a_failed_delivery_is_raised_after_every_report_is_in() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ok, bad, late = loop.create_future(), loop.create_future(), loop.create_future()
        ok.set_result(1)
        bad.set_exception(ConnectionError("broker refused"))
        loop.call_later(0.01, late.set_result, 2)
        with pytest.raises(ConnectionError):
            await delivered([ok, None, bad, late])
        assert late.done()

    asyncio.run(main())


def test_a_cancelled_waiter_does_not_cancel_the_send_futures() -> None:
    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        waiter = asyncio.ensure_future(delivered([fut]))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not fut.cancelled()
        fut.set_result(None)  # the report lands on a live future

    asyncio.run(main())
