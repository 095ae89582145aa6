"""localstripe (a fake Stripe HTTP API, PyPI `localstripe`) on 127.0.0.1 for the tests.

Why not `python -m localstripe --port N`: its own start-up binds to every
interface (`::`, IPv4 and IPv6), and its store loads itself from and writes
itself to the fixed file /tmp/localstripe.pickle on every change -- shared by
every localstripe on the machine, so tests running at the same time would read
each other's customers.  This module runs the same aiohttp application
(`localstripe.server.app`) bound to 127.0.0.1 only, with the store kept in
memory.

    with LocalStripe.start() as ls:
        gateway = StripeGateway(TEST_KEY, api_base=ls.url)
        ...
        ls.flush()   # forget every object (DELETE /_config/data)

Run as a script (`python tests/localstripe_server.py --port N`) it is the
server process itself; the tests start it that way with `sys.executable`.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, Self

HOST = "127.0.0.1"
# A well-formed test-mode secret key (localstripe accepts any "sk_..." key).
TEST_KEY = "_".join(("sk", "test", "4eC39HqLyjWDarjtT1zdp7dc"))  # noqa: FLY002 (no key-shaped literal in the repository)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class LocalStripe:
    """A localstripe server process on 127.0.0.1; `url` is the API base for stripe-python."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: IO[bytes]):
        self.process = process
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self._log = log  # the server's stderr, for the error message when it will not start

    @classmethod
    def start(cls, *, timeout: float = 30.0, attempts: int = 3) -> Self:
        """Start the server and wait until it answers.  Retries on another port if the
        chosen one was taken between choosing and binding it."""
        last_error = ""
        for _ in range(attempts):
            port = free_port()
            # Not a pipe (nobody reads it while the tests run); closed by stop().
            log = tempfile.TemporaryFile()  # noqa: SIM115
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            server = cls(process, port, log)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    log.seek(0)
                    last_error = log.read().decode(errors="replace")
                    server.stop()
                    break
                if server._answers() and process.poll() is None:
                    return server
                time.sleep(0.05)
            else:
                server.stop()
                raise RuntimeError(f"localstripe did not answer on {server.url} within {timeout:g} s")
        raise RuntimeError(f"localstripe would not start: {last_error[-2000:]}")

    def _answers(self) -> bool:
        try:
            self.flush()
            return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def flush(self) -> None:
        """Forget every customer, payment method, payment and refund."""
        request = urllib.request.Request(f"{self.url}/_config/data", method="DELETE")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _serve(port: int) -> None:
    from aiohttp import web
    from localstripe import resources, server

    # Keep the store in memory: no shared /tmp/localstripe.pickle (see the module docstring).
    resources.Store.dump_to_disk = lambda self: None
    web.run_app(server.app, host=HOST, port=port, print=None, access_log=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    _serve(parser.parse_args().port)
