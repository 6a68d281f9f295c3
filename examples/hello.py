"""The bundled example app: `wsgilab serve --http-socket :8000 --wsgi-file examples/hello.py`.

Routes:
  /            Hello, World!
  /environ     the WSGI environ, one key per line
  /echo        the request body, back (try: curl --data-binary @file)
  /stream      a streamed body of five chunks, one every 0.2 s
  /slow?s=N    answers after N seconds (to watch a worker stay busy)
  /error       raises, to see a traceback in the log and a 500
"""
import time
from urllib.parse import parse_qs


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        body = b"Hello, World!"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/environ":
        lines = [f"{k} = {v!r}" for k, v in sorted(environ.items())]
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return ["\n".join(lines).encode() + b"\n"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":
        def chunks():
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(5):
                yield f"chunk {i}\n".encode()
                time.sleep(0.2)
        return chunks()
    if path == "/slow":
        seconds = float(parse_qs(environ["QUERY_STRING"]).get("s", ["1"])[0])
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"slept {seconds} s\n".encode()]
    if path == "/error":
        raise RuntimeError("this is what an exception in your app looks like")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]
