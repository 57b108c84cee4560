#!/usr/bin/env python3
"""The zero-copy reference for the serve GET row of `make bench` (issue 18).

usage: bench-fileserver.py PORT BLOB_DIR

Answers `GET /v2/<name>/blobs/sha256:<hex>` with the file BLOB_DIR/<hex>,
sent by sendfile(2) straight from the page cache: no hashing, no copy through
user space. What 4 curls reach against it is what HTTP on loopback can carry
on this machine at all, the ceiling any registry server meets. Listens on
127.0.0.1 only, reads only BLOB_DIR, writes nothing. Stops on SIGTERM.
"""
import http.server
import os
import re
import sys

BLOB = re.compile(r"^/v2/.+/blobs/sha256:([0-9a-f]{64})$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        m = BLOB.match(self.path)
        path = m and os.path.join(self.server.blob_dir, m.group(1))
        if not path or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            self.connection.sendfile(f, 0, size)

    def log_message(self, *_):
        pass


def main():
    port, blob_dir = int(sys.argv[1]), sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.blob_dir = blob_dir
    server.serve_forever()


if __name__ == "__main__":
    main()
