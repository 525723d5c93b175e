"""Every trial ends in bounded time: its agent phase and its verify phase each have a budget.

The test body alternates between two phases: the agent phase (inside
``trial.run_agent``, budget: the task's ``timeout``) and the verify phase
(everything else in the body: set-up and verification, budget: the task's
``verify_timeout``, counted over all of the body's time outside the agent).
Two things hold the bounds:

- Every ``trial.sandbox.exec`` gets at most what is left of the current phase
  (:class:`BoundedSandbox`). A command cut short by that, not by its own
  ``timeout``, raises :class:`TrialTimeout`: the phase ran out.
- A watchdog for code stuck in Python (``time.sleep(600)``, a busy loop, a
  hung call in a custom agent), modelled on pytest-timeout's signal method:
  ``signal.setitimer`` delivers SIGALRM to the main thread, whose handler
  raises :class:`TrialTimeout`. It fires :data:`WATCHDOG_GRACE_S` after the
  phase's deadline, so that a bounded command, or the harness's own graceful
  agent deadline, ends the phase first when it can. Where signals cannot be
  used (the body runs outside the main thread, or the platform has no
  SIGALRM) a timer thread raises it asynchronously in the body's thread: that
  interrupts Python code, not a call blocked in C.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .evidence import Evidence
from .outcomes import AGENT_PHASE, VERIFY_PHASE, TrialTimeout
from .sandbox.base import ExecResult, Sandbox

WATCHDOG_GRACE_S = 5.0


class TrialClock:
    """Which phase a trial's body is in and what is left of its budget; the watchdog follows it."""

    def __init__(self, verify_s: float | None, *, now: Callable[[], float] = time.monotonic):
        self.verify_s = verify_s
        self._now = now
        self.phase = VERIFY_PHASE
        self._agent_budget_s: float | None = None
        self._phase_start = now()
        self._verify_spent = 0.0
        self._alarm: _Alarm | None = None

    def remaining(self) -> float | None:
        """Seconds left in the current phase; None when it has no limit.

        No limit: an agent without ``timeout``, or either phase under ``uncapped``
        when ``--hb-scale`` includes ``time`` (``verify_s`` None).
        """
        elapsed = self._now() - self._phase_start
        if self.phase == AGENT_PHASE:
            return None if self._agent_budget_s is None else max(0.0, self._agent_budget_s - elapsed)
        if self.verify_s is None:
            return None
        return max(0.0, self.verify_s - self._verify_spent - elapsed)

    def expired(self) -> TrialTimeout:
        """The exception for the current phase having run past its budget."""
        if self.phase == AGENT_PHASE:
            return TrialTimeout(AGENT_PHASE, f"the agent phase ran past its timeout = {self._agent_budget_s:g} s")
        return TrialTimeout(VERIFY_PHASE, f"the verify phase (the test body outside run_agent) ran past "
                                          f"verify_timeout = {self.verify_s:g} s")

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Run the test body under the watchdog; starts the verify phase's clock."""
        self._phase_start = self._now()
        self._alarm = _Alarm.for_this_thread(lambda: self.expired())
        self._rearm()
        try:
            yield
        finally:
            self._alarm.disarm()
            self._alarm = None

    @contextmanager
    def agent_phase(self, budget_s: float | None) -> Iterator[None]:
        """Inside ``run_agent``: the agent's budget applies; the verify clock stops until it returns."""
        self._switch(AGENT_PHASE)
        self._agent_budget_s = budget_s
        self._rearm()
        try:
            yield
        finally:
            self._switch(VERIFY_PHASE)
            self._rearm()

    def _switch(self, phase: str) -> None:
        now = self._now()
        if self.phase == VERIFY_PHASE:
            self._verify_spent += now - self._phase_start
        self.phase, self._phase_start = phase, now

    def _rearm(self) -> None:
        if self._alarm is not None:
            left = self.remaining()
            self._alarm.arm(None if left is None else left + WATCHDOG_GRACE_S)


class _Alarm:
    """Raises an exception in the body's thread after some seconds: by SIGALRM where it can, else by a thread."""

    def __init__(self, make_exception: Callable[[], TrialTimeout]):
        self.make_exception = make_exception

    @staticmethod
    def for_this_thread(make_exception: Callable[[], TrialTimeout]) -> _Alarm:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            return _SignalAlarm(make_exception)
        return _ThreadAlarm(make_exception)

    def arm(self, seconds: float | None) -> None:
        """Fire after ``seconds`` (None: never), replacing what was armed before."""
        raise NotImplementedError

    def disarm(self) -> None:
        raise NotImplementedError


class _SignalAlarm(_Alarm):
    """pytest-timeout's signal method: the handler raises in the main thread, interrupting even a sleep."""

    def __init__(self, make_exception: Callable[[], TrialTimeout]):
        super().__init__(make_exception)
        self._previous = signal.signal(signal.SIGALRM, self._fire)

    def _fire(self, signum, frame) -> None:
        raise self.make_exception()

    def arm(self, seconds: float | None) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0 if seconds is None else max(seconds, 0.001))

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)


class _ThreadAlarm(_Alarm):
    """Outside the main thread: a timer raises the exception asynchronously in the body's thread."""

    def __init__(self, make_exception: Callable[[], TrialTimeout]):
        super().__init__(make_exception)
        self._target = threading.get_ident()
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        import ctypes

        exc = self.make_exception()
        # Only a class can be raised asynchronously: one that carries this instance's phase and message.
        carrier = type(TrialTimeout.__name__, (TrialTimeout,),
                       {"__init__": lambda self: TrialTimeout.__init__(self, exc.phase, str(exc))})
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._target), ctypes.py_object(carrier))

    def arm(self, seconds: float | None) -> None:
        self.disarm()
        if seconds is not None:
            self._timer = threading.Timer(seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class BoundedSandbox:
    """``trial.sandbox``: the trial's sandbox, each command bounded by what is left of the current phase."""

    def __init__(self, sandbox: Sandbox, clock: TrialClock):
        self._sandbox = sandbox
        self._clock = clock

    @property
    def enforcement(self) -> str:
        return self._sandbox.enforcement

    def exec(self, command: str, timeout: float | None = None) -> ExecResult:
        """``Sandbox.exec``, cut at the phase's deadline.

        Raises:
            TrialTimeout: the phase's budget ran out (before or during the command).
            SandboxLostError: the sandbox is gone.
        """
        left = self._clock.remaining()
        if left is None or (timeout is not None and timeout <= left):
            return self._sandbox.exec(command, timeout=timeout)
        if left <= 0:
            raise self._clock.expired()
        result = self._sandbox.exec(command, timeout=left)
        if result.timed_out:
            raise self._clock.expired()
        return result

    def write_file(self, path: str, content: str | bytes) -> None:
        self._sandbox.write_file(path, content)

    def read_file(self, path: str, text: bool = True, limit: int | None = None) -> str | bytes:
        return self._sandbox.read_file(path, text, limit)

    def evidence(self) -> Evidence:
        return self._sandbox.evidence()

    def applied_limits(self) -> dict:
        return self._sandbox.applied_limits()

    def close(self) -> None:
        self._sandbox.close()
