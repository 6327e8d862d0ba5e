"""Serve a directory over HTTP on 127.0.0.1 for the guest's apt.

Unlike `python3 -m http.server`, never answers 304: the harness swaps the
'current' scenario directory under the same URLs, and a file's mtime can go
backwards across scenarios, so an If-Modified-Since answer could hand apt a
stale index. Writes the bound port to --port-file (use --port 0 for any)."""
import argparse
import functools
import http.server
import os


class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        for h in ("If-Modified-Since", "If-None-Match"):
            if h in self.headers:
                del self.headers[h]
        return super().send_head()

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    # The rehearsal network (issue 13): a second server on the bridge's 10.0.2.2 for the guest's clones.
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args()
    handler = functools.partial(Handler, directory=os.path.abspath(args.root))
    server = http.server.ThreadingHTTPServer((args.bind, args.port), handler)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(str(server.server_address[1]))
        os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
