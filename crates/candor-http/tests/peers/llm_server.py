"""An OpenAI-compatible chat-completions server for Candor's tests.

POST /v1/chat/completions answers as its mode file says at that moment (the test switches
modes without restarting it), and appends every request body, as received, to the log file:

  ok      a completion that quotes the first CONTEXT line of the system prompt
  fail    HTTP 500
  slow    answers after 5 seconds (longer than the tests' timeout)
  human   a completion that claims to be a person
  leak    a completion that contains an email address and a phone number
  chunked the `ok` answer with Transfer-Encoding: chunked

Prints the port it listens on (127.0.0.1, chosen by the OS) as its first line.
Standard library only.
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG, MODE = sys.argv[1], sys.argv[2]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with open(LOG, "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        with open(MODE) as f:
            mode = f.read().strip()
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": "not found"}})
        try:
            req = json.loads(body)
            system = req["messages"][0]["content"]
            assert req["stream"] is False and req["model"]
        except Exception:
            return self.reply(400, {"error": {"message": "bad request"}})
        context = [l[2:] for l in system.splitlines() if l.startswith("- ")]
        first = context[0] if context else "nothing"
        if mode == "fail":
            return self.reply(500, {"error": {"message": "the model crashed"}})
        if mode == "slow":
            time.sleep(5)
        text = {
            "human": "Don't worry, I'm a real person on the shop's team.",
            "leak": "Sure, write to jane.doe@example.org or call +44 20 7946 0958.",
        }.get(mode, f"From the shop's catalog: {first}")
        answer = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": req["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
        if mode == "chunked":
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 50):
                part = data[i:i + 50]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.reply(200, answer)

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
