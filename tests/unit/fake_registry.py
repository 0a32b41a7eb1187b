"""A tiny in-process HTTP server standing in for an OCI registry that answers
badly (or exactly as told): the unit tests of the remote cache and of
dib push/pull serve canned answers from it."""
from __future__ import annotations

import http.server
import threading
import time


class FakeRegistry:
    """Serves canned answers: route (method, path) → (status, headers, body)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.delay = 0.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: (method, full path) → the body of the last such request that had one
        self.bodies: dict[tuple[str, str], bytes] = {}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?", 1)[0]
                fake.requests.append((self.command, self.path, dict(self.headers)))
                time.sleep(fake.delay)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    fake.bodies[(self.command, self.path)] = self.rfile.read(length)
                status, headers, body = fake.routes.get((self.command, path),
                                                        (404, {}, b"{}"))
                if status == 0:   # not HTTP at all
                    self.wfile.write(body)
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
