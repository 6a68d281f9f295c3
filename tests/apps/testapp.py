"""The WSGI app the real-server tests talk to. Every route runs behind
wsgiref.validate.validator, and validator warnings are errors, so a server that breaks PEP 3333
shows up as a 500 and a traceback in the log."""
import json
import sys
import warnings
from wsgiref.validate import validator

warnings.simplefilter("error")


def read_body(environ):
    # wsgiref's validator insists on read(size), as PEP 3333 allows servers to.
    return environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))


def describe(environ):
    """What the app received, as JSON: the tests compare it with what they sent."""
    body = read_body(environ)
    keys = {k: v for k, v in environ.items() if isinstance(v, str)}
    return json.dumps({"environ": keys, "body": body.decode("latin-1"),
                       "types": {k: type(v).__name__ for k, v in environ.items()}}).encode()


def router(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [b"Hello, World!"]
    if path == "/nolength":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"no ", b"length ", b"given"]
    if path.startswith("/echo"):
        body = describe(environ)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/input":
        # wsgi.input as a file: readline, readline(n), iteration, readlines, read(n).
        inp = environ["wsgi.input"]
        parts = [inp.readline(), inp.readline(3), inp.read(2)]
        parts += list(inp.readlines())
        parts.append(inp.read(1000))
        parts.append(inp.read(1000))
        body = json.dumps([p.decode("latin-1") for p in parts]).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/size":
        n = len(read_body(environ))
        body = str(n).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        def gen():
            for i in range(5):
                yield f"part {i};".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/late":
        # start_response called inside the generator, before the first chunk.
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"late "
            yield b"start"
        return gen()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    if path == "/exc_info":
        try:
            raise ValueError("something broke before the body")
        except ValueError:
            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced by the error page"]
    if path == "/raise":
        raise RuntimeError("boom from the app")
    if path == "/raise_mid":
        def gen():
            yield b"first chunk;"
            raise RuntimeError("boom in the middle")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/chunks":
        # Large chunks made on the fly and dropped by the generator at once: the server must
        # keep each alive until it is written.
        def gen():
            for i in range(8):
                yield bytes([65 + i]) * 65536 + str(i).encode() * 1000
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return gen()
    if path == "/big":
        n = int(environ.get("QUERY_STRING") or 1000000)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return [b"x" * n]
    if path == "/file":
        import io
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a file wrapper"), 4)
    if path == "/slow":
        import time
        seconds = float(environ.get("QUERY_STRING") or 1)
        time.sleep(seconds)
        body = f"slept {seconds}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/concurrent":
        # How many requests this process has seen in the app at once, at most.
        import time
        with LOCK:
            STATE["now"] += 1
            STATE["max"] = max(STATE["max"], STATE["now"])
        time.sleep(float(environ.get("QUERY_STRING") or 0.5))
        with LOCK:
            STATE["now"] -= 1
        body = json.dumps({"max": STATE["max"], "multithread": environ["wsgi.multithread"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/grow":
        # Keeps 16 MB more alive with every call: a leak, for --reload-on-rss.
        LEAK.append(bytearray(16 << 20))
        body = str(len(LEAK)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/pid":
        import os
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/closed":
        body = json.dumps(CLOSED).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/track_close":
        return Tracked(start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


CLOSED = []
LEAK = []
import threading
LOCK = threading.Lock()
STATE = {"now": 0, "max": 0}


class Tracked:
    """An iterable whose close() is recorded: the server must always call it."""
    def __init__(self, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")])

    def __iter__(self):
        yield b"tracked"

    def close(self):
        CLOSED.append("closed")


def unvalidated(environ, start_response):
    """Routes that break PEP 3333 on purpose, to see the server refuse them."""
    path = environ["PATH_INFO"]
    if path == "/head_inject":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Evil", "a\r\nSet-Cookie: x=1")])
        return [b"never sent"]
    if path == "/latin1":
        # PEP 3333: native strings, sent as ISO-8859-1.
        start_response("200 Tr\u00e8s bien", [("Content-Type", "text/plain"), ("X-Test", "caf\u00e9"),
                                           ("Content-Length", "2")])
        return [b"ok"]
    if path == "/not_latin1":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Test", "\u00fc\u20ac"),
                                  ("Content-Length", "2")])
        return [b"ok"]
    if path == "/app_close":
        # Hop-by-hop, which PEP 3333 leaves to the server, but real apps send it.
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close"),
                                  ("Content-Length", "7")])
        return [b"closing"]
    if path == "/no_content":
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]
    if path == "/not_modified":
        # The representation's length, as a cache revalidation may carry it; the body an app
        # returns by mistake must not be sent.
        start_response("304 Not Modified", [("ETag", '"v1"'), ("Content-Length", "1234")])
        return [b"must not be sent"]
    if path == "/second_start":
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"the second head"]
    if path == "/start_then_raise":
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        raise RuntimeError("boom after start_response")
    return validated(environ, start_response)


validated = validator(router)
application = unvalidated
