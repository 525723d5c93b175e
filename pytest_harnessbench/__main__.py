"""Command line: ``python -m pytest_harnessbench upload RUN_DIR [--project NAME]``.

Sends a finished (or partial) run directory to LangSmith from its local files,
e.g. after a bake-off whose endpoint was down. Exit status: 0 every trial
uploaded, 1 some or all not uploaded, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_harnessbench",
                                     description="pytest-harnessbench utilities")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    upload = commands.add_parser(
        "upload", help="send a run directory to LangSmith",
        description="Send a run directory (harness.json, results.jsonl, trials/) to LangSmith: one project, "
                    "one trace per trial, outcome feedback. Uses LANGSMITH_ENDPOINT and LANGSMITH_API_KEY; "
                    "values of secret-looking environment variables are redacted. Re-sending a run is "
                    "idempotent (same run and feedback ids).")
    upload.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory (--hb-out)")
    upload.add_argument("--project", metavar="NAME", help="LangSmith project name [default harnessbench-<run_id>]")
    upload.add_argument("--timeout", metavar="SECONDS", type=float, default=60.0,
                        help="give up after this many seconds in total [default 60]")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "upload":
        from .store import RESULTS, TRIALS, RunDir

        run_dir: Path = args.run_dir
        if not run_dir.is_dir():
            parser.exit(2, f"harnessbench upload: error: {run_dir}: no such directory\n")
        if not RunDir(run_dir).is_run_dir():
            parser.exit(2, f"harnessbench upload: error: {run_dir} is not a run directory "
                           f"(no {RESULTS}, no {TRIALS}/); pass the directory given to --hb-out\n")
        if args.timeout <= 0:
            parser.exit(2, f"harnessbench upload: error: --timeout {args.timeout:g}: must be > 0\n")
        from .export.langsmith import export_run

        result = export_run(run_dir, project=args.project, timeout_s=args.timeout)
        print(result.summary())
        return 0 if result.ok else 1
    raise AssertionError(args.command)  # argparse accepts only the commands above


if __name__ == "__main__":
    sys.exit(main())
