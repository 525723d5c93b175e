"""Peak memory of each example-suite task per reference solution, measured by the plugin itself.

Runs the example suite uncapped (so nothing is killed and the peak is the
solution's own need) with the local backend, then reads each trial's
``resources.peak_memory_bytes`` (the kernel's high-water mark of the trial's
cgroup) from results.jsonl. Prints median and range per task × variant, the
spec, and peak/spec: above 1 means the variant is killed at 1x.

    python benchmarks/example_peaks.py [--samples 5] [--backend local]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--backend", default="local")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(ROOT / "example_suite"),
                        "--models", "oracle:lean,oracle:heavy", "--multipliers", "uncapped",
                        "--samples", str(args.samples), "--hb-backend", args.backend, "--hb-progress", "0",
                        "--hb-out", str(run_dir)], cwd=ROOT, stdout=subprocess.DEVNULL, check=False)
        records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        cells.setdefault((r["task_id"].rsplit("::", 1)[-1], r["model"].split(":")[1]), []).append(r)
    print(f"backend {args.backend}, {args.samples} samples per cell, uncapped; peak = cgroup high-water mark")
    print(f"{'task':28} {'variant':7} {'spec':>7} {'median peak':>12} {'range':>17} {'peak/spec':>9} {'passed':>7} {'agent s':>8}")
    for (task, variant), rs in sorted(cells.items()):
        peaks = [r["resources"]["peak_memory_bytes"] / MIB for r in rs if r["resources"].get("peak_memory_bytes")]
        spec = rs[0]["allocation"]["guarantee"]["memory_bytes"] / MIB
        median = statistics.median(peaks)
        passed = sum(r["outcome"] == "passed" for r in rs)
        agent = statistics.median(r["timing"]["agent_s"] for r in rs)
        print(f"{task:28} {variant:7} {spec:6.0f}Mi {median:10.1f}Mi {min(peaks):7.1f}–{max(peaks):6.1f}Mi "
              f"{median / spec:9.2f} {passed:>4}/{len(rs):<2} {agent:8.2f}")


if __name__ == "__main__":
    main()
