"""A real OpenAI-compatible HTTP server on 127.0.0.1 for the GLM client's tests.

Each image's reply is scripted by the image itself: the test registers, per base64 payload, a list of responses
(status, body) served in turn; the last one repeats. It records every request's headers for the key-leak checks.
"""

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def ok(content, finish_reason="stop"):
    return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": "glm-4.6v-flash",
                 "choices": [{"index": 0, "finish_reason": finish_reason,
                              "message": {"role": "assistant", "content": content}}]}


def error(status, code, message):
    return status, {"error": {"code": code, "message": message}}


def sleep(seconds, then):
    return ("sleep", seconds, then)


class FakeGLM:
    def __init__(self):
        self.scripts, self.calls, self.requests, self.answered, self.delay = {}, {}, [], 0, 0.0
        self.lock = threading.Lock()
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/paas/v4/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def script(self, b64_image, *responses):
        self.scripts[_digest(b64_image)] = list(responses)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                url = body["messages"][0]["content"][0]["image_url"]["url"]
                b64 = url.split(",", 1)[1] if url.startswith("data:") else url
                digest = _digest(b64)
                with fake.lock:
                    fake.requests.append({"headers": dict(self.headers), "prefixed": url.startswith("data:"),
                                          "text": body["messages"][0]["content"][1]["text"]})
                    n = fake.calls.get(digest, 0)
                    fake.calls[digest] = n + 1
                    script = fake.scripts.get(digest, [ok("dog")])
                    response = script[min(n, len(script) - 1)]
                time.sleep(fake.delay)
                if response[0] == "sleep":
                    time.sleep(response[1])
                    response = response[2]
                status, payload = response
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    with fake.lock:
                        fake.answered += 1
                except OSError:
                    pass

        return Handler


def _digest(b64):
    return hashlib.sha1(base64.b64decode(b64)).hexdigest()
