"""prechange-demo: a tiny HTTP service whose answer tells which version runs.

Installed as /usr/lib/prechange-demo/server.py; the package build replaces
@VERSION@ and @MODE@ (ok | broken)."""
import http.server
import os

VERSION = "@VERSION@"
MODE = "@MODE@"
PORT = int(os.environ.get("PRECHANGE_DEMO_PORT", "8080"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if MODE == "ok":
            code, body = 200, "ok v%s\n" % VERSION.split("-", maxsplit=1)[0].split(".", maxsplit=1)[0]
        else:
            code, body = 500, "broken v%s\n" % VERSION
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Prechange-Demo-Version", VERSION)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
