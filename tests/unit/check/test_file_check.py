"""FILE_CHECK end to end on a real loop: the engine polls the track_file at
delay_loop; no retries (keepalived: a file's state is known at once)."""

from __future__ import annotations

from pathlib import Path

from hafast.check.engine import Engine
from hafast.check.worker import new_loop
from hafast.config.loader import load_text
from hafast.lib.events import ServerEvent


def test_file_value_drives_the_real_server(tmp_path: Path) -> None:
    health = tmp_path / "health"
    health.write_text("0\n")
    text = f"""
track_file tf {{
  file {health}
}}
virtual_server 10.0.0.1 80 {{
  real_server 10.1.0.1 80 {{
    weight 10
    FILE_CHECK {{
      track_file tf
      weight 0
    }}
    delay_loop 0.1
  }}
  real_server 10.1.0.2 80 {{
    weight 10
    FILE_CHECK {{
      track_file tf
      weight -3
    }}
    delay_loop 0.1
  }}
}}
"""
    res = load_text(text)
    assert not res.errors, res.errors
    events: list[tuple[float, ServerEvent]] = []
    loop = new_loop()
    try:
        engine = Engine(res.config, loop, lambda e: events.append((loop.time(), e)))
        t0 = loop.time()
        loop.call_at(t0 + 0.4, health.write_text, "2\n")
        loop.call_at(t0 + 0.9, health.write_text, "0\n")
        engine.start()
        loop.run_until_complete(_sleep(1.4))
        engine.stop()
    finally:
        loop.close()
    by_rs: dict[str, list[tuple[float, str, int]]] = {}
    for t, e in events:
        by_rs.setdefault(e.real_server[0], []).append((round(t - t0, 1), e.state, e.weight))
    # weight 0: a non-zero value is DOWN at the first reading after the change
    assert [s for _, s, _ in by_rs["10.1.0.1"]] == ["DOWN", "UP"]
    assert 0.4 <= by_rs["10.1.0.1"][0][0] <= 0.7
    # weight -3: 10 - 2*3 = 4, then back to the configured 10
    assert [(s, w) for _, s, w in by_rs["10.1.0.2"]] == [("WEIGHT", 4), ("WEIGHT", 10)]


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
