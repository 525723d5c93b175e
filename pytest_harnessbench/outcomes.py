"""Every trial ends in exactly one outcome with a cause (docs/design.md §Outcomes).

``classify`` is a pure function of the exception the trial ended with, the
kernel's counters of limits hit in its sandbox (OOM kills, forks refused at the
pids limit, thrashing at the memory limit), whether its disk was full at the
end, and why the agent loop stopped.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from .errors import OutputMissingError, SandboxLostError, SandboxStartError
from .evidence import Evidence

PASSED, FAILED, INFRA, ERROR = "passed", "failed", "infra", "error"
OUTCOMES = (PASSED, FAILED, INFRA, ERROR)  # the order every table and plot uses
#: Trials whose metrics describe the model's work: infra and error trials were ended by
#: the environment or a bug, so their step counts and times measure those, not the model.
METRIC_OUTCOMES = (PASSED, FAILED)

# Causes that other modules name (the full list: docs/design.md §Outcomes).
HARNESS = "harness"  # error/harness: the task or the plugin is broken
WORKER_CRASH = "worker_crash"  # infra/worker_crash: an xdist worker died under the trial (recorded by the controller)
OOM = "oom"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Verdict:
    outcome: str
    cause: str | None
    message: str = ""


class ProviderError(Exception):
    """A model provider fault (rate limit, 5xx, connection, timeout) after the retry budget."""


class ProviderFatal(ProviderError):
    """Authentication or model-not-found in mid-run: infra/provider, and the session stops."""


class ModelGaveUp(Exception):
    """The model ended the attempt itself (context overflow, refusal): a model failure with ``cause``."""

    def __init__(self, cause: str, message: str = ""):
        super().__init__(message or cause)
        self.cause = cause


class VerifierFailed(Exception):
    """A task's own verifier (a Harbor ``tests/test.sh``) gave no verdict: it timed out (``timeout``) or
    left no usable reward (``verifier``). The model's failure, with that cause."""

    def __init__(self, cause: str, message: str):
        super().__init__(message)
        self.cause = cause


AGENT_PHASE, VERIFY_PHASE = "agent", "verify"


class TrialTimeout(BaseException):
    """A phase of the trial ran past its budget: the agent's ``timeout`` or the body's ``verify_timeout``.

    A BaseException, like pytest's own outcomes, so that a task body's
    ``except Exception`` cannot swallow it. The model's failure (``failed/timeout``).
    """

    def __init__(self, phase: str = VERIFY_PHASE, message: str = "the trial ran past its time budget"):
        super().__init__(message)
        self.phase = phase


def _is_verification_failure(exc: BaseException) -> bool:
    """The model did not produce what the task checks for.

    An AssertionError, a missing output file (OutputMissingError, from
    ``sandbox.read_file``) or an explicit ``pytest.fail`` in the task body.
    """
    if isinstance(exc, (AssertionError, OutputMissingError)):
        return True
    # pytest.fail() raises _pytest.outcomes.Failed; matched by name to keep this module pytest-free.
    return type(exc).__name__ == "Failed" and any(
        base.__module__ == "_pytest.outcomes" for base in type(exc).__mro__)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _is_disk_full(exc: BaseException | None) -> bool:
    """The exception, or one it was raised from, is "no space left on device" (or over a disk quota)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def thrashed(evidence: Evidence, memory_limit_bytes: int | None) -> bool:
    """The sandbox sat at its memory limit and read back more of its own evicted file pages than the limit holds.

    A process at its memory limit is not always OOM-killed. The kernel first
    evicts file pages (the program's own code, the files it reads); a process
    that needs them again reads them back from disk, and as long as each
    eviction frees something the OOM killer never runs. Measured on cgroup v1
    (``benchmarks/memory_thrash.py``, README "Memory pressure"): a Python loop
    holding 56-58 MiB under a 64 MiB limit, its interpreter's pages charged to
    its group, did 9 to 1 iterations where it does ~100,000 in 5 s, read back
    3-13 GiB and was never OOM-killed; at 58 MiB it was still running at its
    50 s timeout.

    Having read back more than its whole limit says the working set did not
    fit (a program whose working set fits reads back nothing), whatever the
    machine's speed. It does not say by itself that the program stalled,
    which is why :func:`classify` uses it only for a trial that ran out of time.
    """
    if memory_limit_bytes is None or not evidence.memory_at_limit or evidence.file_refault_bytes is None:
        return False
    return evidence.file_refault_bytes > memory_limit_bytes


def classify(exc: BaseException | None, oom_kills: int = 0, stop_reason: str | None = None,
             oom_as: str = INFRA, pids_limit_hits: int = 0, disk_full: bool = False,
             memory_thrashed: bool = False) -> Verdict:
    """Outcome and cause of one trial.

    Rules 1-6 (:func:`_by_rules`), then rule 7: a trial that ran out of time
    (``failed/timeout``) while its sandbox thrashed at its memory limit
    (:func:`thrashed`) is infra/thrash (failed/thrash under ``--hb-oom-as
    failed``): its time went into reading its own evicted pages back, the
    memory limit stalled it as surely as an OOM kill would have ended it, and
    a larger multiplier is what lets it finish. Other failures keep their cause.
    """
    verdict = _by_rules(exc, oom_kills, stop_reason, oom_as, pids_limit_hits, disk_full)
    if memory_thrashed and (verdict.outcome, verdict.cause) == (FAILED, "timeout"):
        message = f"ran out of time thrashing at its memory limit (no OOM kill); {verdict.message}"
        return Verdict(FAILED if oom_as == FAILED else INFRA, "thrash", message)
    return verdict


def _by_rules(exc: BaseException | None, oom_kills: int, stop_reason: str | None, oom_as: str,
              pids_limit_hits: int, disk_full: bool) -> Verdict:
    """Outcome and cause of one trial, before memory thrashing is considered.

    Rules, in order:
    1. No exception: passed (OOM kills inside are still recorded on the trial).
    2. The sandbox could not start, or vanished: infra — as ``oom`` if the
       kernel killed something in it, since that is usually why it vanished.
    3. A provider fault after retries: infra/provider. A model that gave up
       (context overflow) is the model's failure, with that cause. A full disk
       (ENOSPC, or a quota: EDQUOT) under the sandbox is infra/disk: like an OOM
       kill, the environment ran out, whatever the task body was doing.
    4. Any other ending with an OOM kill in the sandbox: infra/oom (the
       environment ended the attempt; a half-written output may make even a
       careful check raise), or failed/oom under ``--hb-oom-as failed``.
       Likewise a fork the kernel refused at the pids limit: infra/pids (or
       failed/pids): the pids limit is a kill threshold like memory's (the
       multiplier scales it with ``--hb-scale pids``), and a command whose fork
       failed ends in whatever way it handles that, never with a kill to see.
    5. A phase that ran past its budget (TrialTimeout, or a task's verifier
       that timed out): failed/timeout. Any other exception that is not a
       verification failure (NameError, TypeError, ...): the task or plugin is
       broken — error/harness. Then a disk found full at the end
       (``sandbox/disk.py``, by the trial's own writes): infra/disk, as for
       ENOSPC in rule 3, since the command that hit it usually lost its error
       message on the same full disk and the verifier sees only a short output;
       it comes after a timeout or a harness error, which an end-of-trial
       reading cannot show came second. A verifier that left no reward: failed/verifier.
    6. A verification failure: failed, caused by the agent's timeout or step
       limit if it ran out of budget, ``gave_up`` if the model refused, else by
       the assertion itself.
    """
    if exc is None:
        return Verdict(PASSED, None)
    message = _describe(exc)
    if isinstance(exc, SandboxStartError):
        return Verdict(INFRA, "sandbox_start", message)
    if isinstance(exc, SandboxLostError):
        return Verdict(INFRA, "oom" if oom_kills else "sandbox_lost", message)
    if isinstance(exc, ProviderError):
        return Verdict(INFRA, "provider", message)
    if isinstance(exc, ModelGaveUp):
        return Verdict(FAILED, exc.cause, message)
    if _is_disk_full(exc):
        return Verdict(INFRA, "disk", message)
    if oom_kills:
        oom_message = f"kernel OOM-killed {oom_kills} process(es) in the sandbox; {message}"
        return Verdict(FAILED if oom_as == FAILED else INFRA, "oom", oom_message)
    if pids_limit_hits:
        pids_message = f"the kernel refused {pids_limit_hits} fork(s) at the sandbox's pids limit; {message}"
        return Verdict(FAILED if oom_as == FAILED else INFRA, "pids", pids_message)
    if isinstance(exc, TrialTimeout) or (isinstance(exc, VerifierFailed) and exc.cause == "timeout"):
        return Verdict(FAILED, "timeout", message)
    if not isinstance(exc, VerifierFailed) and not _is_verification_failure(exc):
        return Verdict(ERROR, HARNESS, message)
    if disk_full:
        return Verdict(INFRA, "disk", f"no space left on the sandbox's disk at the end of the trial; {message}")
    if isinstance(exc, VerifierFailed):
        return Verdict(FAILED, exc.cause, message)
    if stop_reason in ("timeout", "step_limit", "gave_up"):
        return Verdict(FAILED, stop_reason, message)
    return Verdict(FAILED, "assertion", message)


def timeout_phase(exc: BaseException | None, verdict: Verdict) -> str | None:
    """Which phase a ``failed/timeout`` trial ran out of time in (``agent`` or ``verify``); None for other verdicts."""
    if verdict.cause != "timeout":
        return None
    if isinstance(exc, TrialTimeout):
        return exc.phase
    return VERIFY_PHASE if isinstance(exc, VerifierFailed) else AGENT_PHASE
