"""The scripted OpenAI-compatible server, driven by the real langchain-openai client over HTTP.

Besides checking the test double, these tests pin down how langchain-openai (1.7.x, on
openai 3.x) reports each provider fault, which the harness's fault classification relies on.
Observed mapping (all classes live in ``langchain_openai.chat_models.base``; each also
inherits the openai SDK error and a ``langchain_core.exceptions`` ModelError subclass):

    429            OpenAIRateLimitError       ModelRateLimitError       is_retryable=True   status_code=429
    500 / 503      OpenAIAPIError             ModelAPIError             is_retryable=True   status_code=500/503
    dropped conn.  OpenAIConnectionError      ModelConnectionError      is_retryable=True   (no status_code)
    read timeout   OpenAITimeoutError         ModelTimeoutError         is_retryable=True   (no status_code)
    401            OpenAIAuthenticationError  ModelAuthenticationError  is_retryable=False  status_code=401
    404 model      OpenAIModelNotFoundError   ModelNotFoundError        is_retryable=False  status_code=404
    context_length_exceeded (OpenAI's real 400 body)
                   OpenAIInvalidRequestError  ModelInvalidRequestError  is_retryable=False  status_code=400,
                   .code == "context_length_exceeded"  -- NOT ContextOverflowError: the openai SDK
                   puts only error.message into str(e), and langchain-openai looks for the code there.
    400 whose message says "prompt is too long" (LiteLLM/Anthropic style)
                   OpenAIContextOverflowError ContextOverflowError  is_retryable=False  status_code=400

Retry budget: the openai SDK under ChatOpenAI retries 429, 5xx and connection errors and
timeouts; with max_retries=2 exactly 3 requests arrive before the error surfaces.  It honours
retry-after-ms / retry-after (up to 120 s), otherwise backs off ~0.5 s then ~1 s (jittered).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("langchain_openai")

import openai  # noqa: E402
from langchain_core.exceptions import (  # noqa: E402
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langchain_openai.chat_models import base as lc_openai  # noqa: E402

from support.scripted_openai import ScriptError, ScriptedOpenAI, count_tokens  # noqa: E402

TOOL_TURN = {"tool_calls": [{"name": "bash", "arguments": {"command": "echo 42 > answer.txt"}}]}
FINAL_TURN = {"content": "Done."}


def bash(command: str) -> str:
    """Run a shell command in the task's sandbox."""
    return "ok"


def chat(server: ScriptedOpenAI, model: str = "scripted", **kw) -> ChatOpenAI:
    kw.setdefault("api_key", "test-key")
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5)
    return ChatOpenAI(model=model, base_url=server.base_url, **kw)


def raises(server: ScriptedOpenAI, model: str = "scripted", **kw) -> Exception:
    with pytest.raises(Exception) as info:
        chat(server, model, **kw).invoke("hi")
    return info.value


# --- normal turns --------------------------------------------------------------------------


def test_tool_call_turn_has_openai_shape_and_parses_into_tool_calls():
    with ScriptedOpenAI([TOOL_TURN, FINAL_TURN]) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        msg = chat(server).bind_tools([bash]).invoke("write 42 into answer.txt")

        assert isinstance(msg, AIMessage)
        assert [(c["name"], c["args"]) for c in msg.tool_calls] == [("bash", {"command": "echo 42 > answer.txt"})]
        assert msg.tool_calls[0]["id"].startswith("call_")
        assert msg.response_metadata["finish_reason"] == "tool_calls"
        usage = msg.usage_metadata
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        # completion tokens come from the characters of the tool call
        assert usage["output_tokens"] == count_tokens("bash" + json.dumps({"command": "echo 42 > answer.txt"}))

        (req,) = server.requests
        assert (req.method, req.path, req.status, req.outcome) == ("POST", "/v1/chat/completions", 200, "turn 0")
        assert req.headers["authorization"] == "Bearer test-key"
        assert req.body["model"] == "scripted" and req.body["stream"] is False  # ChatOpenAI's default
        assert req.body["tools"][0]["function"]["name"] == "bash"


def test_turn_is_chosen_by_the_assistant_messages_in_the_request():
    with ScriptedOpenAI([TOOL_TURN, FINAL_TURN]) as server:
        llm = chat(server).bind_tools([bash])
        first = llm.invoke([HumanMessage("go")])
        history = [HumanMessage("go"), first, ToolMessage("ok", tool_call_id=first.tool_calls[0]["id"])]
        final = llm.invoke(history)
        assert final.content == "Done." and final.tool_calls == []
        assert final.response_metadata["finish_reason"] == "stop"
        # a new conversation starts the script over
        again = llm.invoke([HumanMessage("go")])
        assert again.tool_calls and again.tool_calls[0]["name"] == "bash"
        assert [r.outcome for r in server.requests] == ["turn 0", "turn 1", "turn 0"]
        # the request body carried the assistant tool call back as OpenAI expects
        sent = server.requests[1].body["messages"]
        assert sent[1]["role"] == "assistant" and sent[1]["tool_calls"][0]["function"]["name"] == "bash"
        assert sent[2]["role"] == "tool"


def test_streaming_sse_aggregates_to_the_same_message():
    with ScriptedOpenAI([TOOL_TURN, {"content": "A longer final answer, streamed in pieces."}]) as server:
        llm = chat(server, streaming=True, stream_usage=True).bind_tools([bash])
        chunks = list(llm.stream("go"))
        assert len(chunks) > 3
        msg = chunks[0]
        for c in chunks[1:]:
            msg = msg + c
        assert msg.tool_calls[0]["args"] == {"command": "echo 42 > answer.txt"}
        assert msg.usage_metadata["input_tokens"] > 0 and msg.usage_metadata["output_tokens"] > 0
        assert server.requests[0].body["stream"] is True

        final = llm.invoke([HumanMessage("go"), AIMessage("", tool_calls=msg.tool_calls),
                            ToolMessage("ok", tool_call_id=msg.tool_calls[0]["id"])])
        assert final.content == "A longer final answer, streamed in pieces."


def test_refusal_turn():
    with ScriptedOpenAI([{"refusal": "I can't help with that."}]) as server:
        msg = chat(server).invoke("hi")
        assert msg.additional_kwargs["refusal"] == "I can't help with that."
        assert not msg.content


def test_models_endpoints_and_unknown_model():
    with ScriptedOpenAI({"alpha": [FINAL_TURN], "beta": [FINAL_TURN]}) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)
        assert [m.id for m in client.models.list()] == ["alpha", "beta"]
        assert client.models.retrieve("beta").id == "beta"
        with pytest.raises(openai.NotFoundError) as info:
            client.models.retrieve("gamma")
        assert info.value.status_code == 404 and info.value.code == "model_not_found"

        # observed: langchain_openai.chat_models.base.OpenAIModelNotFoundError (ModelNotFoundError)
        exc = raises(server, "gamma")
        assert type(exc) is lc_openai.OpenAIModelNotFoundError
        assert isinstance(exc, ModelNotFoundError) and isinstance(exc, ModelError)
        assert exc.is_retryable is False and exc.status_code == 404 and exc.code == "model_not_found"
        assert "gamma" in exc.message


# --- faults ---------------------------------------------------------------------------------


def test_429_is_a_retryable_rate_limit_error():
    # observed: langchain_openai.chat_models.base.OpenAIRateLimitError (ModelRateLimitError)
    with ScriptedOpenAI([{"fault": 429}, FINAL_TURN]) as server:
        exc = raises(server)
        assert type(exc) is lc_openai.OpenAIRateLimitError
        assert isinstance(exc, ModelRateLimitError) and isinstance(exc, openai.RateLimitError)
        assert exc.is_retryable is True and exc.status_code == 429 and exc.code == "rate_limit_exceeded"
        assert exc.response.headers["retry-after"] == "1"
        assert exc.body == {"message": exc.body["message"], "type": "requests", "param": None,
                            "code": "rate_limit_exceeded"}
        # the fault is used up: the next request gets the scripted turn
        assert chat(server).invoke("hi").content == "Done."
        assert [(r.status, r.outcome) for r in server.requests] == [(429, "fault 429"), (200, "turn 0")]


def test_chatopenai_retry_budget_against_429():
    # observed: max_retries=2 -> 3 requests; the openai SDK honours retry-after-ms
    with ScriptedOpenAI([{"fault": 429, "times": 2, "retry_after": 0.05}, FINAL_TURN]) as server:
        assert chat(server, max_retries=2).invoke("hi").content == "Done."
        assert [r.status for r in server.requests] == [429, 429, 200]
        assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1", "2"]

    with ScriptedOpenAI([{"fault": 429, "times": "always", "retry_after": 0.05}, FINAL_TURN]) as server:
        exc = raises(server, max_retries=2)
        assert isinstance(exc, ModelRateLimitError)
        assert [r.status for r in server.requests] == [429, 429, 429]


def test_500_is_a_retryable_api_error_and_uses_the_retry_budget():
    # observed: langchain_openai.chat_models.base.OpenAIAPIError (ModelAPIError), also for 503
    with ScriptedOpenAI([{"fault": 500, "times": 3}, {"fault": 503}, FINAL_TURN]) as server:
        exc = raises(server)
        assert type(exc) is lc_openai.OpenAIAPIError
        assert isinstance(exc, ModelAPIError) and isinstance(exc, openai.InternalServerError)
        assert exc.is_retryable is True and exc.status_code == 500 and exc.body["type"] == "server_error"

        # no retry-after: the SDK backs off ~0.5 s then ~1 s; max_retries=2 -> 3 requests
        server.reset()
        start = time.monotonic()
        exc = raises(server, max_retries=2)
        assert isinstance(exc, ModelAPIError) and exc.status_code == 500
        assert [r.status for r in server.requests] == [500, 500, 500]
        assert 0.7 < time.monotonic() - start < 5
        exc = raises(server)  # the next fault: 503 "overloaded"
        assert type(exc) is lc_openai.OpenAIAPIError and exc.status_code == 503 and exc.is_retryable
        assert chat(server).invoke("hi").content == "Done."


def test_dropped_connection_is_a_connection_error():
    # observed: langchain_openai.chat_models.base.OpenAIConnectionError (ModelConnectionError)
    with ScriptedOpenAI([{"fault": "drop"}, FINAL_TURN]) as server:
        exc = raises(server)
        assert type(exc) is lc_openai.OpenAIConnectionError
        assert isinstance(exc, ModelConnectionError) and isinstance(exc, openai.APIConnectionError)
        assert exc.is_retryable is True and not hasattr(exc, "status_code")
        assert [(r.status, r.outcome) for r in server.requests] == [(None, "fault drop")]
        # with a retry budget the SDK reconnects and gets the answer
        assert chat(server, max_retries=1).invoke("hi").content == "Done."


def test_slow_response_times_out_then_answers():
    # observed: langchain_openai.chat_models.base.OpenAITimeoutError (ModelTimeoutError)
    with ScriptedOpenAI([{"fault": "slow", "seconds": 3}, {"fault": "slow", "seconds": 0.3}, FINAL_TURN]) as server:
        start = time.monotonic()
        exc = raises(server, timeout=1)
        assert time.monotonic() - start < 2.5
        assert type(exc) is lc_openai.OpenAITimeoutError
        assert isinstance(exc, ModelTimeoutError) and isinstance(exc, openai.APITimeoutError)
        assert exc.is_retryable is True
        # the second slow fault only delays the answer
        start = time.monotonic()
        assert chat(server, timeout=5).invoke("hi").content == "Done."
        assert time.monotonic() - start >= 0.3
        assert [r.outcome for r in server.requests] == ["fault slow", "fault slow, turn 0"]


def test_wrong_key_and_401_fault_are_authentication_errors():
    # observed: langchain_openai.chat_models.base.OpenAIAuthenticationError (ModelAuthenticationError)
    with ScriptedOpenAI([{"fault": 401}, FINAL_TURN], api_key="sk-right") as server:
        exc = raises(server, api_key="sk-wrong-key-123")
        assert type(exc) is lc_openai.OpenAIAuthenticationError
        assert isinstance(exc, ModelAuthenticationError) and isinstance(exc, openai.AuthenticationError)
        assert exc.is_retryable is False and exc.status_code == 401 and exc.code == "invalid_api_key"
        assert "sk-wrong-key-123" not in exc.message  # the key is masked, as OpenAI does
        assert server.requests[-1].outcome == "auth"

        exc = raises(server, api_key="sk-right")  # the scripted fault
        assert isinstance(exc, ModelAuthenticationError) and exc.code == "invalid_api_key"
        assert chat(server, api_key="sk-right").invoke("hi").content == "Done."

        with pytest.raises(urllib.error.HTTPError) as info:  # no header at all
            urllib.request.urlopen(server.base_url + "/models", timeout=5)
        assert info.value.code == 401
        assert json.load(info.value)["error"]["code"] == "invalid_api_key"


def test_context_overflow():
    # observed: langchain_openai.chat_models.base.OpenAIInvalidRequestError (ModelInvalidRequestError)
    #   for OpenAI's own body (code context_length_exceeded) -- not ContextOverflowError, so the
    #   harness must also look at exc.code; a message saying "prompt is too long" maps to
    #   langchain_openai.chat_models.base.OpenAIContextOverflowError (ContextOverflowError).
    script = [{"fault": "context_overflow"}, {"fault": "context_overflow", "message": "prompt is too long: 200001 tokens > 200000 maximum"}, FINAL_TURN]
    with ScriptedOpenAI(script) as server:
        exc = raises(server)
        assert isinstance(exc, ModelError) and exc.is_retryable is False
        assert exc.status_code == 400 and exc.code == "context_length_exceeded" and exc.param == "messages"
        assert "maximum context length" in exc.message
        assert type(exc) is lc_openai.OpenAIInvalidRequestError and isinstance(exc, ModelInvalidRequestError)

        exc = raises(server)
        assert type(exc) is lc_openai.OpenAIContextOverflowError and isinstance(exc, ContextOverflowError)
        assert exc.status_code == 400 and exc.is_retryable is False


def test_script_exhausted_and_bad_scripts():
    with ScriptedOpenAI([FINAL_TURN]) as server:
        with pytest.raises(ModelInvalidRequestError, match="has 1 turns"):
            chat(server).invoke([HumanMessage("a"), AIMessage("b"), HumanMessage("c")])
        assert server.requests[-1].outcome == "script exhausted"
    for bad in ([{"fault": "teapot"}], [{"fault": 429, "times": 0}], [{"what": 1}], {"m": "not a list"}, {}):
        with pytest.raises(ScriptError):
            ScriptedOpenAI(bad)


# --- agents ---------------------------------------------------------------------------------


def test_create_agent_runs_a_scripted_solve_to_completion():
    from langchain.agents import create_agent

    calls: list[str] = []

    def bash(command: str) -> str:
        """Run a shell command in the task's sandbox."""
        calls.append(command)
        return f"ran {command}"

    commands = ["ls", "echo 42 > answer.txt", "cat answer.txt"]
    with ScriptedOpenAI([{"solve_with": "bash", "commands": commands, "final": "Solved."}]) as server:
        agent = create_agent(chat(server), [bash], system_prompt="Solve the task.")
        result = agent.invoke({"messages": [{"role": "user", "content": "write 42 into answer.txt"}]})

        assert calls == commands
        assert result["messages"][-1].content == "Solved."
        ai = [m for m in result["messages"] if isinstance(m, AIMessage)]
        assert len(ai) == 4 and all(m.usage_metadata["total_tokens"] > 0 for m in ai)
        tool_results = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
        assert tool_results == [f"ran {c}" for c in commands]
        assert [r.outcome for r in server.requests] == ["turn 0", "turn 1", "turn 2", "turn 3"]
        assert server.requests[0].body["messages"][0] == {"content": "Solve the task.", "role": "system"}
        # the prompt grows with the conversation, and so do the prompt tokens
        prompts = [m.usage_metadata["input_tokens"] for m in ai]
        assert prompts == sorted(prompts) and prompts[0] < prompts[-1]


def test_concurrent_conversations_replay_independently_and_share_faults():
    script = [{"fault": 429, "times": 2}, {"solve_with": "bash", "commands": ["a", "b"]}]
    results: list[object] = [None] * 6

    def conversation(i: int, server: ScriptedOpenAI) -> None:
        llm = chat(server).bind_tools([bash])
        history: list = [HumanMessage(f"task {i}")]
        try:
            for _ in range(3):
                msg = llm.invoke(history)
                history.append(msg)
                for call in msg.tool_calls:
                    history.append(ToolMessage(f"ran {call['args']['command']}", tool_call_id=call["id"]))
            results[i] = [m.tool_calls[0]["args"]["command"] if m.tool_calls else m.content
                          for m in history if isinstance(m, AIMessage)]
        except ModelRateLimitError as exc:
            results[i] = exc

    with ScriptedOpenAI(script) as server:
        threads = [threading.Thread(target=conversation, args=(i, server)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        failed = [r for r in results if isinstance(r, ModelRateLimitError)]
        assert len(failed) == 2  # the two 429s went to two conversations, once each
        assert [r for r in results if not isinstance(r, Exception)] == [["a", "b", "Done."]] * 4
        assert sum(r.status == 429 for r in server.requests) == 2
        assert sum(r.status == 200 for r in server.requests) == 12


# --- CLI ------------------------------------------------------------------------------------


def test_cli_serves_a_script_file(tmp_path: Path):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"openai-ish": [FINAL_TURN]}))
    module = Path(__file__).parent / "support" / "scripted_openai.py"
    proc = subprocess.Popen([sys.executable, str(module), "--port", "0", "--script", str(script)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving openai-ish at http://127.0.0.1:")
        base_url = line.split(" at ")[1].strip()
        req = urllib.request.Request(
            base_url + "/chat/completions",
            data=json.dumps({"model": "openai-ish", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={"authorization": "Bearer test-key", "content-type": "application/json"},
        )
        body = json.load(urllib.request.urlopen(req, timeout=5))
        assert body["object"] == "chat.completion" and body["model"] == "openai-ish"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "Done.", "refusal": None}
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
