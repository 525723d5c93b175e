"""Command line: ``python -m pytest_harnessbench COMMAND RUN_DIR`` (also installed as ``harnessbench``).

- ``upload RUN_DIR [--dataset NAME | --project NAME]`` sends a finished (or
  partial) run directory to LangSmith from its local files, e.g. after a
  bake-off whose endpoint was down: as experiments on the suite's dataset (only
  what ``RUN_DIR/langsmith.jsonl`` does not list yet), or with ``--mode
  project`` / ``--project`` as one tracing project. Exit status: 0 every trial
  uploaded, 1 some or all not uploaded, 2 bad usage.
- ``dataset pull langsmith:NAME[@VERSION_OR_TAG] -o FILE.json`` writes a
  LangSmith dataset's examples to a file that ``--hb-dataset FILE.json`` runs
  offline (same task ids as ``--hb-dataset langsmith:NAME``).
- ``report RUN_DIR -o PATH.html`` writes the HTML report of a run directory.
- ``calibrate RUN_DIR`` prints the recommended kill threshold and memory
  headroom, and writes ``calibration.json`` to the run directory.
- ``reference RUN_DIR[::MODEL]`` prints, per task, the tool-call path of the
  model's first passed trial as a ``reference_tools=[...]`` marker argument.
- ``merge OUT RUN_DIR...`` writes one run directory from the shards of one
  bake-off (``--hb-shard``). Exit status: 0 complete, 1 partial (missing shards
  or trials, listed), 2 refused (different experiments, bad usage).
- ``summary RUN_DIR`` prints the session's summary of a run directory (merged
  or not), with its gate if the session was gated.
- ``gate RUN_DIR --baseline MODEL`` runs the CI gate on a run directory and
  exits as a gated session does: 0 pass, 1 fail, 6 inconclusive where it blocks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harnessbench",
                                     description="pytest-harnessbench utilities")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    upload = commands.add_parser(
        "upload", help="send a run directory to LangSmith",
        description="Send a run directory (harness.json, results.jsonl, trials/) to LangSmith: by default as "
                    "experiments (the suite's tasks as a dataset, one experiment per model x multiplier, runs "
                    "linked to their examples, outcome and metric feedback), sending only what RUN_DIR/"
                    "langsmith.jsonl does not list as sent; or as one tracing project (--mode project). Uses "
                    "LANGSMITH_ENDPOINT and LANGSMITH_API_KEY; values of secret-looking environment variables are "
                    "redacted. Re-sending a run is idempotent (same dataset, example, run and feedback ids).")
    upload.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory (--hb-out)")
    upload.add_argument("--mode", choices=("experiments", "project"),
                        help="experiments [default], or project (the default when --project is given)")
    upload.add_argument("--dataset", metavar="NAME",
                        help="dataset of the suite's tasks [default harnessbench-<suite root's name>]")
    upload.add_argument("--project", metavar="NAME", help="LangSmith project name [default harnessbench-<run_id>]")
    upload.add_argument("--timeout", metavar="SECONDS", type=float, default=60.0,
                        help="give up after this many seconds in total [default 60]")
    dataset = commands.add_parser("dataset", help="LangSmith datasets as tasks: pull one to a file",
                                  description="Tasks from a LangSmith dataset (--hb-dataset): 'pull' writes its "
                                              "examples to a file that runs offline.")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", metavar="COMMAND", required=True)
    pull = dataset_commands.add_parser("pull", help="write a dataset's examples to a file for --hb-dataset FILE.json")
    pull.add_argument("source", metavar="langsmith:NAME[@VERSION_OR_TAG]", help="the dataset (and version or tag)")
    pull.add_argument("-o", "--output", metavar="FILE.json", type=Path, required=True, help="the file to write")
    report = commands.add_parser("report", help="write the HTML report of a run directory",
                                 description="One self-contained HTML file (no network needed to open it): plots, "
                                             "calibration, comparisons, the harness card, every trial and trajectory.")
    report.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory (--hb-out)")
    report.add_argument("-o", "--output", metavar="PATH.html", type=Path, required=True, help="the file to write")
    calibrate = commands.add_parser("calibrate", help="recommend the kill threshold from a run's multiplier sweep",
                                    description="Per model, the smallest multiplier whose infra rate is significantly "
                                                "below 1x's while the pass rate excluding infra stays within noise; "
                                                "per task, the memory headroom 95%/99% of trials needed. Writes "
                                                "calibration.json to RUN_DIR.")
    calibrate.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory (--hb-out)")
    calibrate.add_argument("-v", "--verbose", action="store_true", help="also list every task's headroom")
    reference = commands.add_parser(
        "reference", help="print recorded tool-call paths as reference_tools=[...] for task markers",
        description="Per task, the tool calls of MODEL's first passed trial in RUN_DIR, as a reference_tools=[...] "
                    "argument for @pytest.mark.task (trajectory_match scores later runs against it).")
    reference.add_argument("source", metavar="RUN_DIR[::MODEL]",
                           help="the run directory, and the model if it has several")
    merge = commands.add_parser(
        "merge", help="write one run directory from the shards of one bake-off (--hb-shard)",
        description="Merge the run directories of the shards of one bake-off into OUT (replaced if an earlier merge "
                    "wrote it). Refuses shards of different experiments, naming the difference; lists missing "
                    "shards and trials (the merged run is then partial: resume or run them and merge again); a trial "
                    "recorded twice counts as --hb-resume would count it; every shard's provenance is kept. Exit "
                    "status: 0 complete, 1 partial, 2 refused.")
    merge.add_argument("out", metavar="OUT", type=Path, help="the merged run directory to write")
    merge.add_argument("run_dirs", metavar="RUN_DIR", type=Path, nargs="+", help="the shards' run directories")
    summary = commands.add_parser("summary", help="print the session's summary of a run directory",
                                  description="The harnessbench section a session prints at its end (comparisons, "
                                              "metrics, the outcome table, the gate it ran with), from the run "
                                              "directory; for a merged run also its hosts and what is missing.")
    summary.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory (--hb-out, or merged)")
    summary.add_argument("-v", "--verbose", action="store_true", help="every comparison and interval, as pytest -v")
    gate = commands.add_parser(
        "gate", help="run the CI gate on a run directory, with the session's exit status",
        description="Gate every other model of RUN_DIR against the baseline, paired by task, as --hb-gate does; "
                    "writes gate.json. Exit status: 0 pass, 1 fail, 6 inconclusive where it blocks (CI set, or "
                    "--strict), 2 bad usage.")
    gate.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory (--hb-out, or merged)")
    gate.add_argument("--baseline", metavar="MODEL", required=True, help="the baseline model (as --hb-gate)")
    gate.add_argument("--margin", metavar="MARGINS", default=_default("gate_margin"), help="as --hb-gate-margin "
                      f"[default {_default('gate_margin')}]")
    gate.add_argument("--at", metavar="MULTIPLIER", default="", help="as --hb-gate-at [default: every multiplier]")
    gate.add_argument("--alpha", default=_default("gate_alpha"), help=f"as --hb-gate-alpha [default "
                      f"{_default('gate_alpha')}]")
    gate.add_argument("--strict", action="store_true", help="as --hb-gate-strict: an inconclusive verdict exits 6")
    gate.add_argument("--accept-inconclusive", action="store_true",
                      help="as --hb-gate-accept-inconclusive: an inconclusive verdict exits 0 even where CI is set")
    gate.add_argument("--compare", metavar="RUN_DIR", default="", help="as --hb-compare: the baseline's records "
                      "from this earlier run directory")
    return parser


def _default(name: str) -> str:
    from .config import OPTIONS

    return next(opt.default for opt in OPTIONS if opt.name == name)


def _merge(parser: argparse.ArgumentParser, out: Path, run_dirs: list[Path]) -> int:
    from .merge import MergeError, merge

    for run_dir in run_dirs:
        _run_dir(parser, "merge", run_dir)
    try:
        merged = merge(out, run_dirs)
    except MergeError as exc:
        parser.exit(2, f"harnessbench merge: error: {exc}\n")
    print("\n".join(merged.lines()))
    print(f"written: {out}")
    return 1 if merged.partial else 0


def _gate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .downstream import parse_gate_options, run_gate

    run = _run_dir(parser, "gate", args.run_dir, results=True)
    raw = {"gate": args.baseline, "gate_at": args.at, "gate_margin": args.margin, "gate_alpha": args.alpha,
           "gate_strict": str(args.strict).lower(), "gate_accept_inconclusive": str(args.accept_inconclusive).lower(),
           "compare": args.compare}
    try:
        gate = parse_gate_options(run, raw)
    except ConfigError as exc:
        message = str(exc).replace("--hb-gate-", "--").replace("--hb-gate", "--baseline").replace("--hb-", "--")
        parser.exit(2, f"harnessbench gate: error: {message}\n")
    result = run_gate(run, gate)
    from .store import RunStore

    RunStore(run.path).write_json("gate.json", result.document)
    print("\n".join(result.lines))
    merge = (run.card() or {}).get("merge") or {}
    if merge.get("partial"):
        print("PARTIAL RUN: this merged run is missing shards or trials (harness.json: merge.missing); the verdict "
              "covers the trials recorded")
    return result.exit_status


def _reference(parser: argparse.ArgumentParser, source: str) -> int:
    from .metrics import recorded_reference
    from .outcomes import PASSED

    run_dir, _, model = source.partition("::")
    run = _run_dir(parser, "reference", Path(run_dir), results=True)
    try:
        model = run.model(model, f"{run_dir}::MODEL")
    except ValueError as exc:
        parser.exit(2, f"harnessbench reference: error: {exc}\n")
    passed = {}
    for record in run.latest():
        if record.model == model and record.outcome == PASSED:
            passed.setdefault(record.task_id, record)
    if not passed:
        parser.exit(1, f"harnessbench reference: {model} passed no trial in {run_dir}: no path to recommend\n")
    for task_id, record in passed.items():
        print(f"# {task_id} ({model}, {record.trial_id})")
        print(f"reference_tools={recorded_reference(run.trajectory(record))!r}")
    return 0


def _run_dir(parser: argparse.ArgumentParser, command: str, run_dir: Path, *, results: bool = False):
    """The RunDir, or exit 2 naming what is wrong."""
    from .store import RESULTS, TRIALS, RunDir

    run = RunDir(run_dir)
    if not run_dir.is_dir():
        parser.exit(2, f"harnessbench {command}: error: {run_dir}: no such directory\n")
    if not (run.has_results if results else run.is_run_dir()):
        parser.exit(2, f"harnessbench {command}: error: {run_dir} is not a run directory (no {RESULTS}"
                       f"{'' if results else f', no {TRIALS}/'}); pass the directory given to --hb-out\n")
    return run


def _models(run) -> list[str]:
    return ((run.card() or {}).get("settings") or {}).get("models") or []


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "upload":
        _run_dir(parser, "upload", args.run_dir)
        if args.timeout <= 0:
            parser.exit(2, f"harnessbench upload: error: --timeout {args.timeout:g}: must be > 0\n")
        mode = args.mode or ("project" if args.project else "experiments")
        if mode == "experiments" and args.project:
            parser.exit(2, "harnessbench upload: error: --project names a tracing project: use it with --mode project\n")
        if mode == "project":
            from .export.langsmith import export_run

            result = export_run(args.run_dir, project=args.project, timeout_s=args.timeout)
        else:
            from .export.experiments import upload_experiments

            result = upload_experiments(args.run_dir, dataset=args.dataset, timeout_s=args.timeout)
        print(result.summary())
        return 0 if result.ok else 1
    if args.command == "dataset":
        from .datasets import DatasetError, Source, pull, write

        try:
            source = Source.parse(args.source)
            if source.name is None:
                raise DatasetError(f"{args.source!r}: name a LangSmith dataset, e.g. langsmith:my-cases@prod")
            if args.output.suffix != ".json":
                raise DatasetError(f"-o {args.output}: name a .json file")
            document = pull(source.name, source.version)
        except DatasetError as exc:
            parser.exit(2, f"harnessbench dataset pull: error: {exc}\n")
        path = write(document, args.output)
        print(f"{len(document['examples'])} example(s) from {args.source} written to {path}; run them with --hb-dataset {path}")
        return 0
    if args.command == "report":
        from .html_report import write

        run = _run_dir(parser, "report", args.run_dir, results=True)
        if args.output.suffix.lower() not in (".html", ".htm"):
            parser.exit(2, f"harnessbench report: error: -o {args.output}: name an .html file\n")
        settings = (run.card() or {}).get("settings") or {}
        path = write(run, args.output, models=_models(run), multipliers=settings.get("multipliers") or [])
        print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    if args.command == "calibrate":
        from .calibrate import calibrate, lines
        from .store import RunStore

        run = _run_dir(parser, "calibrate", args.run_dir, results=True)
        document = calibrate(run.latest(), _models(run))
        RunStore(run.path).write_json("calibration.json", document)
        print("\n".join(lines(document, args.verbose)))
        print(f"written: {run.path / 'calibration.json'}")
        return 0
    if args.command == "reference":
        return _reference(parser, args.source)
    if args.command == "merge":
        return _merge(parser, args.out, args.run_dirs)
    if args.command == "summary":
        import shutil

        from .downstream import summary_lines

        run = _run_dir(parser, "summary", args.run_dir, results=True)
        print("\n".join(summary_lines(run, verbose=args.verbose, width=shutil.get_terminal_size().columns)))
        return 0
    if args.command == "gate":
        return _gate(parser, args)
    raise AssertionError(args.command)  # argparse accepts only the commands above


if __name__ == "__main__":
    sys.exit(main())
