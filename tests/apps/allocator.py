"""Where glibc puts a 1.5 MiB block: mapped by itself (mmap) or in a heap. Checked once when the
app is imported (in the master, when preforking) and again on every request (in a worker), so
that a test can see which allocator settings each process runs with."""
import ctypes

BLOCK = 3 << 19  # 1.5 MiB: above glibc's default mmap threshold, below a worker's (2 MiB)


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2


def where_a_block_goes(blocks):
    mapped_before = libc.mallinfo2().hblks
    blocks.append(bytearray(BLOCK))
    return "mmap" if libc.mallinfo2().hblks > mapped_before else "heap"


# Kept: freeing a mapped block would raise glibc's threshold (it adapts to what is freed), and
# the request's block would then go to the heap even with glibc's defaults.
KEPT = []
AT_IMPORT = where_a_block_goes(KEPT)


def application(environ, start_response):
    body = f"import: {AT_IMPORT}, request: {where_a_block_goes([])}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
