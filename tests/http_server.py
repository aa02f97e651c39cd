"""A real HTTP server on 127.0.0.1 that serves one payload well or badly, by the first path segment.

/good/...       the payload
/truncated/...  the first half, with a Content-Length for the first half
/corrupt/...    the payload with one byte flipped
/404/... /500/... that status
/flaky/...      500 on the first request, the payload after
/stall/...      headers, then silence until the server stops
/drop/...       a Content-Length for all of it, half the bytes, then a closed connection
/slow/...       the payload in 10 parts over about 2 s; `server.most_in_flight` counts requests served at once
"""

import contextlib
import http.server
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_bytes(self, body, length=None):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (the http.server API)
        server = self.server
        mode = self.path.strip("/").split("/")[0]
        server.requests.append(self.path)
        payload = server.payload
        if mode == "good" or (mode == "flaky" and server.requests.count(self.path) > 1):
            self.send_bytes(payload)
        elif mode == "truncated":
            self.send_bytes(payload[: len(payload) // 2])
        elif mode == "corrupt":
            self.send_bytes(payload[:-1] + bytes([payload[-1] ^ 0xFF]))
        elif mode in ("404", "500", "flaky"):
            self.send_error(500 if mode == "flaky" else int(mode))
        elif mode == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            server.stop_stalling.wait(timeout=10)
        elif mode == "slow":
            with server.lock:
                server.in_flight += 1
                server.most_in_flight = max(server.most_in_flight, server.in_flight)
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                step = -(-len(payload) // 10)
                for start in range(0, len(payload), step):
                    self.wfile.write(payload[start:start + step])
                    self.wfile.flush()
                    time.sleep(0.2)
            finally:
                with server.lock:
                    server.in_flight -= 1
        elif mode == "drop":
            self.send_bytes(payload[: len(payload) // 2], length=len(payload))
            self.close_connection = True
        else:
            self.send_error(400)


@contextlib.contextmanager
def running(handler, on_stop=None, **attributes):
    """A threading HTTP server on 127.0.0.1 with `handler` and `attributes` set on it; yields (base URL, server).

    It serves from a daemon thread until the block ends; `on_stop(server)` runs first (e.g. to release stalled requests).
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", server
    finally:
        if on_stop:
            on_stop(server)
        server.shutdown()
        server.server_close()


def serve(payload):
    """Yield the base URL of a server for `payload` and the server; the server stops when the block ends."""
    return running(Handler, on_stop=lambda server: server.stop_stalling.set(), payload=payload, requests=[],
                   stop_stalling=threading.Event(), lock=threading.Lock(), in_flight=0, most_in_flight=0)
