"""What global_defs and virtual_server say reaches the pool without extra arguments."""

from __future__ import annotations

import asyncio

from hafast.config.loader import load_text
from hafast.lvs.backend import SCHED_FLAG_WORDS, Timeouts
from hafast.lvs.manager import PoolManager
from hafast.lvs.memory import MemoryBackend

CONF = """global_defs {
  lvs_timeouts tcp 900 udp 30
  rs_init_notifies
}
virtual_server 10.0.0.1 80 {
  lvs_sched sh
  sh-port
  protocol TCP
  real_server 10.0.0.2 80 {
    TCP_CHECK { connect_timeout 1 }
  }
}
"""


def test_timeouts_flags_and_init_notifies_come_from_the_config() -> None:
    result = load_text(CONF)
    assert result.ok, [d.format() for d in result.diagnostics]
    backend = MemoryBackend()
    manager = PoolManager(result.config, backend, run_scripts=False)
    assert manager.timeouts == Timeouts(900, 0, 30)
    assert manager.policy.rs_init_notifies

    async def start() -> None:
        await manager.start()
        await manager.wait_idle()

    asyncio.run(start())
    (service,) = manager.policy.pool.services.values()
    assert service.flags & SCHED_FLAG_WORDS["flag-2"], service
