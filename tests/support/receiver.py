"""A real webhook receiver on loopback: records every request, answers as each path is told.

Paths are set up by the test: `receiver.respond("/gone", 410)`; by default a path answers
200. A path may fail a number of times first, delay its answer, or redirect.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.servers import serving


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    # Answer `fail_status` to the first `failures` requests, then `status`.
    failures: int = 0
    fail_status: int = 500
    fail_delay: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.behaviours: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def respond(self, path: str, status: int = 200, **options: object) -> str:
        """Set how `path` answers; returns its full URL."""
        self.behaviours[path] = Behaviour(status=status, **options)  # type: ignore[arg-type]
        return self.base_url + path

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.at(path)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.at(path))} requests, expected {count}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    seen = sum(1 for r in receiver.requests if r.path == self.path)
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, time.monotonic())
                    )
                behaviour = receiver.behaviours.get(self.path, Behaviour())
                failing = seen < behaviour.failures
                time.sleep(behaviour.fail_delay if failing else behaviour.delay)
                status = behaviour.fail_status if failing else behaviour.status
                answer = f"answer {status}".encode()
                # The sender may be gone by now (timed out, or killed): that is the test.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.send_response(status)
                    for name, value in behaviour.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

        return Handler


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with serving(receiver._server):
        yield receiver
