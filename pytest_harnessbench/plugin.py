"""pytest hooks and fixtures: glue between pytest and the bake-off session.

Logic lives in the modules below; this file only connects them to pytest.
"""

from __future__ import annotations

import pytest

from . import compat
from .config import OPTIONS, ConfigError, Option, declared_options
from .outcomes import ERROR, FAILED, INFRA, PASSED
from .records import USER_PROPERTY, TrialRecord
from .usage import UsageProblems, relayed

BENCH = pytest.StashKey["Bench"]()
TRIAL = pytest.StashKey["Trial"]()
KEY = pytest.StashKey["TrialKey"]()
TERMINATION = pytest.StashKey["Termination"]()
USAGE = pytest.StashKey[UsageProblems]()
CASE_FIXTURE = "hb_case"
WORKER_INPUT = "harnessbench"  # run id, run directory and resume state, from the xdist controller
WORKER_SHARD = "harnessbench_shard"  # a worker's shard plan (shard.plan), to the controller at its end
WORKER_IMAGES = "harnessbench_images"  # the images of the tasks a worker collected, to the controller at its end


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The common options, then every registered backend's own (sandbox/registry.py)."""
    group = parser.getgroup("harnessbench", "agent bake-offs (pytest-harnessbench)")
    try:
        options = declared_options()
    except ConfigError as exc:  # a third-party backend that does not load: say which, as a usage error
        raise pytest.UsageError(str(exc)) from None
    for opt in options:
        help_text = f"{opt.help} [ini {opt.ini}; default {opt.default or 'none'}]"
        if opt.flag_only:
            group.addoption(opt.flag, dest=f"hb_{opt.name}", action="store_const", const="true", default=None,
                            help=help_text)
        elif opt.repeated:
            group.addoption(opt.flag, dest=f"hb_{opt.name}", action="append", default=None, metavar="VALUE",
                            help=help_text)
        else:
            group.addoption(opt.flag, dest=f"hb_{opt.name}", default=None, metavar=opt.name.upper(), help=help_text)
        parser.addini(opt.ini, help=opt.help, type="linelist" if opt.repeated else None,
                      default=[] if opt.repeated else opt.default)


def _raw_value(config: pytest.Config, opt: Option) -> str:
    cli = config.getoption(f"hb_{opt.name}")
    value = cli if cli is not None else config.getini(opt.ini)
    return "\n".join(value) if opt.repeated else str(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "task(cpus=1, memory='512Mi', timeout=120, verify_timeout=timeout, pids=1024, image=None, "
        "network=False, solutions=None, "
        "reference_tools=None, match_mode='strict', gate_on=None, reference_answer=None): "
        "a harnessbench task, run for every model × multiplier × sample (use the `trial` fixture)")
    if config.option.help or config.option.version:
        return  # nothing to run: no session, no preflight
    from .config import build
    from .session import open_bench

    try:
        settings = build(lambda opt: _raw_value(config, opt))
        workerinput = getattr(config, "workerinput", {})
        bench = open_bench(settings, config.rootpath, ini_dir=config.inipath and config.inipath.parent,
                           handed=workerinput.get(WORKER_INPUT), worker=workerinput.get("workerid"),
                           concurrency=getattr(config.option, "numprocesses", None) or 1,
                           args=list(config.invocation_params.args), cwd=config.invocation_params.dir,
                           preflight=not config.option.collectonly)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[BENCH] = bench
    config.stash[USAGE] = UsageProblems(on_worker=not bench.records_results)
    if settings.datasets:
        _register_datasets(config, settings)
    _handle_termination(config)
    if settings.reap and bench.records_results:
        _reap_and_exit(bench)
    if bench.records_results and getattr(config.option, "numprocesses", None) and _bake_off_configured(config):
        try:  # under xdist only workers collect, and they cannot relay a usage error: check here (the run
            bench.check_backend(own=False)  # directory is owned once collection is done: _XdistHooks)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    if bench.records_results:
        recorder = _RecorderHooks(bench, config)
        config.pluginmanager.register(recorder, "harnessbench-recorder")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(bench, recorder), "harnessbench-xdist")


def _register_datasets(config: pytest.Config, settings) -> None:
    """Tasks from LangSmith datasets (datasets.py): read now, before any trial; unreadable is a usage error."""
    from .dataset_items import DatasetCollector
    from .datasets import load

    try:
        loaded = load(settings.datasets, settings.dataset_criterion, has_judge=settings.judge is not None)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.pluginmanager.register(DatasetCollector(loaded), "harnessbench-datasets")


def _handle_termination(config: pytest.Config) -> None:
    """SIGTERM ends the session as Ctrl-C does; an xdist worker dies with its controller (lifetime.py)."""
    from .lifetime import Termination, die_with_parent

    handed = getattr(config, "workerinput", {}).get(WORKER_INPUT)
    if handed is not None:  # SIGTERM kills a worker outright: its sandbox watchdog removes its sandboxes
        die_with_parent(handed["controller_pid"])
        return
    termination = Termination(has_workers=lambda: config.pluginmanager.get_plugin("dsession") is not None)
    termination.install()
    config.stash[TERMINATION] = termination


def _bake_off_configured(config: pytest.Config) -> bool:
    """The user asked for a bake-off (models, multipliers or backend set), not just ran tests with -n."""
    chosen = {"models", "multipliers", "backend"}
    return any(_raw_value(config, opt) != opt.default for opt in OPTIONS if opt.name in chosen)


def _reap_and_exit(bench) -> None:
    try:
        removed = bench.reap()
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    pytest.exit(f"harnessbench: {bench.config.backend} backend: removed {removed} sandbox(es) "
                "left by sessions that died", returncode=0)


class _RecorderHooks:
    """In the process that sees every report: store records, print the summary."""

    def __init__(self, bench, config: pytest.Config):
        from .progress import Progress

        self.bench = bench
        self.config = config
        self.progress = Progress(bench.config.progress_s)
        self.end = None  # endofrun.Outputs, once the session finished
        self.partial_line: str | None = None
        self.final: dict[str, TrialRecord] = {}  # node id -> the trial's last record
        self.session: pytest.Session | None = None
        self.upload_stream = None  # LangSmith experiments: trials sent as they finish (export/experiments.py)
        self.stream_asked = False
        self.other_failures = 0  # failures of tests that are not trials: a gate never hides them
        self.subset_line = _subset_line(config)

    def expect(self, cases) -> None:
        """The collected trials: progress counts them; the gate says what they can decide, before the first."""
        cases = list(cases)
        self.progress.expect(case.cell for case in cases)
        _write_lines(self.config, self.bench.end.plan_gate(cases))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Also runs after a usage error in collection (pytest calls it in a ``finally``): then no item has a key."""
        keys = (item.stash.get(KEY, None) for item in session.items)
        self.expect(key.case for key in keys if key is not None)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(trylast=True)  # after the terminal has written the report's letter: see _progress_line
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._add(report)
        self._progress_line()

    def _add(self, report: pytest.TestReport) -> None:
        record = _record_of(report)
        if record is not None:
            self.final[report.nodeid] = record  # a retry's later attempt replaces the earlier one
            self.bench.recorder.add(record)
            self._stream(record)
            if self.bench.recorder.storage_error:
                compat.stop_session(self.session, f"harnessbench: {self.bench.recorder.storage_error}; stopping the session")
            if report.outcome != "rerun":  # progress counts trials, not attempts
                self.progress.add(record)
                self._look()
        elif report.failed:
            self.other_failures += 1
        elif report.skipped and self.bench.sequential is not None:
            key = self.bench.key_of(report.nodeid)
            self.bench.sequential.note_skip(key and key.case.model.text, str(report.longrepr))

    def _look(self) -> None:
        """--hb-gate-sequential: the gate looks again; once decided, trials not yet started are skipped."""
        reason = self.bench.look()
        if reason:
            _write_lines(self.config, [f"harnessbench: gate {reason}: the remaining trials are skipped "
                                       "(trials already running finish and are recorded)"])

    def _progress_line(self) -> None:
        """A due progress line goes where pytest has just ended a row of letters (``[ 44%]``), never inside one;
        with ``-v`` every result has its own line anyway.

        Asked right after the report whose letter ended the row (pytest writes ``[ 44%]`` and the newline
        with the letter): under xdist, another worker's letter may come before this item's logfinish, so a
        check there found every line begun and printed nothing in a whole run."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if not self.bench.recorder.records or reporter is None or \
                (self.config.option.verbose <= 0 and compat.line_started(reporter)):
            return  # no trial finished yet (a session of plain tests has none), or inside a row of letters
        if self.progress.due():  # asked only here: reports that came together must not use up the turn
            reporter.ensure_newline()
            for line in self.progress.lines(compat.terminal_width(reporter)):
                reporter.write_line(line)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """With a gate, the exit status is the gate's: trial failures alone don't fail the run."""
        if not self.bench.recorder.records:
            return
        interrupted = compat.stop_reason(session) or (self._interruption() if session.exitstatus == pytest.ExitCode.INTERRUPTED
                                            else None)
        self.partial_line = self.bench.partial_line(interrupted)
        self.end = self.bench.end.run(session.exitstatus, self.other_failures, verbose=self.config.option.verbose > 0,
                                      summarize=self._summarize, stream=self.upload_stream)
        session.exitstatus = self.end.exit_status

    def _stream(self, record: TrialRecord) -> None:
        if not self.stream_asked:  # at the first record: the run directory and its card exist by now
            self.stream_asked = True
            self.upload_stream = self.bench.end.upload_stream()
        if self.upload_stream is not None:
            self.upload_stream.add(record)

    def _summarize(self):
        """The summary model, computed once for the terminal and the HTML report; hooks see it first."""
        from .summary import summarize

        bench = self.bench
        summary = summarize(bench.recorder.latest(), models=[m.text for m in bench.config.models],
                            multipliers=[m.label for m in bench.config.multipliers],
                            superseded=bench.recorder.earlier_attempts(),
                            calibration=bench.end.calibration or bench.config.report is not None)  # the report shows it
        self.config.hook.pytest_harnessbench_summary(summary=summary, config=self.config)
        return summary

    def _interruption(self) -> str:
        termination = self.config.stash.get(TERMINATION, None)
        return "terminated by SIGTERM" if termination is not None and termination.received else "interrupted"

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self, terminalreporter):
        """Outermost, so the harnessbench section ends the output, after pytest's failures and short summary.

        By default (no ``-v``, no ``--tb``) a failed trial is one line of this
        section: its report is held out of pytest's ``stats`` while pytest
        prints its own summary (the traceback is in the trial's file), then put
        back for the final count.
        """
        stats = terminalreporter.stats
        failed = stats.get("failed", [])
        if _brief(self.config):
            stats["failed"] = [report for report in failed if _record_of(report) is None]
        try:
            return (yield)
        finally:
            if "failed" in stats:
                stats["failed"] = failed
            self._write_summary(terminalreporter)

    def _write_summary(self, terminalreporter) -> None:
        if not self.bench.recorder.records:
            return
        from .endofrun import Outputs

        end = self.end or Outputs()  # a session interrupted before its end: no gate, report or export
        from .report import render, trial_lines

        bench, width, brief = self.bench, compat.terminal_width(terminalreporter), _brief(self.config)
        listed = (FAILED, ERROR, INFRA) if brief else (INFRA,)  # pytest lists the others with -v, --tb
        trials = trial_lines(self.final, width, listed) if terminalreporter.hasopt("f") else []  # -rf, -ra, default
        terminalreporter.write_sep("=", "harnessbench · tracebacks: RUN_DIR/trials/, -v" if brief and trials else "harnessbench")
        if trials and not brief:
            terminalreporter.write_line("infra trials (the environment ended them, not the model):")
        for line in trials:
            terminalreporter.write_line(line)
        summary = end.summary or self._summarize()  # interrupted before sessionfinish computed it
        for line in render(summary, run_dir=str(bench.run.dir), gate_lines=end.gate_lines or (),
                           verbose=self.config.option.verbose > 0, width=width):
            terminalreporter.write_line(line)
        spend_line = bench.spend and bench.spend.summary_line()
        for line in [*(end.calibration_lines or ()), *filter(None, [spend_line, end.report_line, self.subset_line])]:
            terminalreporter.write_line(line)
        if end.export is not None:
            terminalreporter.write_line(end.export.summary())
        for line in bench.backend.warnings():
            terminalreporter.write_line(line, red=True, bold=True)
        if self.partial_line:
            terminalreporter.write_line(self.partial_line, yellow=True, bold=True)


def _brief(config: pytest.Config) -> bool:
    """One line per failed trial instead of pytest's traceback: unless ``-v`` or a ``--tb`` style other than
    pytest's default ``auto`` asks for tracebacks."""
    return config.option.verbose <= 0 and config.option.tbstyle == "auto"


def _subset_line(config: pytest.Config) -> str | None:
    """``--lf`` with failures on record runs only those (under xdist too: the workers read the same cache)."""
    cache = getattr(config, "cache", None)
    if not config.getoption("lf", False) or cache is None or not cache.get("cache/lastfailed", {}):
        return None
    return ("subset: --lf ran only the tests that failed last time; the table covers those trials, "
            "not the whole bake-off")


class _XdistHooks:
    """Hand the controller's run id and directory to every worker; learn what they collected."""

    def __init__(self, bench, recorder: _RecorderHooks):
        self.bench = bench
        self.recorder = recorder
        self.collected = False
        self.usage_errors: list[str] = []  # workers' bad-marker messages, each once

    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        if not self.collected:  # every worker collects the same items
            self.collected = True
            keys = list(filter(None, map(self.bench.key_of, ids)))
            self.recorder.expect(key.case for key in keys)
            try:  # first: a mismatch is a usage error, which must leave no run directory behind
                notes = self.bench.tasks.check_task_ids({key.task_id for key in keys})
            except ConfigError:
                return  # the workers found it too, and relay it as a usage error
            if self.bench.config.shard is not None:  # the workers' plan, all but what only they know, until they end
                from .shard import trial_key

                self.bench.shard_plan = {**self.bench.config.shard.to_dict(),
                                         "trials": sorted(trial_key(key.task_id, key.case.id) for key in keys)}
                _write_lines(self.recorder.config, [_shard_line(self.bench.shard_plan)])
            self.bench.start_sequential(keys)
            if keys:
                try:  # before anything is scheduled; a UsageError here still tears the workers down
                    self.bench.own_run_dir()
                except ConfigError as exc:
                    raise pytest.UsageError(str(exc)) from None
            _write_lines(self.recorder.config, notes)

    def pytest_testnodedown(self, node, error) -> None:
        """A worker's collection facts (its shard plan, the tasks' images) reach the card at its end."""
        output = getattr(node, "workeroutput", None) or {}
        if output.get(WORKER_SHARD):
            self.bench.shard_plan = output[WORKER_SHARD]
        self.bench.worker_images.update(output.get(WORKER_IMAGES) or ())

    def pytest_configure_node(self, node) -> None:
        node.workerinput[WORKER_INPUT] = self.bench.run.handover()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        message = relayed(report)
        if message is not None and message not in self.usage_errors:
            self.usage_errors.append(message)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """A bad task marker is a usage error under xdist too: the same ``ERROR:`` line and exit 4 as a serial run."""
        if self.usage_errors:
            import sys

            print(f"ERROR: {chr(10).join(self.usage_errors)}", file=sys.stderr)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_handlecrashitem(self, crashitem: str, report, sched) -> None:
        """A worker died mid-trial: record it as infra/worker_crash (the report then reaches logreport)."""
        record = self.bench.crash_record(crashitem, str(getattr(report.node.gateway, "id", "?")), str(report.longrepr))
        if record is not None:
            report.user_properties.append((USER_PROPERTY, record.to_dict()))


def pytest_collect_file(file_path, parent: pytest.Collector):
    """A Harbor task directory's ``task.toml`` (see harbor_items.py)."""
    if file_path.name in ("task.toml", "instruction.md") and BENCH in parent.config.stash:
        from .harbor_items import collect

        return collect(file_path, parent, parent.config.stash[BENCH], parent.config.stash[USAGE])
    return None


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    from .harbor_items import in_task_dir

    return True if in_task_dir(collection_path) else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("task")
    if marker is None:
        return
    bench = metafunc.config.stash[BENCH]
    uses_trial = CASE_FIXTURE in metafunc.fixturenames
    try:
        task = bench.tasks.task(metafunc.definition.nodeid, metafunc.function.__name__, dict(marker.kwargs),
                                harbor_task=getattr(metafunc.function, "harbor_task", None), uses_trial=uses_trial)
    except ConfigError as exc:
        metafunc.config.stash[USAGE].add(str(exc))
        task = None
    if not uses_trial:
        return
    cases = bench.tasks.cases if task is not None else []
    metafunc.parametrize(CASE_FIXTURE, cases, ids=[c.id for c in cases], indirect=True)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    bench, usage = config.stash[BENCH], config.stash[USAGE]
    if usage.found and usage.on_worker:
        items[:] = []  # its collection error told the controller, which exits 4; a UsageError here crashes xdist
        return
    usage.raise_found()
    trials = [item for item in items if CASE_FIXTURE in getattr(item, "fixturenames", ())]
    if not trials:
        return
    _freeze_heap()
    keys = [bench.tasks.key(item.nodeid, item.callspec.params[CASE_FIXTURE]) for item in trials]
    for item, key in zip(trials, keys):  # a trial's identity, computed once
        item.stash[KEY] = key
    try:  # the task ids first: check_backend creates the run directory, which a usage error must not leave
        notes = bench.tasks.check_task_ids({key.task_id for key in keys})
        bench.check_backend()
    except ConfigError as exc:
        usage.now(str(exc), session)
        items[:] = []
        return
    if bench.worker is None:  # under xdist the controller says it (_XdistHooks)
        _write_lines(config, notes)
    if not config.option.collectonly:  # LangChain's ~1 s import here, not inside the first trial's timing
        from .agents import harness  # noqa: F401

        _freeze_heap()  # LangChain's modules too (cheap now: what was alive before is frozen already)
    _sequential_order(bench, items, keys)


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_select(session: pytest.Session, config: pytest.Config,
                                         items: list[pytest.Item]) -> None:
    """After every other selection (``-k``, ``-m``): this shard's share (``--hb-shard``), then, of that, what
    ``--hb-resume`` has not finished. Both deselected as ``-k`` deselects.

    A hook of its own, trylast, so that it sees the items every other plugin selected: which trials a shard
    takes depends only on the trial keys (shard.split), never on the items' order, so a plugin that reorders
    items in ``pytest_collection_modifyitems`` (before or after this one) changes no shard's share."""
    bench = config.stash.get(BENCH, None)
    if bench is None or not items:
        return
    if hasattr(config, "workeroutput"):  # the controller collects nothing: its card learns the images from here
        config.workeroutput[WORKER_IMAGES] = sorted({task.image for task in bench.tasks.tasks.values()
                                                     if task.image})
    if bench.config.shard is not None:
        _take_shard(config, bench, items)
    if bench.run.resume is not None:
        finished = [item for item in items if KEY in item.stash and bench.run.skip(item.stash[KEY].trial_id)]
        if finished:
            done = set(map(id, finished))
            items[:] = [item for item in items if id(item) not in done]
            config.hook.pytest_deselected(items=finished)


def _take_shard(config: pytest.Config, bench, items: list[pytest.Item]) -> None:
    """Keep this shard's share of ``items``; its plan goes to the card (from a worker: to the controller)."""
    from .shard import plan, split, trial_key

    keys = [item.stash.get(KEY, None) for item in items]  # None: not a trial
    trials = [None if key is None else (trial_key(key.task_id, key.case.id), key.case.cell) for key in keys]
    selection = split(items, trials, bench.config.shard, lambda item: item.nodeid)
    bench.shard_plan = plan(bench.config.shard, selection.shares, {key.task_id for key in keys if key is not None})
    if hasattr(config, "workeroutput"):
        config.workeroutput[WORKER_SHARD] = bench.shard_plan
    items[:] = selection.kept
    if selection.deselected:
        config.hook.pytest_deselected(items=selection.deselected)
    if bench.worker is None:  # under xdist the controller says it (_XdistHooks)
        _write_lines(config, [_shard_line(bench.shard_plan)])


def _shard_line(shard_plan: dict) -> str:
    collected = shard_plan.get("trials_collected")
    of = f" of {collected} collected" if collected is not None else ""
    return (f"harnessbench: shard {shard_plan['index']}/{shard_plan['total']} ({shard_plan['source']}): "
            f"{len(shard_plan['trials'])} trial(s){of} run here; merge the shards' run directories with "
            "`harnessbench merge OUT RUN_DIR...`")


def _sequential_order(bench, items: list[pytest.Item], keys: list) -> None:
    """--hb-gate-sequential: trials in the seeded task order, each task's trials together (other items keep
    their places); in the process that records, the gate starts over the collected trials. Before the
    resume deselection, so a resumed run's gate counts what its earlier run recorded."""
    if bench.sequential is None:
        return
    items[:] = bench.sequential.reorder(items, lambda item: item.stash[KEY].task_id if KEY in item.stash else None)
    bench.start_sequential(keys)


def _freeze_heap() -> None:
    """Once the trials are collected, move every object alive now (pytest's items: hundreds of thousands, alive
    to the end anyway; on the second call, before the first trial, LangChain's modules) out of the garbage
    collector's reach. A full collection walked them all again: a few times per 80 trials
    (benchmarks/bench_overhead.py); during the keys and the shard split that follow, as their allocations
    trigger it; and five times at the session's end, where pytest calls gc.collect() (unraisableexception's
    cleanup), even under --collect-only (benchmarks/bench_collection.py). Frozen objects are still freed when
    nothing refers to them; only a cycle among them is never collected, and what is garbage now is freed first."""
    import gc

    gc.collect()  # what is garbage already is freed, not frozen
    gc.freeze()


def _write_lines(config: pytest.Config, lines) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in lines if reporter is not None else ():
        reporter.write_line(line)


@pytest.fixture
def hb_case(request: pytest.FixtureRequest):
    """The (model, multiplier, sample) of this trial; parametrized by the plugin."""
    if not hasattr(request, "param"):
        pytest.fail("the `trial` fixture needs @pytest.mark.task(...) on the test", pytrace=False)
    return request.param


@pytest.fixture
def hb_agent_factory():
    """Bring your own harness: override to return ``factory(model, tools, middleware) -> agent``.

    The default (None) is the plugin's own ``create_agent`` with its system
    prompt. Yours gets the chat model, the sandbox tools and the plugin's retry
    middleware (include it to keep provider retries counted); the plugin still
    applies the step and time limits, records and classifies.
    """
    return None


@pytest.fixture
def trial(request: pytest.FixtureRequest, hb_case, hb_agent_factory):
    """A provisioned, resource-limited sandbox for this trial and the agent to run in it."""
    bench = request.config.stash[BENCH]
    decided = bench.sequential is not None and bench.sequential.stop_reason()
    if decided:  # --hb-gate-sequential: the gate is decided, this trial need not run
        pytest.skip(decided)
    refused = bench.spend and bench.spend.admit()
    if refused:  # --hb-max-spend: no new trial, and the session stops (an xdist worker's stop reaches the
        # controller); asked only when a trial would start, so a run whose last trial crossed the cap is complete
        request.session.shouldstop = request.session.shouldstop or f"harnessbench: {refused}; stopping the session"
        pytest.skip(f"not started: {refused}")
    current = bench.new_trial(request.node.stash[KEY], hb_agent_factory)
    request.node.stash[TRIAL] = current
    try:
        current.provision()
        yield current
    finally:
        current.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With ``--hb-retry-infra N`` a trial that ended in infra runs again, at most N more times.

    Each retried attempt is reported with outcome ``rerun`` (pytest-rerunfailures'
    convention, so the last line counts them) and its record is kept.
    """
    bench = item.config.stash.get(BENCH, None)
    if bench is None or not bench.config.retry_infra or CASE_FIXTURE not in getattr(item, "fixturenames", ()):
        return None
    hook = item.ihook
    retry = True
    while retry:
        hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = compat.runtestprotocol(item, nextitem=nextitem, log=False)
        records = [(report, _record_of(report)) for report in reports]
        retry = not item.session.shouldstop and any(r is not None and bench.retry(r) for _, r in records)
        for report, record in records:
            if retry and record is not None:
                report.outcome = "rerun"
            hook.pytest_runtest_logreport(report=report)
        hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """A trial's body runs under its clock: a phase past its budget ends as failed/timeout (deadline.py)."""
    current = item.stash.get(TRIAL, None)
    if current is None:
        return (yield)
    with current.clock.watching():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    current = item.stash.get(TRIAL, None)
    if current is None or call.when == "teardown" or report.skipped:
        return report
    bench = item.config.stash[BENCH]
    if call.when == "setup" and report.passed:
        bench.provisioned(None)
        return report
    exc = call.excinfo.value if call.excinfo is not None else None
    record = bench.finish_trial(current, exc, call.duration if call.when == "call" else 0.0,
                                traceback=report.longreprtext if report.failed else None,
                                announce=lambda final: item.ihook.pytest_harnessbench_trial_record(record=final))
    report.user_properties.append((USER_PROPERTY, record.to_dict()))  # a dict: xdist sends it to the controller
    if report.passed and record.outcome != PASSED:  # verified, but a metric the task gates on missed
        report.outcome = "failed"
        report.longrepr = f"{record.outcome}/{record.cause}: {record.message}"
    if _is_fatal(exc):  # auth or model-not-found mid-run: stop cleanly, keep what finished
        item.session.shouldstop = f"harnessbench: {record.model}: {record.message}; stopping the session"
    elif call.when == "setup":
        item.session.shouldstop = bench.provisioned(record) or item.session.shouldstop
    if bench.recorder.storage_error:
        item.session.shouldstop = f"harnessbench: {bench.recorder.storage_error}; stopping the session"
    if record.message and report.failed:
        report.sections.append(("harnessbench", f"{record.outcome}/{record.cause}: {record.message}"))
    return report


def _is_fatal(exc: BaseException | None) -> bool:
    from .outcomes import ProviderFatal

    return isinstance(exc, ProviderFatal)


def _record_of(report: pytest.TestReport) -> TrialRecord | None:
    """The trial's record a report carries (as a dict, which xdist can send), or None for other tests."""
    for name, value in getattr(report, "user_properties", ()):
        if name == USER_PROPERTY:
            return TrialRecord.from_dict(value)
    return None


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    record = _record_of(report)
    if record is None or report.when == "teardown":
        return None
    if report.outcome == "rerun":
        return "rerun", "R", ("RERUN", {"yellow": True})
    if record.outcome == INFRA:
        return INFRA, "I", ("INFRA", {"yellow": True})  # a category of its own in pytest's last line
    if record.outcome == ERROR:
        return ERROR, "E", ("ERROR", {"red": True})
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session):
    """Ctrl-C (or SIGTERM) landing in the session-end hooks: the run was interrupted (exit 2), not crashed (exit 1)."""
    try:
        return (yield)
    except KeyboardInterrupt:
        pytest.exit("interrupted while the session was ending; the records are in the run directory",
                    returncode=pytest.ExitCode.INTERRUPTED)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The last cleanup (sandboxes, the card's finished_at) is not cut short by another Ctrl-C or SIGTERM."""
    from .lifetime import deferred_interrupts

    bench = config.stash.get(BENCH, None)
    if bench is not None:
        with deferred_interrupts() as came:
            bench.finish()
        del config.stash[BENCH]
        recorder = config.pluginmanager.get_plugin("harnessbench-recorder")
        if came and recorder is not None and recorder.session is not None:  # pytest returns its status after this
            recorder.session.exitstatus = pytest.ExitCode.INTERRUPTED
    termination = config.stash.get(TERMINATION, None)
    if termination is not None:
        termination.uninstall()
        del config.stash[TERMINATION]
