"""The WSGI app behind tests/http_front_door.rs: it answers every request 200 with a JSON
document of exactly what reached it, so a test can compare that with the bytes it sent.

Environ values are PEP 3333 native strings (bytes decoded as latin-1) and the body is decoded as
latin-1 too; json.dumps escapes every non-ASCII character, so the response is plain ASCII and
each character of a string in it stands for one byte."""
import json


def application(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    received = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ.get("QUERY_STRING", ""),
        "uri": environ.get("REQUEST_URI"),
        "protocol": environ["SERVER_PROTOCOL"],
        "server_name": environ.get("SERVER_NAME"),
        "content_type": environ.get("CONTENT_TYPE"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "body": body.decode("latin-1"),
    }
    out = json.dumps(received, sort_keys=True).encode("ascii")
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]
