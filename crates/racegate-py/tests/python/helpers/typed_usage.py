"""Typical use of the package, type-checked (never run) under `mypy --strict` by test_typing.py."""

import asyncio
import racegate
g = racegate.Gate("x", 2, stats=True)
with g.acquire(label="a", timeout=1.0) as guard:
    n: int = guard.units
s = g.stats()
p: float = s.wait.p99
m = racegate.MachineGate("gpu", slots=1, dir="/tmp/racegate-typing")
st = m.status()
h = st.holders[0].label
async def f() -> None:
    async with g.acquire_async(label="t") as gg:
        gg.release()
    guard2 = await g.acquire_async()
    guard2.release()
try:
    g.try_acquire()
except racegate.WouldBlock as e:
    print(e.holders, e.waiters)
except racegate.AcquireTimeout as e2:
    print(e2.waited)


def stats_line(gate: racegate.Gate) -> str:
    s = gate.stats()
    return f"{s.name}: {s.acquisitions} acquisitions, hold p99 {s.hold.p99:.3f}s"


shared: racegate.Gate = racegate.global_gate("gpu")
machine: racegate.MachineGate = racegate.configure_machine_wide("gpu-typing")
_ = asyncio.run
