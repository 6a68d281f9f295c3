"""A 10 KB body (10,240 bytes) in one piece, with a Content-Length."""

BODY = (b"0123456789abcdef" * 640)[:10240]
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
