"""A real HTTP server on 127.0.0.1 serving a folder in the wwPDB layout, for the tests of
``--templates pdb`` without the internet. Faults on request: a file served truncated, a file
answered with 404, every answer delayed; every GET is counted."""

import contextlib
import functools
import http.server
import threading
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, Optional


class _Handler(http.server.SimpleHTTPRequestHandler):
    faults: Dict[str, str] = {}
    delay = 0.0
    counts: Counter = Counter()

    def do_GET(self):  # noqa: N802 - the standard library's name
        import time

        name = Path(self.path).name
        self.counts[name] += 1
        if self.delay:
            time.sleep(self.delay)
        fault = self.faults.get(name)
        if fault == "404":
            self.send_error(404, "Not Found")
            return
        if fault == "truncate":
            data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            cut = data[: len(data) // 2]
            self.send_response(200)
            self.send_header("Content-Length", str(len(cut)))  # a whole-looking but truncated gzip
            self.end_headers()
            self.wfile.write(cut)
            return
        super().do_GET()

    def log_message(self, *args):  # quiet
        pass


@contextlib.contextmanager
def serve(root: Path, faults: Optional[Dict[str, str]] = None, delay: float = 0.0) -> Iterator[tuple]:
    """``(url, counts)`` of a server on a free port of 127.0.0.1 serving ``root``; stopped on exit."""
    handler = type("Handler", (_Handler,), {"faults": dict(faults or {}), "delay": delay, "counts": Counter()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.counts
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
