"""An asyncio TCP server whose requests reach the GPU through racegate's gate.

    python asyncio_server.py [--port 0] [--no-gate]

Send one line, get the "generated" line back; the line `stats` returns the gate's figures and
the most requests the GPU ever saw at once. Waiting for the gate never blocks the event loop,
and a client that disconnects while queued gives its place back (its task is cancelled).
Loopback only."""

import argparse
import asyncio
import json

import racegate
from fake_gpu import FakeGPU

gpu = racegate.Gate("gpu")
device = FakeGPU()
GATED = True


async def handle(reader, writer):
    try:
        while line := await reader.readline():
            if line.strip() == b"stats":
                body = {"stats": gpu.stats().to_dict(), "most_inside": device.most_inside}
                writer.write(json.dumps(body).encode() + b"\n")
            elif GATED:
                async with gpu.acquire_async(label="text", timeout=30):
                    # The GPU work runs on a thread, the loop keeps serving meanwhile.
                    writer.write(await asyncio.to_thread(device.run, line))
            else:
                writer.write(await asyncio.to_thread(device.run, line))
            await writer.drain()
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--no-gate", action="store_true")
    a = ap.parse_args()
    GATED = not a.no_gate
    asyncio.run(main(a.port))
