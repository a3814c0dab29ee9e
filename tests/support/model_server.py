"""A scripted OpenAI-compatible /v1/chat/completions server that drives the real OpenCode.

The last user message picks the script with a marker:
  [[write-commit]]  write hello.txt, run `git add && git commit`, then summarise
  [[slow]]          run `sleep 4` first (keeps the agent busy), then answer
  [[fail-400]]      answer HTTP 400 (a model error OpenCode does not retry)
  [[retry-500]]     answer HTTP 500 forever (OpenCode retries without end)
  [[outside]]       try to write ../home/outside.txt (outside the repo), then answer
anything else       answer with text echoing the message.
The step within a script is the number of tool results since that user message.
Other requests (titles, summaries) get a one-word answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.servers import serving

REPO = "/sandbox/repo"
_WORKDIR = re.compile(r"Working directory: (\S+)")
USAGE = {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _working_directory(messages: list[dict[str, Any]]) -> str:
    """The repo as the agent sees it, from OpenCode's system prompt."""
    for message in messages:
        if message.get("role") == "system":
            found = _WORKDIR.search(_text_of(message))
            if found:
                return found.group(1)
    return REPO


def plan(messages: list[dict[str, Any]]) -> tuple[str, Any]:
    """What to answer: ("text", str) | ("tool", (name, args)) | ("status", code)."""
    repo = _working_directory(messages)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    if last_user < 0:
        return ("text", "Task")
    prompt = _text_of(messages[last_user])
    step = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "tool")
    if "[[fail-400]]" in prompt:
        return ("status", 400)
    if "[[retry-500]]" in prompt:
        return ("status", 500)
    if "[[write-commit]]" in prompt:
        script: list[tuple[str, Any]] = [
            (
                "tool",
                ("write", {"filePath": f"{repo}/hello.txt", "content": "hello from outrider\n"}),
            ),
            (
                "tool",
                (
                    "bash",
                    {
                        "command": "git add hello.txt && git commit -q -m 'Add hello.txt' "
                        "&& git log --oneline -1",
                        "description": "Commit hello.txt",
                    },
                ),
            ),
            ("text", "All done: wrote hello.txt and committed it."),
        ]
        return script[min(step, len(script) - 1)]
    if "[[outside]]" in prompt:
        if step == 0:
            escape = {"filePath": f"{repo}/../home/outside.txt", "content": "escaped\n"}
            return ("tool", ("write", escape))
        return ("text", "Could not write outside the repository.")
    if "[[slow]]" in prompt:
        if step == 0:
            return ("tool", ("bash", {"command": "sleep 4", "description": "Think slowly"}))
        return ("text", "Finished the slow work.")
    return ("text", f"Done: {prompt.strip()[:200]}")


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: bool = False) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-scripted",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = USAGE
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class ScriptedModel:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                model.requests.append(request)
                kind, value = plan(request.get("messages", []))
                if kind == "status":
                    body = json.dumps(
                        {
                            "error": {
                                "message": f"scripted failure {value}",
                                "type": "invalid_request_error",
                            }
                        }
                    ).encode()
                    self.send_response(value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(_chunk({"role": "assistant", "content": ""}))
                if kind == "text":
                    for word in value.split(" "):
                        self.wfile.write(_chunk({"content": word + " "}))
                    self.wfile.write(_chunk({}, "stop", usage=True))
                else:
                    name, args = value
                    call = {
                        "index": 0,
                        "id": f"call_{len(model.requests)}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                    self.wfile.write(_chunk({"tool_calls": [call]}))
                    self.wfile.write(_chunk({}, "tool_calls", usage=True))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        return Handler


@contextmanager
def scripted_model() -> Iterator[ScriptedModel]:
    model = ScriptedModel()
    with serving(model._server):
        yield model
