"""A stand-in for a GPU runtime that, like Metal's or CUDA's default stream, must not be entered
by two threads at once: it counts who is inside and remembers the most it ever saw.

A dispatch takes FAKE_GPU_SECONDS (default 0.01 s), or ends as soon as a second dispatch comes
in: that is the race a real runtime crashes on, and once it is seen there is no need to wait."""

import os
import threading
import time


class FakeGPU:
    def __init__(self, seconds=None):
        self.seconds = float(os.environ.get("FAKE_GPU_SECONDS", "0.01")) if seconds is None else seconds
        self._lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.dispatches = 0

    def run(self, prompt: bytes) -> bytes:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            end = time.monotonic() + self.seconds
            while time.monotonic() < end and self.inside == 1:
                time.sleep(0.001)  # the kernel
            return prompt.upper()
        finally:
            with self._lock:
                self.inside -= 1
                self.dispatches += 1
