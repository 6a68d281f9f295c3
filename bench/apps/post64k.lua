-- wrk script for the upload workload: every request is a POST of 64 KiB (65,536 bytes).
-- wrk.format() adds the Content-Length header from the body.
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
