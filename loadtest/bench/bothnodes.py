"""``python -m loadtest.bench.bothnodes``: ONE engine process driving both of the stack's
switches, Asterisk and FreeSWITCH, as two PBX nodes (the nodes benchmark's engine).

``python -m dialer engine`` drives one switch (one of DIALER_AMI_URL, DIALER_ESL_URL); an
:class:`~dialer.engine.engine.Engine` takes a mapping node -> adapter, as
``tests/integration/test_nodes.py`` builds it. This is that composition from ``DIALER_*``
variables with both URLs set: each node's name is derived from its URL
(:func:`dialer.config.default_node`), the engine's own settings are the Asterisk node's. It logs
the line ``engine <id> started`` that the benchmarks wait for, and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from dialer.app import pbx_adapter, stop_on_signals
from dialer.config import EngineSettings
from dialer.engine.engine import Engine
from dialer.store.redis_store import RedisStore

log = logging.getLogger(__name__)


def node_settings(settings: EngineSettings) -> tuple[EngineSettings, EngineSettings]:
    """The Asterisk node's and the FreeSWITCH node's settings (each with one URL)."""
    if not (settings.ami_url and settings.esl_url):
        raise SystemExit("bothnodes needs DIALER_AMI_URL and DIALER_ESL_URL")
    ast = replace(settings, esl_url=None, node="")
    fs = replace(settings, ami_url=None, node="")
    return ast, fs


async def run(settings: EngineSettings) -> None:
    ast, fs = node_settings(settings)
    store = RedisStore.from_url(settings.redis_url, namespace=settings.namespace)
    try:
        with stop_on_signals() as stop:
            async with pbx_adapter(ast) as a, pbx_adapter(fs) as f:
                engine = Engine(ast, store, {ast.node: a, fs.node: f})
                log.warning("engine %s started (nodes %s, %s)", ast.engine_id, ast.node, fs.node)
                async with asyncio.TaskGroup() as tg:
                    task = tg.create_task(engine.run(), name="dialer-engine")
                    await stop.wait()
                    task.cancel()
    finally:
        await store.aclose()
    log.warning("engine %s stopped", ast.engine_id)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(EngineSettings.from_env()))


if __name__ == "__main__":
    main()
