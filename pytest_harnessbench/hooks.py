"""Hook specifications of pytest-harnessbench, for plugins and ``conftest.py`` files (README "Extending").

Registered in ``plugin.pytest_addhooks``, as pytest-xdist and pytest-benchmark
publish theirs. Implement them like any pytest hook, in a ``conftest.py`` or a
plugin; pytest checks the argument names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import TrialRecord
    from .summary import Summary


def pytest_harnessbench_trial_record(record: TrialRecord) -> None:
    """A trial's record is final: its outcome is decided and nothing of the plugin changes it.

    Called once per attempt, in the process that ran the trial (an xdist
    worker, or the only process), before the record is redacted and stored:
    whatever a hook adds to ``record.extra`` (any JSON-able values) or
    ``record.metrics`` (name -> number, summarised and gated like the built-in
    metrics) is written to results.jsonl and the trial's file with it. The
    record itself is frozen; the outcome stays the plugin's. Not called for a
    trial whose worker process died (``infra/worker_crash``): it has no process
    left to run the hook in.
    """


def pytest_harnessbench_summary(summary: Summary, config) -> None:
    """The run's summary model is ready, before the terminal summary and the HTML report format it.

    Called once, in the process that records (the xdist controller, or the only
    process), after every trial. A hook may read ``summary`` (``summary.results()``
    is JSON-able: a sink can store or send it) and add tables with
    ``summary.add_table(title, header, rows)``: both renderers show them.
    """
