"""A scripted, OpenAI-compatible HTTP server: the tests' only stand-in for a real provider.

Stdlib only. It listens on 127.0.0.1 (port 0 picks a free port) in a daemon thread and
replays a script of chat-completion "turns", so the real ``langchain-openai`` client
(and with it the real provider code path of the harness) runs over real HTTP.

Usage::

    from support.scripted_openai import ScriptedOpenAI

    script = [
        {"tool_calls": [{"name": "bash", "arguments": {"command": "echo 42 > answer.txt"}}]},
        {"content": "Done."},
    ]
    with ScriptedOpenAI(script) as server:        # model name "scripted"
        llm = ChatOpenAI(model="scripted", base_url=server.base_url, api_key="test-key")
        ...
        server.requests        # every request received (RecordedRequest), in order

Manual runs / benchmarks::

    python tests/support/scripted_openai.py --port 8011 --script script.json [--api-key KEY]

Script
------
Either a list of entries (served under the model name ``default_model``, "scripted"),
or a dict ``{model_name: [entries...]}``.  Entries are:

- ``{"tool_calls": [{"name": "bash", "arguments": {...} or "raw json string"}], "content": ""}``
  an assistant message with tool calls (finish_reason "tool_calls");
- ``{"content": "Done."}``: a final answer (finish_reason "stop"); an optional
  ``"finish_reason"`` overrides it (e.g. "length");
- ``{"refusal": "I can't help with that."}``: an assistant refusal (content null);
- ``{"solve_with": "bash", "commands": ["cmd1", "cmd2"], "arg": "command", "final": "Done."}``:
  shorthand for one tool-call turn per command, then a final answer;
- faults: ``{"fault": 429}``, ``{"fault": 500}``, ``{"fault": 401}`` (any HTTP status works,
  e.g. 400/403/404/503), ``{"fault": "drop"}`` (close the connection without a response),
  ``{"fault": "slow", "seconds": 5}`` (sleep, then answer the turn normally),
  ``{"fault": "context_overflow"}`` (400, ``code: context_length_exceeded``).
  ``"times": N`` repeats a fault N times (``"always"``: never used up); HTTP faults take an
  optional ``"retry_after"`` in seconds (429 defaults to 1) and ``"message"``.

Which turn a request gets: the number of assistant messages already in its ``messages``,
so every conversation replays the script from its start independently and concurrent
conversations do not interfere.  A fault entry guards the turn that follows it in the
script; faults are used up from a per-server counter (shared by all conversations), so
``[{"fault": 429, "times": 2}, {"content": "hi"}]`` answers the first two requests for
turn 0 (from any conversation) with 429 and every later one with "hi".  A request past the
end of the script gets a 400 ``script_exhausted`` error (loud on purpose).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["RecordedRequest", "ScriptError", "ScriptedOpenAI", "count_tokens", "main"]

DEFAULT_MODEL = "scripted"
DEFAULT_API_KEY = "test-key"

_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    # status: (type, code, message) as OpenAI sends them
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Permission denied."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    408: ("server_error", None, "Request timed out."),
    409: ("server_error", None, "Conflict."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again later.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class ScriptError(ValueError):
    """The script is malformed."""


def count_tokens(text: str) -> int:
    """A plausible token count: about four characters per token, at least one."""
    return max(1, math.ceil(len(text) / 4))


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON (None for GET / unparsable)
    status: int | None = None  # status sent; None when the connection was dropped
    outcome: str = ""  # e.g. "turn 0", "fault 429", "fault drop", "auth", "models"
    time: float = field(default_factory=time.time)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None


@dataclass
class _Turn:
    message: dict[str, Any]  # the assistant message minus ids
    finish_reason: str


@dataclass
class _Fault:
    kind: int | str
    times: int | None  # None: always
    spec: dict[str, Any]


@dataclass
class _ModelScript:
    turns: list[_Turn]
    faults: dict[int, list[_Fault]]  # turn index -> faults guarding it, in order


def _tool_call(name: str, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"name": name, "arguments": arguments}


def _compile(entries: list[dict[str, Any]], model: str) -> _ModelScript:
    if not isinstance(entries, list):
        raise ScriptError(f"script for model {model!r} must be a list of entries")
    turns: list[_Turn] = []
    faults: dict[int, list[_Fault]] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ScriptError(f"{model!r} entry {i} is not an object: {entry!r}")
        if "fault" in entry:
            kind = entry["fault"]
            if not (isinstance(kind, int) or kind in ("drop", "slow", "context_overflow")):
                raise ScriptError(f"{model!r} entry {i}: unknown fault {kind!r}")
            times = entry.get("times", 1)
            if times == "always":
                times = None
            elif not isinstance(times, int) or times < 1:
                raise ScriptError(f"{model!r} entry {i}: times must be a positive int or 'always'")
            faults.setdefault(len(turns), []).append(_Fault(kind, times, entry))
        elif "solve_with" in entry:
            tool, arg = entry["solve_with"], entry.get("arg", "command")
            for command in entry.get("commands", []):
                turns.append(
                    _Turn({"content": "", "tool_calls": [_tool_call(tool, {arg: command})]}, "tool_calls")
                )
            turns.append(_Turn({"content": entry.get("final", "Done.")}, "stop"))
        elif "tool_calls" in entry:
            calls = [_tool_call(c["name"], c.get("arguments", {})) for c in entry["tool_calls"]]
            turns.append(
                _Turn(
                    {"content": entry.get("content", ""), "tool_calls": calls},
                    entry.get("finish_reason", "tool_calls"),
                )
            )
        elif "refusal" in entry:
            turns.append(_Turn({"content": None, "refusal": entry["refusal"]}, "stop"))
        elif "content" in entry:
            turns.append(_Turn({"content": entry["content"]}, entry.get("finish_reason", "stop")))
        else:
            raise ScriptError(f"{model!r} entry {i} is not a turn, fault or solve_with: {entry!r}")
    return _ModelScript(turns, faults)


def _error_body(status: int, message: str | None = None, *, type_: str | None = None,
                code: str | None = None, param: str | None = None) -> dict[str, Any]:
    d_type, d_code, d_message = _STATUS_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}")
    )
    return {
        "error": {
            "message": message or d_message,
            "type": type_ or d_type,
            "param": param,
            "code": code if code is not None else d_code,
        }
    }


def _message_text(messages: Any) -> str:
    """The text the prompt-token estimate is based on."""
    try:
        return json.dumps(messages, sort_keys=True)
    except (TypeError, ValueError):
        return str(messages)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"
    server_version = "ScriptedOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    # --- plumbing -------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(self, rec: RecordedRequest, status: int, payload: Any,
                   headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        rec.status = status
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (e.g. its timeout fired)

    def _send_error(self, rec: RecordedRequest, status: int, message: str | None = None,
                    headers: dict[str, str] | None = None, **kw: Any) -> None:
        self._send_json(rec, status, _error_body(status, message, **kw), headers)

    def _record(self, body: Any) -> RecordedRequest:
        rec = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        self.server.owner._record(rec)
        return rec

    def _authorized(self, rec: RecordedRequest) -> bool:
        key = self.server.owner.api_key
        if key is None:
            return True
        auth = self.headers.get("authorization", "")
        if auth == f"Bearer {key}":
            return True
        rec.outcome = "auth"
        given = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        shown = (given[:3] + "*" * 4 + given[-4:]) if len(given) > 8 else given or "<none>"
        self._send_error(
            rec, 401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
        return False

    # --- endpoints --------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        rec = self._record(None)
        if not self._authorized(rec):
            return
        owner = self.server.owner
        path = self.path.split("?", 1)[0].rstrip("/")
        rec.outcome = "models"
        if path == "/v1/models":
            self._send_json(rec, 200, {"object": "list", "data": [owner._model_object(m) for m in owner.models]})
        elif path.startswith("/v1/models/"):
            model = path[len("/v1/models/"):]
            if model in owner.models:
                self._send_json(rec, 200, owner._model_object(model))
            else:
                self._model_not_found(rec, model)
        else:
            rec.outcome = "not found"
            self._send_error(rec, 404, f"Unknown path {self.path}", code="unknown_url")

    def do_POST(self) -> None:  # noqa: N802
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        rec = self._record(body)
        if not self._authorized(rec):
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path != "/v1/chat/completions":
            rec.outcome = "not found"
            self._send_error(rec, 404, f"Unknown path {self.path}", code="unknown_url")
            return
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            rec.outcome = "bad request"
            self._send_error(rec, 400, "We could not parse the JSON body of your request, "
                             "or it has no 'messages'.")
            return
        self._chat(rec, body)

    def _model_not_found(self, rec: RecordedRequest, model: str) -> None:
        rec.outcome = "model not found"
        self._send_error(
            rec, 404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )

    def _chat(self, rec: RecordedRequest, body: dict[str, Any]) -> None:
        owner = self.server.owner
        model = body.get("model")
        script = owner._scripts.get(model)
        if script is None:
            self._model_not_found(rec, str(model))
            return
        turn_index = sum(1 for m in body["messages"] if isinstance(m, dict) and m.get("role") == "assistant")
        fault = owner._take_fault(model, turn_index)
        if fault is not None:
            kind = fault.kind
            rec.outcome = f"fault {kind}"
            if kind == "drop":
                rec.status = None
                self.close_connection = True
                return  # no response at all; the socket is closed by the server
            if kind == "slow":
                if owner._stopping.wait(float(fault.spec.get("seconds", 5))):
                    self.close_connection = True
                    return
            elif kind == "context_overflow":
                prompt = count_tokens(_message_text(body["messages"]))
                limit = int(fault.spec.get("limit", 128000))
                self._send_error(
                    rec, 400,
                    fault.spec.get("message")
                    or f"This model's maximum context length is {limit} tokens. However, your "
                    f"messages resulted in {max(prompt, limit + 1)} tokens. Please reduce the "
                    "length of the messages.",
                    code="context_length_exceeded", param="messages",
                )
                return
            else:
                status = int(kind)
                headers: dict[str, str] = {}
                retry_after = fault.spec.get("retry_after", 1 if status == 429 else None)
                if retry_after is not None:
                    headers["retry-after"] = str(max(0, math.ceil(float(retry_after))))
                    headers["retry-after-ms"] = str(int(float(retry_after) * 1000))
                if status == 429:
                    headers.update({
                        "x-ratelimit-limit-requests": "60",
                        "x-ratelimit-remaining-requests": "0",
                        "x-ratelimit-reset-requests": f"{retry_after}s",
                    })
                self._send_error(rec, status, fault.spec.get("message"), headers=headers)
                return
        if turn_index >= len(script.turns):
            rec.outcome = "script exhausted"
            self._send_error(
                rec, 400,
                f"Scripted model {model!r} has {len(script.turns)} turns; the request asked for "
                f"turn {turn_index} (it carries {turn_index} assistant messages).",
                code="script_exhausted",
            )
            return
        if not rec.outcome:
            rec.outcome = f"turn {turn_index}"
        else:
            rec.outcome += f", turn {turn_index}"
        response = owner._completion(model, script.turns[turn_index], body)
        if body.get("stream"):
            self._stream(rec, response, body)
        else:
            self._send_json(rec, 200, response)

    def _stream(self, rec: RecordedRequest, response: dict[str, Any], body: dict[str, Any]) -> None:
        """Server-sent events, as OpenAI streams chat completions."""
        base = {k: response[k] for k in ("id", "created", "model", "system_fingerprint")}
        base["object"] = "chat.completion.chunk"
        choice = response["choices"][0]
        msg = choice["message"]

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None,
                  choices: bool = True) -> dict[str, Any]:
            c = dict(base)
            c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []
            if usage is not None or (body.get("stream_options") or {}).get("include_usage"):
                c["usage"] = usage
            return c

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if msg.get("content"):
            text = msg["content"]
            for i in range(0, len(text), 16):
                events.append(chunk({"content": text[i:i + 16]}))
        if msg.get("refusal"):
            events.append(chunk({"refusal": msg["refusal"]}))
        for idx, call in enumerate(msg.get("tool_calls") or []):
            events.append(chunk({"tool_calls": [{
                "index": idx, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }]}))
            args = call["function"]["arguments"]
            for i in range(0, len(args), 16):
                events.append(chunk({"tool_calls": [{"index": idx, "function": {"arguments": args[i:i + 16]}}]}))
        events.append(chunk({}, choice["finish_reason"]))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(chunk({}, usage=response["usage"], choices=False))
        rec.status = 200
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.send_header("x-request-id", "req_" + uuid.uuid4().hex)
            self.end_headers()
            for ev in events:
                self._write_chunk(f"data: {json.dumps(ev)}\n\n".encode())
            self._write_chunk(b"data: [DONE]\n\n")
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "ScriptedOpenAI"


class ScriptedOpenAI:
    """An OpenAI-compatible chat-completions server replaying a script (see module doc).

    ``ScriptedOpenAI(script, *, api_key="test-key", host="127.0.0.1", port=0,
    default_model="scripted", verbose=False)``; ``api_key=None`` accepts any key.
    Use as a context manager or call ``start()`` / ``stop()``.
    """

    def __init__(self, script: list[dict[str, Any]] | dict[str, list[dict[str, Any]]], *,
                 api_key: str | None = DEFAULT_API_KEY, host: str = "127.0.0.1", port: int = 0,
                 default_model: str = DEFAULT_MODEL, verbose: bool = False) -> None:
        if isinstance(script, list):
            script = {default_model: script}
        if not isinstance(script, dict) or not script:
            raise ScriptError("script must be a list of entries or a non-empty {model: entries} dict")
        self._scripts = {str(m): _compile(entries, str(m)) for m, entries in script.items()}
        self.models: list[str] = list(self._scripts)
        self.api_key = api_key
        self.host = host
        self.port = port
        self.verbose = verbose
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._used: dict[tuple[str, int, int], int] = {}  # (model, turn, fault#) -> times used
        self._stopping = threading.Event()
        self._connections: set[Any] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._created = int(time.time())
        self._counter = 0

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> "ScriptedOpenAI":
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"scripted-openai:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes "slow" handlers
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:  # idle keep-alive connections would keep their threads alive
            try:
                conn.shutdown(2)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "ScriptedOpenAI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (what ``ChatOpenAI(base_url=...)`` wants)."""
        return f"http://{self.host}:{self.port}/v1"

    # --- inspection -----------------------------------------------------------------------
    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The POST /v1/chat/completions requests received so far."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/").endswith("/chat/completions")]

    def reset(self) -> None:
        """Forget the recorded requests and make every fault available again."""
        with self._lock:
            self.requests.clear()
            self._used.clear()

    # --- internals ------------------------------------------------------------------------
    def _track(self, conn: Any, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _take_fault(self, model: str, turn: int) -> _Fault | None:
        with self._lock:
            for n, fault in enumerate(self._scripts[model].faults.get(turn, [])):
                key = (model, turn, n)
                if fault.times is None or self._used.get(key, 0) < fault.times:
                    self._used[key] = self._used.get(key, 0) + 1
                    return fault
        return None

    def _model_object(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": self._created, "owned_by": "scripted-openai"}

    def _completion(self, model: str, turn: _Turn, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        message: dict[str, Any] = {"role": "assistant", "content": turn.message.get("content"),
                                   "refusal": turn.message.get("refusal")}
        completion_text = (turn.message.get("content") or "") + (turn.message.get("refusal") or "")
        if turn.message.get("tool_calls"):
            message["tool_calls"] = [
                {"id": f"call_{n}_{i}_{uuid.uuid4().hex[:8]}", "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for i, c in enumerate(turn.message["tool_calls"])
            ]
            completion_text += "".join(c["name"] + c["arguments"] for c in turn.message["tool_calls"])
        prompt_tokens = count_tokens(_message_text(body.get("messages")) + _message_text(body.get("tools") or ""))
        completion_tokens = count_tokens(completion_text)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_scripted",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": turn.finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible chat-completions server.")
    parser.add_argument("--script", required=True, help="JSON file: a list of entries or {model: [entries]}")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="accepted key ('' accepts any)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name when the script is a list")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    with open(args.script) as f:
        script = json.load(f)
    server = ScriptedOpenAI(script, api_key=args.api_key or None, host=args.host, port=args.port,
                            default_model=args.model, verbose=args.verbose)
    with server:
        print(f"serving {', '.join(server.models)} at {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
