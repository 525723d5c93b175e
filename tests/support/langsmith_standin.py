"""A stand-in LangSmith API on 127.0.0.1: a test double of the endpoints the ``langsmith`` SDK calls
for datasets, examples, experiments (projects), runs and feedback.

Not what we measure: LangSmith itself cannot run here. It keeps what it is sent the way LangSmith keys
it (datasets by name, examples, projects and runs by id, feedback by id), so a test can ask what exists
and whether a second upload created anything new, and it records every request (method, path, bytes)
for the request counts of the upload benchmark. Dataset versions: ``tag(dataset, tag)`` remembers the
examples as they are now; ``GET /examples?as_of=TAG`` answers with those.
"""

from __future__ import annotations

import email.parser
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, object]]:
    message = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    return [(part.get_param("name", header="content-disposition"), json.loads(part.get_payload(decode=True)))
            for part in message.get_payload()]


class LangSmithStandIn:
    """Start with ``LangSmithStandIn()``; ``url`` is the LANGSMITH_ENDPOINT; ``close()`` stops it."""

    def __init__(self, port: int = 0, *, multipart: bool = True, compressed: bool = True, keep_bodies: bool = True,
                 stall: str | None = None):
        self.multipart = multipart
        self.stall = stall  # requests to this path are taken and never answered (a stalled server)
        self.lazy = False  # True: multipart bodies are kept and parsed when counted (a benchmark's recorder)
        self.pending: list[tuple[str, bytes]] = []
        self.compressed = compressed  # zstd-compressed multipart, as LangSmith announces in GET /info
        self.keep_bodies = keep_bodies
        self.requests: list[tuple[str, str, int]] = []  # method, path (with query), body bytes
        self.bodies: list[bytes] = []
        self.datasets: dict[str, dict] = {}  # id -> dataset
        self.examples: dict[str, dict] = {}  # id -> example
        self.tags: dict[tuple[str, str], list[dict]] = {}  # (dataset id, tag) -> examples then
        self.sessions: dict[str, dict] = {}  # id -> project
        self.runs: dict[str, dict] = {}  # id -> run (multipart parts merged)
        self.feedback: dict[str, dict] = {}  # id -> feedback
        self.lock = threading.RLock()  # counts() runs inside a request too (/_standin/counts)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if standin.stall and self.path.startswith(standin.stall):
                    time.sleep(60)
                    return
                with standin.lock:
                    standin.requests.append((method, self.path, len(body)))
                    code, answer = standin.answer(method, self.path, self.headers, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_PATCH(self):
                self.handle_any("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.stall:  # its handler threads are asleep (daemon threads): no shutdown()
            self.server.server_close()
            return
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ set-up by a test

    def add_dataset(self, name: str, examples: list[dict]) -> str:
        """A dataset with examples (``inputs``, ``outputs``, ``metadata``), as a team would have made it."""
        dataset_id = str(uuid.uuid4())
        with self.lock:
            self.datasets[dataset_id] = {"id": dataset_id, "name": name, "created_at": _now(), "data_type": "kv",
                                         "description": None}
            for example in examples:
                example_id = str(example.get("id") or uuid.uuid4())
                self.examples[example_id] = {"id": example_id, "dataset_id": dataset_id, "created_at": _now(),
                                             "modified_at": _now(), "inputs": example.get("inputs") or {},
                                             "outputs": example.get("outputs"),
                                             "metadata": example.get("metadata") or {}}
        return dataset_id

    def tag(self, dataset_name: str, tag: str) -> None:
        """Tag the dataset's current version (``list_examples(as_of=tag)`` answers with these examples)."""
        with self.lock:
            dataset_id = next(d["id"] for d in self.datasets.values() if d["name"] == dataset_name)
            self.tags[(dataset_id, tag)] = [dict(e) for e in self.examples.values() if e["dataset_id"] == dataset_id]

    # ------------------------------------------------------------ what exists

    def examples_of(self, dataset_name: str) -> list[dict]:
        ids = {d["id"] for d in self.datasets.values() if d["name"] == dataset_name}
        return [e for e in self.examples.values() if e["dataset_id"] in ids]

    def counts(self) -> dict[str, int]:
        with self.lock:
            pending, self.pending = self.pending, []
            for content_type, body in pending:
                self._ingest(content_type, body)
        return {"datasets": len(self.datasets), "examples": len(self.examples), "sessions": len(self.sessions),
                "runs": len(self.runs), "feedback": len(self.feedback)}

    def roots(self) -> list[dict]:
        return [r for r in self.runs.values() if not r.get("parent_run_id")]

    # ------------------------------------------------------------ the API

    def answer(self, method: str, raw_path: str, headers, body: bytes) -> tuple[int, object]:
        if headers.get("Content-Encoding") == "zstd":
            import zstandard

            body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
        if self.keep_bodies:
            self.bodies.append(body)
        url = urlsplit(raw_path)
        path, query = url.path.rstrip("/"), {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "GET" and path == "/_standin/counts":  # for a benchmark running it in another process
            return 200, {**self.counts(), "requests": len(self.requests) - 1}
        if method == "GET" and path == "/info":
            return 200, {"version": "0.11.0", "instance_flags": {"zstd_compression_enabled": self.compressed},
                         "batch_ingest_config": {"use_multipart_endpoint": self.multipart, "size_limit": 100,
                                                 "size_limit_bytes": 20_000_000, "scale_up_qsize_trigger": 1000,
                                                 "scale_up_nthreads_limit": 16, "scale_down_nempty_trigger": 4}}
        if path == "/datasets" and method == "GET":
            found = [d for d in self.datasets.values() if d["name"] == query.get("name")] if "name" in query \
                else list(self.datasets.values())
            return 200, found
        if path.startswith("/datasets/") and method == "GET" and path.count("/") == 2:
            dataset = self.datasets.get(path.split("/")[2])
            return (200, dataset) if dataset else (404, {"detail": "dataset not found"})
        if path == "/datasets" and method == "POST":
            data = json.loads(body)
            if any(d["name"] == data["name"] for d in self.datasets.values()):
                return 409, {"detail": "dataset exists"}
            dataset = {"id": str(uuid.uuid4()), "name": data["name"], "created_at": _now(),
                       "description": data.get("description"), "data_type": data.get("data_type", "kv"),
                       "metadata": (data.get("extra") or {}).get("metadata")}
            self.datasets[dataset["id"]] = dataset
            return 200, dataset
        if path == "/examples" and method == "GET":
            dataset_id = query.get("dataset")
            if "as_of" in query and (dataset_id, query["as_of"]) in self.tags:
                found = self.tags[(dataset_id, query["as_of"])]
            elif "as_of" in query and query["as_of"] != "latest":
                return 404, {"detail": f"no version {query['as_of']}"}
            else:
                found = [e for e in self.examples.values() if e["dataset_id"] == dataset_id]
            offset, limit = int(query.get("offset", 0)), int(query.get("limit", 100))
            return 200, found[offset:offset + limit]
        if path == "/examples/bulk" and method == "POST":
            created = []
            for data in json.loads(body):
                example = {"id": data["id"], "dataset_id": data["dataset_id"], "inputs": data.get("inputs"),
                           "outputs": data.get("outputs"), "metadata": data.get("metadata"), "created_at": _now(),
                           "modified_at": _now()}
                if data["id"] in self.examples:
                    return 409, {"detail": f"example {data['id']} exists"}
                self.examples[data["id"]] = example
                created.append(example)
            return 200, created
        if path == "/sessions" and method == "POST":
            data = json.loads(body)
            existing = next((s for s in self.sessions.values() if s["name"] == data["name"]), None)
            if existing is not None:
                return (200, existing) if query.get("upsert") in ("true", "True") else (409, {"detail": "exists"})
            session = {"id": data["id"], "name": data["name"], "extra": data.get("extra"),
                       "description": data.get("description"), "tenant_id": str(uuid.uuid4()),
                       "start_time": _now(), "reference_dataset_id": data.get("reference_dataset_id"),
                       "num_repetitions": data.get("num_repetitions")}
            self.sessions[session["id"]] = session
            return 200, session
        if path == "/runs/multipart" and method == "POST":
            if not self.multipart:
                return 404, {"detail": "Not Found"}
            if self.lazy:
                self.pending.append((headers["Content-Type"], body))
            else:
                self._ingest(headers["Content-Type"], body)
            return 202, {}
        if path == "/runs/batch" and method == "POST":
            for run in json.loads(body).get("post", []):
                self.runs.setdefault(run["id"], run)
            return 202, {}
        if path == "/feedback" and method == "POST":
            data = json.loads(body)
            if data["id"] in self.feedback:
                return 409, {"detail": "feedback exists"}
            self.feedback[data["id"]] = data
            return 200, data
        if method == "PATCH" and path.startswith("/sessions/"):
            return 200, {}
        return 404, {"detail": f"no route {method} {path}"}

    def _ingest(self, content_type: str, body: bytes) -> None:
        """The runs and feedback of one multipart request, kept by id (the first of each id wins)."""
        for name, value in multipart_parts(content_type, body):
            kind, item_id, *field = name.split(".")
            if kind == "feedback":
                self.feedback.setdefault(item_id, value)
                continue
            run = self.runs.setdefault(item_id, {})
            if field:
                run.setdefault(field[0], value)
            else:
                for key, item in value.items():
                    run.setdefault(key, item)


if __name__ == "__main__":  # python tests/langsmith_standin.py: serve until killed, print the URL
    import sys

    standin = LangSmithStandIn(keep_bodies=False)
    standin.lazy = True  # answer at once, parse when counted: the benchmark measures the uploader
    print(standin.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    standin.close()
