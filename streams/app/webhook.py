"""A stand-in deploy system on 127.0.0.1 for the demo and the tests: it accepts an action only when the
executor signed the request body and the action carries a valid permit from the decider key, and
(given its own key) answers with a signed delivery acknowledgement (gatewatch.processors.acks)."""
from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors.acks import sign_ack
from gatewatch.processors.signing import check_permit, key_id
from gatewatch.processors.timefmt import format_ts


class DeployWebhook:
    """A stand-in deploy system on 127.0.0.1: accepts an action only if the executor signed the body
    and the action's permit is valid for the decider key."""

    def __init__(self, executor_key: VerifyKey, decider_key: VerifyKey, ack_key: SigningKey | None = None,
                 recipient: str = "deploy"):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        trusted = {key_id(decider_key): decider_key}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig = self.headers.get("X-Gatewatch-Signature", "")
                try:
                    executor_key.verify(body, base64.b64decode(sig))
                    action = orjson.loads(body)
                    permit_problem = check_permit(action, trusted, int(time.time() * 1000))
                except Exception as e:  # bad signature or body: refuse
                    permit_problem = f"bad request: {type(e).__name__}"
                    action = {}
                with outer.lock:
                    outer.calls.append({"action": action, "permit_ok": permit_problem is None,
                                        "problem": permit_problem,
                                        "idempotency_key": self.headers.get("Idempotency-Key")})
                reply = b""
                if ack_key is not None and isinstance(action.get("id"), str):  # what it did, signed by it
                    reply = orjson.dumps(sign_ack(ack_key, action["id"], self.headers.get("Idempotency-Key", ""),
                                                  "success" if permit_problem is None else "failure", recipient,
                                                  format_ts(int(time.time() * 1000))))
                self.send_response(200 if permit_problem is None else 403)
                self.send_header("Content-Length", str(len(reply)))
                if reply:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/deploy"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
