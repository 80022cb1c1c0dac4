"""A local fake of the OpenAI HTTP API (Chat Completions and Responses) for provider-model tests.

A real HTTP server on 127.0.0.1 in a thread, so pydantic-ai's real ``OpenAIChatModel`` and
``OpenAIResponsesModel`` and the official SDK do everything they do in production: build the wire
request, parse the answer, put the provider's ids into the history. Like the real API, every
answer carries fresh ids (response, tool-call and output-item ids) and a fresh ``created``
timestamp, so nothing per-call can hide in a key. ``requests`` counts what reached the server.

Chat Completions also streams (``"stream": true``): the same answer as server-sent events, the
text a word per chunk, usage in a last chunk.

The script of every user turn: call the ``research`` tool once for each topic in ``TOPICS`` (one
step per topic), then answer in text with what the tool returned.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOPICS = ("tides", "winds")
MODEL_VERSION = "gpt-4o-mini-2024-07-18"


class FakeOpenAI:
    """The server's state: what it received, and the clock its answers are stamped with."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._clock = itertools.count(1_800_000_000)
        self.base_url = ""

    def count(self, path: str | None = None) -> int:
        """Requests received (on ``path``, if given)."""
        with self._lock:
            return sum(1 for p, _ in self.requests if path is None or p == path)

    def answer(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            self.requests.append((path, body))
            created = next(self._clock)
        if path.endswith("/chat/completions"):
            return _chat_answer(body, created)
        if path.endswith("/responses"):
            return _responses_answer(body, created)
        return None


def _fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def _usage_tokens(body: dict[str, Any]) -> tuple[int, int]:
    return len(json.dumps(body)) // 4, 12


def _this_turn(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages (or input items) after the last user message."""
    users = [i for i, item in enumerate(items) if item.get("role") == "user"]
    return items[users[-1] + 1 :] if users else items


def _chat_answer(body: dict[str, Any], created: int) -> dict[str, Any]:
    returns = [m for m in _this_turn(body["messages"]) if m.get("role") == "tool"]
    if len(returns) < len(TOPICS):
        call = {
            "id": _fresh("call_"),
            "type": "function",
            "function": {"name": "research", "arguments": json.dumps({"topic": TOPICS[len(returns)]})},
        }
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    else:
        message = {"role": "assistant", "content": "Summary: " + "; ".join(m["content"] for m in returns)}
        finish = "stop"
    prompt, completion = _usage_tokens(body)
    return {
        "id": _fresh("chatcmpl-"),
        "object": "chat.completion",
        "created": created,
        "model": MODEL_VERSION,
        "system_fingerprint": _fresh("fp_")[:12],
        "choices": [{"index": 0, "finish_reason": finish, "message": message, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _chat_events(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """``answer`` as the chunks of a streamed Chat Completion."""
    (choice,) = answer["choices"]
    message = choice["message"]
    head = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    if message.get("tool_calls"):
        calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        chunks.append(chunk({"tool_calls": calls}))
    else:
        chunks += [chunk({"content": word}) for word in re.findall(r"\S+\s*", message["content"])]
    chunks.append(chunk({}, choice["finish_reason"]))
    chunks.append({**head, "choices": [], "usage": answer["usage"]})
    return chunks


def _responses_answer(body: dict[str, Any], created: int) -> dict[str, Any]:
    items = body["input"] if isinstance(body["input"], list) else []
    returns = [i for i in _this_turn(items) if i.get("type") == "function_call_output"]
    if len(returns) < len(TOPICS):
        output: dict[str, Any] = {
            "type": "function_call",
            "id": _fresh("fc_"),
            "call_id": _fresh("call_"),
            "name": "research",
            "arguments": json.dumps({"topic": TOPICS[len(returns)]}),
            "status": "completed",
        }
    else:
        text = "Summary: " + "; ".join(str(r["output"]) for r in returns)
        output = {
            "type": "message",
            "id": _fresh("msg_"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    prompt, completion = _usage_tokens(body)
    return {
        "id": _fresh("resp_"),
        "object": "response",
        "created_at": created,
        "status": "completed",
        "model": MODEL_VERSION,
        "output": [output],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _handler(api: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            answer = api.answer(self.path, body)
            content_type = "application/json"
            if answer is None:
                data = json.dumps({"error": {"message": f"no such path: {self.path}"}}).encode()
            elif body.get("stream") and self.path.endswith("/chat/completions"):
                events = [f"data: {json.dumps(event)}\n\n" for event in _chat_events(answer)]
                data = "".join([*events, "data: [DONE]\n\n"]).encode()
                content_type = "text/event-stream"
            else:
                data = json.dumps(answer).encode()
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", _fresh("req_"))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows the test's own output

    return Handler


@contextmanager
def serve() -> Iterator[FakeOpenAI]:
    """Run a fake API on a free local port for the duration of the block."""
    api = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-openai", daemon=True)
    thread.start()
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
