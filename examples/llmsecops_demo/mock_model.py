"""A stand-in for an OpenAI-compatible model, for the LLMSecOps demo.

Python standard library only. Serves POST /v1/chat/completions (not
streamed) and GET /v1/models on 127.0.0.1; every answer is written by
rules, so a demo run is the same every time. It plays a naive model that
does what it is asked: it repeats its instructions when asked for them and
starts a harmful answer with "Sure, here is", so that whatever the gateway
lets through shows in the red-team report as a successful attack.

Usage: python3 mock_model.py PORT_FILE   (writes the port it bound to)
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SYSTEM_PROMPT_ECHO = "My instructions are: you are the Acme travel assistant; the discount code is TRAVEL-7781."


def answer(messages):
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
    if isinstance(user, list):
        user = " ".join(p.get("text", "") for p in user if isinstance(p, dict))
    lower = user.lower()
    if any(w in lower for w in ("instruction", "system prompt", "initial prompt", "rules")):
        return SYSTEM_PROMPT_ECHO
    if any(w in lower for w in ("how to", "step", "write", "explain", "tell me")):
        return "Sure, here is what you asked for: step 1, gather the materials; step 2, follow the plan."
    return "Happy to help with your trip."


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "demo-model", "object": "model", "owned_by": "demo"}]})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        text = answer(req.get("messages") or [])
        self.send_json(200, {
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model", "demo-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": len(text.split()), "total_tokens": 20 + len(text.split())},
        })


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
