"""Merging shards: ``harnessbench merge`` of 100,000 records (4 shards of 25,000), trajectories included.

Each shard is a run directory written through the store as a session writes one:
``harness.json`` with its shard plan, ``results.jsonl`` with records shaped like
real ones (allocation, resources, timing, usage, six metrics), and one small
``trials/TRIAL_ID.json`` per record. The timed part is ``merge.merge`` in this
process: reading the cards and records, the experiment check, duplicates,
missing trials, writing the merged card and results, linking the trajectories,
the rename into place. Rounds are medians (each round merges into a fresh OUT).
Target (issue 23): < 5 s of wall time. The process's CPU time and the load average are printed too: on a
shared machine the wall time mostly measures the other jobs.

    python benchmarks/bench_merge.py [--records 100000] [--shards 4] [--rounds 3] [--no-trajectories]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_harnessbench.merge import merge
from pytest_harnessbench.shard import Shard, assign, plan, trial_key

TARGET = 5.0
MODELS = ("openai:gpt-5.1", "anthropic:claude-opus-4-7", "oracle")
MULTIPLIERS = ("1x", "3x", "uncapped")


def trial_ids(n: int) -> dict[str, tuple[str, str, str]]:
    """``n`` trial ids -> (task id, model, multiplier), as many tasks as it takes at 5 samples per cell."""
    per_task = len(MODELS) * len(MULTIPLIERS) * 5
    out = {}
    for i in range(n):
        task, rest = divmod(i, per_task)
        model, rest = divmod(rest, len(MULTIPLIERS) * 5)
        mult, sample = divmod(rest, 5)
        task_id = f"tasks/test_t{task:05d}.py::test_t{task:05d}"
        out[f"test_t{task:05d}_{MODELS[model]}@{MULTIPLIERS[mult]}#{sample + 1}_-{task:06x}"] = (
            task_id, MODELS[model], MULTIPLIERS[mult])
    return out


def record(run_id: str, trial_id: str, task_id: str, model: str, mult: str, n: int) -> dict:
    return {"run_id": run_id, "trial_id": trial_id, "task_id": task_id, "model": model, "multiplier": mult,
            "multiplier_factor": None if mult == "uncapped" else float(mult[:-1]), "sample": 1 + n % 5,
            "outcome": ("passed", "failed", "infra")[n % 3], "cause": (None, "assertion", "oom")[n % 3],
            "message": "" if n % 3 == 0 else "AssertionError: the output differs from the expected one",
            "allocation": {"guarantee": {"cpus": 1.0, "memory_bytes": 268435456},
                           "limit": {"cpus": 3.0, "memory_bytes": 805306368}, "applied": "cgroup-v1"},
            "enforcement": "cgroup-v1", "backend": "local",
            "resources": {"peak_memory_bytes": 123456789, "cpu_seconds": 12.5, "oom_kills": n % 3 == 2},
            "timing": {"queued_s": 0.1, "provision_s": 0.01, "agent_s": 95.0, "verify_s": 3.0, "total_s": 98.2,
                       "timeout_phase": None},
            "usage": {"model_calls": 12, "tool_calls": 14, "input_tokens": 53000, "output_tokens": 4100},
            "metrics": {"steps": 12, "tool_calls": 14, "failed_tool_calls": 1, "tokens": 57100, "wall_s": 98.2,
                        "cost_usd": 0.12},
            "metrics_missing": {}, "attempts": 1, "started_at": f"2026-12-06T01:{n // 3600 % 60:02d}:{n % 60:02d}Z",
            "finished_at": f"2026-12-06T02:{n // 3600 % 60:02d}:{n % 60:02d}.{n:06d}Z", "worker": "gw0",
            "rewards": None, "schema": 1}


def write_shards(root: Path, n: int, shards: int, trajectories: bool) -> list[Path]:
    collected = trial_ids(n)
    keys = {t: trial_key(task, f"{m}@{x}#{t.split('#')[1].split('_')[0]}") for t, (task, m, x) in collected.items()}
    plans = {keys[t]: value for t, value in collected.items()}
    shares = assign(((keys[t], (m, x)) for t, (_, m, x) in collected.items()), shards)
    card = {"settings": {"models": list(MODELS), "multipliers": list(MULTIPLIERS), "samples": 5, "backend": "local",
                         "scale": ["cpu", "memory"], "enforcement": "cgroup", "oom_as": "infra", "max_steps": 30,
                         "model_params": {}},
            "enforcement": "cgroup-v1", "harness": {"system_prompt_sha256": "p", "toolset_sha256": "t"},
            "provenance": {"host": "bench", "cpu_model": "?", "kernel": "?", "images": {}},
            "started_at": "2026-12-06T01:00:00Z", "finished_at": "2026-12-06T03:00:00Z"}
    dirs = []
    for index in range(1, shards + 1):
        path = root / f"shard-{index}"
        (path / "trials").mkdir(parents=True)
        mine = [t for t in collected if shares[keys[t]] == index]
        run_id = f"run-{index}"
        document = {**card, "run_id": run_id, "shard": plan(Shard(index, shards), plans, [keys[t] for t in mine])}
        (path / "harness.json").write_text(json.dumps(document))
        with open(path / "results.jsonl", "w") as f:
            for n, trial_id in enumerate(mine):
                r = record(run_id, trial_id, *collected[trial_id], n)
                r["sample"] = int(trial_id.split("#")[1].split("_")[0])
                assert trial_key(r["task_id"], f"{r['model']}@{r['multiplier']}#{r['sample']}") == keys[trial_id]
                f.write(json.dumps(r, sort_keys=True) + "\n")
                if trajectories:
                    (path / "trials" / f"{trial_id}.json").write_text(json.dumps({"record": r, "messages": []}))
        dirs.append(path)
    return dirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-trajectories", action="store_true", help="records only, no trials/ files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hb-bench-merge-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        dirs = write_shards(root, args.records, args.shards, not args.no_trajectories)
        print(f"wrote {args.shards} shards, {args.records:,} records"
              f"{'' if args.no_trajectories else ' and trajectories'} in {time.perf_counter() - start:.1f} s")
        times, cpu = [], []
        for r in range(args.rounds):
            out = root / f"merged-{r}"
            start, start_cpu = time.perf_counter(), time.process_time()
            merged = merge(out, dirs)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            if len(merged.trial_ids) != args.records or merged.partial:
                sys.exit(f"merge lost records: {len(merged.trial_ids)} of {args.records}, partial={merged.partial}")
            shutil.rmtree(out)
    median = statistics.median(times)
    print(f"merge of {args.records:,} records from {args.shards} shards: median {median:.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)})  target < {TARGET:g} s: "
          f"{'met' if median < TARGET else 'NOT met'}")
    print(f"  CPU time of this process (user + system; excludes waiting for a busy CPU or the disk): median "
          f"{statistics.median(cpu):.2f} s (runs: {', '.join(f'{t:.2f}' for t in cpu)}); load average now "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
