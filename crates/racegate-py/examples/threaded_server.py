"""A threaded HTTP server whose requests reach the GPU through racegate's gate.

    python threaded_server.py [--port 0] [--no-gate]

POST a prompt, get the "generated" text back. Each request thread waits for the gate with the
GIL released; a request that waits longer than 30 s gets a 503 naming who holds the gate.
GET /stats shows the gate's figures and the most requests the GPU ever saw at once (1 with the
gate; `--no-gate` shows the race). Loopback only."""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import racegate
from fake_gpu import FakeGPU

gpu = racegate.configure("gpu", capacity=1)  # once; racegate.global_gate("gpu") anywhere else
device = FakeGPU()
GATED = True


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        prompt = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            if GATED:
                with gpu.acquire(label=self.path, timeout=30):
                    result = device.run(prompt)
            else:
                result = device.run(prompt)
        except racegate.AcquireTimeout as e:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(str(e).encode())
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(result)

    def do_GET(self):
        body = json.dumps({"stats": gpu.stats().to_dict(), "most_inside": device.most_inside})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def main():
    global GATED
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--no-gate", action="store_true")
    a = ap.parse_args()
    GATED = not a.no_gate
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
