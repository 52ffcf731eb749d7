"""A tiny S3 look-alike on 127.0.0.1, for the cases no real server gives on demand.

Only what the probe and the error tests need: PUT, GET, HEAD and DELETE of
one object, and an empty LIST. ``honour_put`` and ``honour_delete`` say
whether it honours conditional headers (a server that honours one and not the
other is the case the probe must catch); ``throttle`` answers every request
503 SlowDown. It checks no signature.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socket
import threading
import urllib.parse
from email.utils import formatdate

_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>{message}</Message></Error>"
)
_EMPTY_LIST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Name>{bucket}</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>false</IsTruncated></ListBucketResult>"
)


class StubS3:
    def __init__(
        self, *, honour_put: bool = True, honour_delete: bool = True, throttle: bool = False
    ) -> None:
        self.honour_put = honour_put
        self.honour_delete = honour_delete
        self.throttle = throttle
        self.objects: dict[str, bytes] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "sos-test-stub"
            sys_version = ""
            timeout = 10  # a backstop: __exit__ shuts every connection down

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub._connections.add(self.connection)

            def finish(self) -> None:
                with stub._lock:
                    stub._connections.discard(self.connection)
                super().finish()

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_HEAD(self) -> None:
                stub._handle(self, "HEAD")

            def do_PUT(self) -> None:
                stub._handle(self, "PUT")

            def do_DELETE(self) -> None:
                stub._handle(self, "DELETE")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on close: a daemon one could still hold its
        # connection's socket when the test's leak check counts descriptors.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> StubS3:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        # A client may keep its connection alive past its close (botocore's
        # pool after retries): end each one here, so that server_close joins
        # every handler thread and no socket outlives the block.
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._thread.join()

    @staticmethod
    def _reply(handler, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Date", formatdate(usegmt=True))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _error(self, handler, status: int, code: str) -> None:
        body = _ERROR.format(code=code, message=code).encode()
        self._reply(handler, status, body, {"Content-Type": "application/xml"})

    def _handle(self, handler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        data = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests += 1
            if self.throttle:
                return self._error(handler, 503, "SlowDown")
            url = urllib.parse.urlsplit(handler.path)
            bucket, _, key = url.path.lstrip("/").partition("/")
            key = urllib.parse.unquote(key)
            if not key:  # a bucket request: answer an empty listing
                body = _EMPTY_LIST.format(bucket=bucket).encode()
                return self._reply(handler, 200, body, {"Content-Type": "application/xml"})
            current = self.objects.get(key)
            etag = f'"{hashlib.md5(current).hexdigest()}"' if current is not None else None
            if_match = handler.headers.get("If-Match")
            if_none = handler.headers.get("If-None-Match")
            if method == "PUT":
                if self.honour_put and (
                    (if_none == "*" and current is not None)
                    or (if_match is not None and if_match != etag)
                ):
                    return self._error(handler, 412, "PreconditionFailed")
                self.objects[key] = data
                new_etag = f'"{hashlib.md5(data).hexdigest()}"'
                return self._reply(handler, 200, b"", {"ETag": new_etag})
            if method == "DELETE":
                if self.honour_delete and if_match is not None and if_match != etag:
                    return self._error(handler, 412, "PreconditionFailed")
                self.objects.pop(key, None)
                return self._reply(handler, 204)
            if current is None:
                return self._error(handler, 404, "NoSuchKey")
            headers = {
                "ETag": etag,
                "Last-Modified": formatdate(usegmt=True),
                "Content-Type": "application/octet-stream",
            }
            return self._reply(handler, 200, current, headers)
