"""A real HTTP proxy in front of the test S3 server, which can break one object's downloads.

The product reaches it as it would reach any S3-compatible endpoint, through
``AWS_ENDPOINT_URL``. Every request is forwarded to the server unchanged (the signature covers
the Host header, which is passed through as the client sent it). Once told to, the proxy
answers a GET of a chosen object with its headers and the first bytes of its body, then cuts
the connection: the object store failing part-way through a download. A range GET of that
object (the client resuming the download) is cut before any of its body, so a client that
retries fails too.

It can also set a trap for one request: the first PUT, or the first delete, of a chosen object
springs it (the test kills the process that sent it), either before the request reaches the server
or after the server has acted on it, and the client gets no answer either way. A delete is a
``DELETE`` of the object or a batch delete (``POST ?delete``) naming its key, as obstore sends it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Cut:
    """A GET whose path ends with ``key`` gets ``after_bytes`` of its body, then the connection closes; a
    range GET of it (a client resuming the download) gets none of its body."""

    key: str
    after_bytes: int
    cuts: int = 0

    def bytes_to_send(self, path: str, status: int, length: int, ranged: bool) -> int | None:
        """How much of a response body to send before closing the connection; None: all of it."""
        if not urlsplit(path).path.endswith(self.key) or status >= 300:
            return None
        sent = 0 if ranged else self.after_bytes
        return sent if length > sent else None


@dataclass
class Trap:
    """The first PUT (or, with ``deletes``, delete) of an object whose key ends with ``key``:
    forwarded to the server or not, then ``spring``."""

    key: str
    forward: bool
    spring: Callable[[], object]
    sprung: int = 0
    deletes: bool = False

    def catches(self, method: str, path: str, body: bytes | None) -> bool:
        if self.sprung:
            return False
        url = urlsplit(path)
        if not self.deletes:
            return method == "PUT" and url.path.endswith(self.key)
        batch = method == "POST" and "delete" in url.query.split("&") and f"{self.key}</Key>".encode() in (body or b"")
        return batch or (method == "DELETE" and url.path.endswith(self.key))


@dataclass
class CuttingProxy:
    upstream: str  # http://host:port of the S3 server
    cut: Cut | None = None
    trap: Trap | None = None
    server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def trap_put(self, key: str, forward: bool, spring: Callable[[], object]) -> Trap:
        self.trap = Trap(key, forward, spring)
        return self.trap

    def trap_delete(self, key: str, forward: bool, spring: Callable[[], object]) -> Trap:
        self.trap = Trap(key, forward, spring, deletes=True)
        return self.trap

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def cut_downloads(self, key: str, after_bytes: int) -> Cut:
        self.cut = Cut(key, after_bytes)
        return self.cut

    def start(self) -> CuttingProxy:
        proxy = self
        upstream = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
                trap = proxy.trap if proxy.trap is not None and proxy.trap.catches(self.command, self.path, body) else None
                if trap is not None:
                    trap.sprung += 1
                conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
                try:
                    if trap is None or trap.forward:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        response = conn.getresponse()
                        payload = response.read()
                finally:
                    conn.close()
                if trap is not None:
                    trap.spring()
                    self.close_connection = True
                    return
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(payload))
                if length is not None:
                    self.send_header("Content-Length", length)
                cut = proxy.cut
                sent = cut.bytes_to_send(self.path, response.status, len(payload), "Range" in self.headers) \
                    if cut is not None and self.command == "GET" else None
                if sent is not None:
                    self.end_headers()
                    self.wfile.write(payload[:sent])
                    self.wfile.flush()
                    cut.cuts += 1
                    self.close_connection = True  # the body ends short of its Content-Length
                    return
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
