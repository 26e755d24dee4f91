"""A schema registry that demands basic auth: the one test double of `tests/avro.rs`.

Answers `POST /subjects/{subject}/versions` with `{"id": 7}` when the request carries
`Authorization: Basic base64(USER:PASSWORD)`, and with the registry's 401 body otherwise. Prints
`listening on PORT` on standard error once it accepts connections, then serves until killed.

    python3 tests/support/auth_registry.py USER PASSWORD
"""

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER, PASSWORD = sys.argv[1], sys.argv[2]
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.headers.get("Authorization") != EXPECTED:
            self.answer(401, {"error_code": 401, "message": "Unauthorized"})
        elif self.path.startswith("/subjects/") and self.path.endswith("/versions"):
            self.answer(200, {"id": 7})
        else:
            self.answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    do_GET = do_POST

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", file=sys.stderr, flush=True)
server.serve_forever()
