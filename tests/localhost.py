"""A JSON HTTP server on localhost for the endpoint tests: a subclass answers ``answer(path, body)`` with
(status, payload); ``requests`` counts the calls; ``url`` ends in ``/v1`` as OpenAI-compatible servers do."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that gave up (a timeout test): not news
        pass


class JsonServer:
    def __init__(self) -> None:
        self.requests = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests += 1
                status, reply = server.answer(self.path, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ChatServer(JsonServer):
    """``POST /v1/chat/completions`` answering the one user message with ``reply(content)``; a request at another
    temperature than ``temperatures`` allow fails the test (a judge asks at 0; difficulty samples at 0.7)."""

    def __init__(self, reply: Callable[[str], str], temperatures: tuple[float, ...] = (0,)) -> None:
        self.reply = reply
        self.temperatures = temperatures
        super().__init__()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        assert path == "/v1/chat/completions" and body["temperature"] in self.temperatures
        [message] = body["messages"]
        return 200, {"choices": [{"message": {"role": "assistant", "content": self.reply(message["content"])}}]}
