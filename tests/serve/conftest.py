"""A real waitress server on loopback for the HTTP tests, and a tiny JSON client."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

pytest.importorskip("waitress", reason="huale serve needs the serve extra (waitress)")


@dataclass
class Reply:
    status: int
    body: object
    headers: dict


@dataclass
class Client:
    """Requests to ``host:port`` with http.client (nothing follows redirects or retries)."""

    host: str
    port: int
    headers: dict

    def request(self, method: str, path: str, body=None, *, raw: bytes | None = None,
                headers: dict | None = None, timeout: float = 120.0) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        sent = dict(self.headers)
        sent.update(headers or {})
        data = raw
        if data is None and body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            payload = response.read()
            text = payload.decode("utf-8", "replace")
            try:
                parsed = json.loads(text) if text else None
            except json.JSONDecodeError:
                parsed = text
            return Reply(response.status, parsed, {k.lower(): v for k, v in response.getheaders()})
        finally:
            connection.close()

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Reply:
        return self.request("POST", path, body, **kw)


@contextlib.contextmanager
def serving(app, *, max_body_bytes: int = 2**20, threads: int = 4) -> Iterator[Client]:
    """``app`` on a free loopback port of a waitress server running in a thread."""
    from huale.serve.server import create_server, stop_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads,
                           max_body_bytes=max_body_bytes)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield Client("127.0.0.1", server.effective_port, {})
    finally:
        stop_server(server, thread)
