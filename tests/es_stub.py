"""A local HTTP server that plays an Elasticsearch cluster for the tests, healthy or faulty.

It listens on 127.0.0.1 in a thread of the test process, so the official client
talks to it over real sockets with its real transport; each test decides the
answers. :class:`Cluster` answers as a healthy one-node cluster; a test
overrides single endpoints to refuse, reject credentials, send garbage or hang.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def ndjson(self) -> list:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]

    def json(self):
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, payload, elastic: bool = True) -> Reply:
    """A JSON answer; ``elastic`` adds the header with which every Elasticsearch answer names the product."""
    headers = {"Content-Type": "application/json"}
    if elastic:
        headers["X-Elastic-Product"] = "Elasticsearch"
    return Reply(status, json.dumps(payload).encode(), headers)


class Hang:
    """An answer that never comes (until the server stops)."""


HANG = Hang()
Answer = Reply | Hang | tuple


def free_port() -> int:
    """A local port on which nothing listens, so that a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StubServer:
    """``with StubServer(answer) as server``: ``server.url`` answers each request with ``answer(request)``.

    ``answer`` returns a :class:`Reply`, ``(status, payload)`` for a JSON answer of Elasticsearch, or
    :data:`HANG`. Every request received is kept in ``server.requests``.
    """

    def __init__(self, answer: Callable[[Request], Answer]):
        self.answer = answer
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - the base class's signature
                pass

            def serve(self):
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                stub.requests.append(request)
                reply = stub.answer(request)
                if isinstance(reply, Hang):
                    stub._stopping.wait()
                    self.close_connection = True
                    return
                if isinstance(reply, tuple):
                    reply = json_reply(*reply)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def sent(self, method: str, suffix: str) -> list[Request]:
        """The requests received with ``method`` on a path ending in ``suffix``."""
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Cluster:
    """Answers of a healthy one-node cluster of ``major``.x; ``overrides`` replace them per (method, path suffix).

    An override is an answer or a function of the request returning one. ``existing`` names indices
    that exist before the run.
    """

    def __init__(self, major: str, overrides: dict | None = None, existing: set[str] | None = None):
        self.major = major
        self.overrides = overrides or {}
        self.existing = set(existing or ())
        self.indexed = 0

    def __call__(self, request: Request) -> Answer:
        method, path = request.method, request.path
        for (m, suffix), answer in self.overrides.items():
            if m == method and path.endswith(suffix):
                return answer(request) if callable(answer) else answer
        if path == "/":
            return 200, {"version": {"number": f"{self.major}.15.0"}, "tagline": "You Know, for Search"}
        if method == "HEAD":
            return (200, {}) if path.strip("/") in self.existing else (404, {})
        if path == "/_bulk":
            actions = request.ndjson()[::2]
            self.indexed += len(actions)
            return 200, {"errors": False, "items": [{"index": {"_id": a["index"]["_id"], "status": 201}} for a in actions]}
        if path.endswith("/_count"):
            return 200, {"count": self.indexed}
        if path == "/_msearch":
            searches = request.ndjson()[1::2]
            hits = [{"_id": "7", "sort": [2.5, 7]}, {"_id": "3", "sort": [1.0, 3]}]
            return 200, {"responses": [
                {"timed_out": False, "_shards": {"total": 1, "failed": 0}, "hits": {"hits": hits[: s["size"]]}, "status": 200}
                for s in searches
            ]}
        return 200, {"acknowledged": True}
