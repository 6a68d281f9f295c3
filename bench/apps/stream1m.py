"""A 1 MiB body streamed from a generator in 16 chunks of 64 KiB.

The Content-Length is declared, so every server can keep the connection alive without chunked
encoding; the server still has to pull each chunk from the generator and write it.
"""

CHUNK = b"x" * 65536
CHUNKS = 16
HEADERS = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", str(len(CHUNK) * CHUNKS)),
]


def application(environ, start_response):
    start_response("200 OK", HEADERS)

    def body():
        for _ in range(CHUNKS):
            yield CHUNK

    return body()
