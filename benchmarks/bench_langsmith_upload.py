"""LangSmith upload at scale: 5,000 trials to a local recorder (issue 30, item 4).

A synthetic run directory in the plugin's own format (results.jsonl, trials/*.json,
harness.json): 50 tasks x 4 models x 5 multipliers x 5 samples, each trial's
trajectory three model calls and two tool calls (1 KB of tool output each), six
metrics. The recorder is the stand-in LangSmith API of the tests
(tests/support/langsmith_standin.py) in a process of its own on 127.0.0.1, counting
requests; the real ``langsmith`` SDK serialises and sends.

Three measurements:

- experiments, all at the end: ``harnessbench upload`` of the whole directory
  (the worst case of the end-of-run step: nothing was streamed);
- experiments, streamed: every trial handed to the session's Streamer as it
  "finishes", ``--rate`` trials a second (default 50: a real 5,000-trial run of
  minute-long trials on 8 slots finishes about 0.13 a second), then the
  end-of-run step; its time is what the session waits for at its end;
- baseline, the project upload (one trace per trial, a POST /feedback per
  outcome key and metric) on the first 500 trials: requests per trial.

Targets: at most 2 requests per trial on average; the end-of-run step of a
5,000-trial run under 10 s.

    python benchmarks/bench_langsmith_upload.py [--trials 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

STANDIN = Path(__file__).resolve().parent.parent / "tests" / "support" / "langsmith_standin.py"


class Recorder:
    """The stand-in in a process of its own (it parses every multipart body: not the uploader's cost)."""

    def __init__(self):
        import subprocess

        self.process = subprocess.Popen([sys.executable, str(STANDIN)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        self.url = self.process.stdout.readline().strip()

    def counts(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/_standin/counts") as answer:
            return json.loads(answer.read())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)

MODELS = ("openai:gpt-a", "openai:gpt-b", "anthropic:claude-c", "anthropic:claude-d")
MULTIPLIERS = (("1x", 1.0), ("1.5x", 1.5), ("2x", 2.0), ("3x", 3.0), ("uncapped", None))


def make_run(path: Path, trials: int) -> None:
    rng = random.Random(7)
    (path / "trials").mkdir(parents=True)
    card = {"run_id": "bench", "suite": {"name": "bench-suite"},
            "settings": {"models": list(MODELS), "multipliers": [m for m, _ in MULTIPLIERS], "samples": 5,
                         "scale": ["cpu", "memory", "pids", "time"]}, "harness": {"max_steps": 30}}
    (path / "harness.json").write_text(json.dumps(card))
    with open(path / "results.jsonl", "w") as results:
        n = 0
        for task in range(50):
            for model in MODELS:
                for label, factor in MULTIPLIERS:
                    for sample in range(1, 6):
                        if n >= trials:
                            return
                        n += 1
                        trial_id = f"t{n}"
                        outcome = rng.choice(["passed", "passed", "failed", "infra"])
                        record = {
                            "run_id": "bench", "trial_id": trial_id, "task_id": f"tasks/test_t.py::test_{task}",
                            "model": model, "multiplier": label, "multiplier_factor": factor, "sample": sample,
                            "outcome": outcome, "cause": {"infra": "oom", "failed": "assertion"}.get(outcome),
                            "message": "", "allocation": {"guarantee": {"cpus": 1, "memory_bytes": 2 ** 28}},
                            "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:00+00:00",
                            "timing": {"provision_s": 1.0, "total_s": 60.0},
                            "usage": {"model_calls": 3, "tool_calls": 2},
                            "metrics": {"steps": 3, "tool_calls": 2, "failed_tool_calls": 0, "tokens": 900,
                                        "wall_s": 58.0, "trajectory_match": 0.5}}
                        messages = [{"type": "human", "data": {"content": f"Do task {task}."}}]
                        calls = []
                        for i in range(2):
                            args = {"command": f"step {i}"}
                            messages.append({"type": "ai", "data": {"content": "", "tool_calls": [
                                {"id": f"c{i}", "name": "bash", "args": args, "type": "tool_call"}]}})
                            out = "x" * 1024
                            messages.append({"type": "tool", "data": {"content": out, "tool_call_id": f"c{i}",
                                                                      "name": "bash"}})
                            calls.append({"name": "bash", "args": args, "output": out, "duration_s": 1.0,
                                          "exit_code": 0, "timed_out": False})
                        messages.append({"type": "ai", "data": {"content": "done"}})
                        results.write(json.dumps(record) + "\n")
                        trajectory = {"model": model, "instruction": f"Do task {task}.", "messages": messages,
                                      "tool_calls": calls, "usage": record["usage"], "stop_reason": "completed",
                                      "duration_s": 50.0}
                        (path / "trials" / f"{trial_id}.json").write_text(
                            json.dumps({"record": record, "trajectories": [trajectory]}))


def experiments_at_end(run: Path) -> dict:
    from pytest_harnessbench.export.experiments import upload_experiments

    server = Recorder()
    os.environ["LANGSMITH_ENDPOINT"] = server.url
    try:
        start = time.monotonic()
        result = upload_experiments(run, timeout_s=600)
        seconds = time.monotonic() - start
        counts = server.counts()
        return {"uploaded": result.uploaded, "total": result.total, "error": result.error,
                "requests": counts["requests"], "seconds": seconds, "runs": counts["runs"],
                "feedback": counts["feedback"]}
    finally:
        server.close()


def experiments_streamed(run: Path, rate: float) -> dict:
    from pytest_harnessbench.export.experiments import Streamer, upload_experiments
    from pytest_harnessbench.store import RunDir

    server = Recorder()
    os.environ["LANGSMITH_ENDPOINT"] = server.url
    try:
        records = RunDir(run).records()  # TrialRecords, as the plugin hands them to the streamer
        streamer = Streamer(run)
        start = time.monotonic()
        for i, record in enumerate(records):
            streamer.add(record)
            time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
        fed = time.monotonic() - start
        end = time.monotonic()
        result = upload_experiments(run, streamer=streamer, timeout_s=600)
        end_s = time.monotonic() - end
        return {"uploaded": result.uploaded, "total": result.total, "error": result.error,
                "requests": server.counts()["requests"], "feed_s": fed, "end_s": end_s}
    finally:
        server.close()


def project_baseline(run: Path, trials: int) -> dict:
    from pytest_harnessbench.export.langsmith import export_run

    small = run.parent / "baseline"
    shutil.copytree(run, small)
    lines = (small / "results.jsonl").read_text().splitlines()[:trials]
    (small / "results.jsonl").write_text("\n".join(lines) + "\n")
    keep = {json.loads(line)["trial_id"] for line in lines}
    for path in (small / "trials").iterdir():
        if path.stem not in keep:
            path.unlink()
    server = Recorder()
    os.environ["LANGSMITH_ENDPOINT"] = server.url
    try:
        start = time.monotonic()
        result = export_run(small, timeout_s=600)
        return {"uploaded": result.uploaded, "requests": server.counts()["requests"],
                "seconds": time.monotonic() - start}
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--baseline-trials", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="trials finishing per second when streamed")
    args = parser.parse_args()
    os.environ.setdefault("LANGSMITH_API_KEY", "bench-key")
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        make_run(run, args.trials)
        n = args.trials
        at_end = experiments_at_end(run)
        (run / "langsmith.jsonl").unlink()
        streamed = experiments_streamed(run, args.rate)
        base = project_baseline(run, min(args.baseline_trials, n))
    print(f"trials: {n} (3 model calls, 2 tool calls, 6 metrics each: 6 runs and 9 feedback per trial)")
    print(f"experiments, all at the end:  {at_end['uploaded']}/{at_end['total']} uploaded, "
          f"{at_end['requests']} requests = {at_end['requests'] / n:.3f} per trial, {at_end['seconds']:.1f} s"
          + (f" ({at_end['error']})" if at_end["error"] else ""))
    print(f"experiments, streamed:        {streamed['uploaded']}/{streamed['total']} uploaded, "
          f"{streamed['requests']} requests = {streamed['requests'] / n:.3f} per trial; trials fed over "
          f"{streamed['feed_s']:.1f} s, end-of-run step {streamed['end_s']:.2f} s"
          + (f" ({streamed['error']})" if streamed["error"] else ""))
    print(f"baseline, project upload:     {base['uploaded']} trials, {base['requests']} requests = "
          f"{base['requests'] / max(1, base['uploaded']):.2f} per trial, {base['seconds']:.1f} s")
    worst_end = max(at_end["seconds"], streamed["end_s"])
    ok = at_end["requests"] / n <= 2 and streamed["requests"] / n <= 2 and streamed["end_s"] < 10
    print(f"targets: <= 2 requests per trial: {'met' if ok else 'NOT met'}; end-of-run step < 10 s: "
          f"streamed {streamed['end_s']:.2f} s, nothing streamed {at_end['seconds']:.1f} s "
          f"({'met' if worst_end < 10 else 'met when streamed only' if streamed['end_s'] < 10 else 'NOT met'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
