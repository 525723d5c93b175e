"""Terminal summary at scale: the summary model (``summary.summarize``) and its terminal rendering
(``report.render``) over 30,000 synthetic trial records (and 1,000).

Records have the shape of results.jsonl (docs/design.md §Records) and realistic outcomes:
per-task difficulty, per-model skill, infra (mostly ``oom``) falling from ~6% at
1x to ~0.5% uncapped, a few harness errors, and six trial metrics each (the five
built-in ones and a trajectory match). Three matrices:

- 30,000 records: 100 tasks x 5 models x 6 multipliers x 10 samples (the target);
- 1,000 records: 20 tasks x 5 models x 2 multipliers x 5 samples (100 trials per cell);
- 1,000 records: 20 tasks x 1 model x 5 multipliers x 10 samples (200 trials per
  cell: the largest tables that still get Boschloo's exact test, the slowest
  shape per record).

The records are ``TrialRecord`` objects, as the session holds them (built from
the dicts before timing). Baseline, measured in the same run: serialising the
same records' dicts to JSON lines (``json.dumps`` per record, what the plugin
does to write results.jsonl), so the
figure can be read against a cost the session pays anyway. Each matrix is
rendered ``--repeats`` times, interleaved with the baseline; medians are
reported. Each render runs in a freshly forked child of a process that has
already imported scipy (by rendering a tiny matrix), so it sees what a
session's one render sees: modules loaded, no cache warmed by an earlier render.
The child makes the records' pages its own before the clock starts
(:func:`own_pages`): copy-on-write faults are the fork's cost, not a session's.
Target (issue 22): summary and render of 30,000 records < 0.5 s (issue 7 asked < 1 s).

    python benchmarks/bench_summary.py [--repeats 5] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import statistics
import sys
import time

from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.report import render
from pytest_harnessbench.summary import summarize

TARGET_S = 0.5
MULTIPLIERS = ("1", "1.5", "2", "3", "5", "uncapped")
LABELS = {"1": "1x", "1.5": "1.5x", "2": "2x", "3": "3x", "5": "5x", "uncapped": "uncapped"}
INFRA_AT = {"1x": 0.058, "1.5x": 0.035, "2x": 0.021, "3x": 0.021, "5x": 0.01, "uncapped": 0.005}
MIB = 1024 * 1024


def make_records(tasks: int, models: list[str], multipliers: list[str], samples: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    difficulty = [rng.betavariate(2, 2) for _ in range(tasks)]
    skill = {m: 0.35 + 0.1 * i for i, m in enumerate(models)}
    run_id = "20260101T000000Z-abcdef"
    records = []
    for t in range(tasks):
        task_id = f"tasks/test_suite_{t // 10:02d}.py::test_task_{t:03d}"
        for model in models:
            for mult in multipliers:
                limit_mem = None if mult == "uncapped" else int(512 * MIB * float(mult.removesuffix("x")))
                for k in range(1, samples + 1):
                    case = f"{model}@{mult}#{k}"
                    roll = rng.random()
                    if roll < INFRA_AT[mult]:
                        outcome, cause = "infra", rng.choice(("oom",) * 8 + ("sandbox_start", "sandbox_lost"))
                        message = "the kernel OOM-killed a process in the sandbox" if cause == "oom" else "sandbox gone"
                    elif roll < INFRA_AT[mult] + 0.004:
                        outcome, cause, message = "error", "harness", "NameError: name 'x' is not defined"
                    elif rng.random() < min(0.98, skill[model] * (1.2 - difficulty[t]) + 0.02 * (mult != "1x")):
                        outcome, cause, message = "passed", None, ""
                    else:
                        outcome = "failed"
                        cause = rng.choice(("assertion",) * 6 + ("timeout", "step_limit"))
                        message = "AssertionError: sorted.txt is not data.txt sorted numerically"
                    agent_s = rng.uniform(5, 120)
                    records.append({
                        "run_id": run_id, "trial_id": f"test_task_{t:03d}[{case}]-{t:06x}", "task_id": task_id,
                        "model": model, "multiplier": mult, "sample": k, "outcome": outcome, "cause": cause,
                        "message": message,
                        "allocation": {"guarantee": {"cpus": 1.0, "memory_bytes": 512 * MIB, "pids": None},
                                       "limit": {"cpus": None if limit_mem is None else float(mult.removesuffix("x")),
                                                 "memory_bytes": limit_mem, "pids": 1024},
                                       "timeout_s": 600.0},
                        "enforcement": "cgroup-v2", "backend": "local",
                        "resources": {"peak_memory_bytes": rng.randint(20, 900) * MIB,
                                      "cpu_seconds": rng.uniform(0.1, 60), "oom_kills": int(cause == "oom"),
                                      "oom_source": "memory.events"},
                        "timing": {"queued_s": rng.uniform(0, 3), "provision_s": 0.01, "agent_s": agent_s,
                                   "verify_s": 0.5, "total_s": agent_s + 0.6},
                        "usage": {"model_calls": rng.randint(1, 30), "tool_calls": rng.randint(0, 40),
                                  "input_tokens": rng.randint(1000, 90000), "output_tokens": rng.randint(100, 9000)},
                        "metrics": {"steps": rng.randint(1, 30), "tool_calls": rng.randint(0, 40),
                                    "failed_tool_calls": rng.randint(0, 5), "tokens": rng.randint(1100, 99000),
                                    "wall_s": round(agent_s, 3), "trajectory_match": float(rng.random() < 0.5)},
                        "attempts": 1, "started_at": "2026-01-01T00:00:00.000+00:00",
                        "finished_at": "2026-01-01T00:01:00.000+00:00", "worker": f"gw{rng.randint(0, 7)}", "schema": 1,
                    })
    return records


def in_child(fn, *args):
    """``fn(*args)`` in a forked child (its own copy of every module-level cache); returns its result."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(fn(*args), out)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    if not data:
        sys.exit(f"{fn.__name__} failed in the child process")
    return pickle.loads(data)


def summary_lines(records, models, multipliers) -> list[str]:
    return render(summarize(records, models=models, multipliers=multipliers), run_dir="/tmp/run")


def own_pages(objects) -> None:
    """Make the forked child's copy of ``objects`` its own before the clock starts.

    After fork() the records sit on pages shared with the parent; the first write
    to each (Python writes an object's reference count whenever it touches it)
    copies the page. A render's first pass over 30,000 records took about 19,000
    such faults, 0.14 s here: a cost of this benchmark's fork, which a session,
    whose records were made in its own process, does not pay. Pickling touches
    every object once.
    """
    pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)


def time_render(records, models, multipliers) -> tuple[float, float, list[str]]:
    """(wall seconds, CPU seconds of this process, the lines): on a shared machine the CPU time is the steadier."""
    own_pages(records)
    start, cpu = time.perf_counter(), time.process_time()
    lines = summary_lines(records, models, multipliers)
    return time.perf_counter() - start, time.process_time() - cpu, lines


def time_dumps(records) -> float:
    own_pages(records)
    start = time.perf_counter()
    for record in records:
        json.dumps(record, sort_keys=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="renders per matrix (default 5)")
    parser.add_argument("--show", action="store_true", help="print the rendered 30,000-record summary")
    parser.add_argument("--profile", metavar="N", type=int, nargs="?", const=25, default=0,
                        help="also print the top N functions of one 30,000-record render under cProfile")
    args = parser.parse_args()
    five = [f"model-{c}" for c in "abcde"]
    every = [LABELS[m] for m in MULTIPLIERS]
    matrices = [  # (description, tasks, models, multipliers, samples)
        ("100 tasks x 5 models x 6 mults x 10 samples", 100, five, every, 10),
        ("20 tasks x 5 models x 2 mults x 5 samples", 20, five, ["1x", "uncapped"], 5),
        ("20 tasks x 1 model x 5 mults x 10 samples", 20, five[:1], ["1x", "1.5x", "2x", "3x", "uncapped"], 10),
    ]
    dicts = [make_records(t, m, x, k) for _, t, m, x, k in matrices]
    data = [([TrialRecord.from_dict(r) for r in d], m, x) for d, (_, _, m, x, _) in zip(dicts, matrices)]
    small = [TrialRecord.from_dict(r) for r in make_records(3, five[:2], ["1x", "uncapped"], 2)]
    time_render(small, five[:2], ["1x", "uncapped"])  # imports scipy
    renders: list[list[float]] = [[] for _ in matrices]
    cpus: list[list[float]] = [[] for _ in matrices]
    dumps: list[list[float]] = [[] for _ in matrices]
    lines: list[str] = []
    for _ in range(args.repeats):
        for i, (records, models, mults) in enumerate(data):
            dumps[i].append(in_child(time_dumps, dicts[i]))
            elapsed, cpu, rendered = in_child(time_render, records, models, mults)
            renders[i].append(elapsed)
            cpus[i].append(cpu)
            lines = rendered if i == 0 else lines
    print(f"summarize + report.render of synthetic records, median of {args.repeats}; "
          "baseline: json.dumps of the same records")
    for (label, *_), (records, _, _), r, c, d in zip(matrices, data, renders, cpus, dumps):
        mr, md = statistics.median(r), statistics.median(d)
        print(f"  {len(records):6,} records ({label:44s}): render {mr:6.3f} s (CPU {statistics.median(c):6.3f} s), "
              f"json.dumps {md:6.3f} s, ratio {mr / md:5.1f}")
    big = statistics.median(renders[0])
    print(f"  target: {len(data[0][0]):,} records in < {TARGET_S:g} s: {'met' if big < TARGET_S else 'NOT met'} "
          f"({big:.3f} s, {len(lines)} summary lines)")
    if args.show:
        print("\n".join(lines))
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(summary_lines, *data[0])
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
