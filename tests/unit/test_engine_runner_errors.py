"""A store error inside a campaign runner's task group stops that runner, not the engine."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
import redis.asyncio as aioredis

from dialer.config import EngineSettings
from dialer.engine.engine import Engine
from dialer.engine.runner import CampaignRunner
from dialer.errors import StoreError
from dialer.pbx.base import PbxAdapter
from dialer.store import RedisStore

pytestmark = pytest.mark.redis


class FailingRunner:
    campaign_id = 7

    async def run(self) -> None:
        async with asyncio.TaskGroup():  # as CampaignRunner.run: its loop runs in a task group
            raise StoreError("Redis went away during the completion check")


async def test_runner_store_error_is_logged_and_left_to_the_supervisor(
    redis_client: aioredis.Redis, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine(
        EngineSettings(engine_id="t"), RedisStore(redis_client, namespace), cast(PbxAdapter, None)
    )
    runner = cast(CampaignRunner, FailingRunner())
    await engine._run_runner(runner)  # returns: the supervisor starts the runner again later
    assert "campaign 7 runner stopped: Redis went away" in caplog.text


class BuggyRunner:
    campaign_id = 8

    async def run(self) -> None:
        raise ZeroDivisionError("a bug")


async def test_runner_bug_still_propagates(redis_client: aioredis.Redis, namespace: str) -> None:
    engine = Engine(
        EngineSettings(engine_id="t"), RedisStore(redis_client, namespace), cast(PbxAdapter, None)
    )
    with pytest.raises(ZeroDivisionError):
        await engine._run_runner(cast(CampaignRunner, BuggyRunner()))
