"""The benchmark's SMTP sink, run as its own process: `python -m bench.sink --port P --log FILE`.

Accepts every message and appends one line per message to FILE: the wall-clock time at which it
accepted the DATA (seconds since the epoch, microseconds) and the recipients. It keeps nothing
else, so it costs little per mail, and it runs outside the load generator's process so neither
slows the other. `SinkLog` reads the file from the benchmark.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, log) -> None:
        self.log = log

    async def handle_DATA(self, server, session, envelope) -> str:
        self.log.write(f"{time.time():.6f} {','.join(envelope.rcpt_tos)}\n")
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    arguments = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with open(arguments.log, "a", buffering=1) as log:  # line-buffered: each line is visible at once
        controller = Controller(
            _Handler(log), hostname="127.0.0.1", port=arguments.port, server_hostname="localhost", ready_timeout=10
        )
        controller.start()
        print("ready", flush=True)
        try:
            stop.wait()
        finally:
            controller.stop()


class SinkLog:
    """Reads what the sink process wrote: {recipient: arrival time} and the number of messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = ""
        self.count = 0
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0

    def poll(self) -> int:
        try:
            with open(self.path) as handle:
                handle.seek(self._offset)
                chunk = handle.read()
                self._offset = handle.tell()
        except FileNotFoundError:
            return self.count
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        for line in lines:
            stamp, _, recipients = line.partition(" ")
            self.count += 1
            for recipient in recipients.split(","):
                if recipient in self.arrivals:
                    self.duplicates += 1
                else:
                    self.arrivals[recipient] = float(stamp)
        return self.count

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.poll() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


if __name__ == "__main__":
    sys.exit(main())
