import errno

import pytest

from pytest_harnessbench.outcomes import ProviderError, TrialTimeout, VerifierFailed, classify, timeout_phase
from pytest_harnessbench.sandbox.base import OutputMissingError, SandboxLostError, SandboxStartError


def pair(verdict):
    return verdict.outcome, verdict.cause


def test_pass_even_with_oom_inside():
    assert pair(classify(None, oom_kills=2)) == ("passed", None)


def test_assertion_and_missing_output_are_model_failures():
    assert pair(classify(AssertionError("x"))) == ("failed", "assertion")
    assert pair(classify(OutputMissingError("out.txt"))) == ("failed", "assertion")


def test_pytest_fail_is_a_model_failure():
    with pytest.raises(BaseException) as info:
        pytest.fail("wrong output")
    assert pair(classify(info.value)) == ("failed", "assertion")


def test_budget_exhaustion_names_the_budget():
    assert pair(classify(AssertionError(), stop_reason="timeout")) == ("failed", "timeout")
    assert pair(classify(AssertionError(), stop_reason="step_limit")) == ("failed", "step_limit")
    assert pair(classify(AssertionError(), stop_reason="budget")) == ("failed", "budget")
    assert pair(classify(None, stop_reason="budget")) == ("passed", None)  # verified what it did: it passed


def test_a_phase_past_its_budget_is_a_timeout_with_the_phase():
    stuck = TrialTimeout("verify", "the verify phase ran past verify_timeout = 5 s")
    assert pair(classify(stuck)) == ("failed", "timeout")
    assert timeout_phase(stuck, classify(stuck)) == "verify"
    assert timeout_phase(None, classify(AssertionError(), stop_reason="timeout")) == "agent"
    harbor = VerifierFailed("timeout", "tests/test.sh ran past [verifier] timeout_sec = 2 s")
    assert timeout_phase(harbor, classify(harbor)) == "verify"
    assert timeout_phase(None, classify(AssertionError())) is None
    assert not isinstance(stuck, Exception)  # a body's `except Exception` cannot swallow it


def test_oom_turns_a_failure_into_infra_unless_counted_as_failed():
    assert pair(classify(AssertionError(), oom_kills=1)) == ("infra", "oom")
    assert pair(classify(OutputMissingError("f"), oom_kills=1, stop_reason="timeout")) == ("infra", "oom")
    assert pair(classify(AssertionError(), oom_kills=1, oom_as="failed")) == ("failed", "oom")


def test_task_bugs_are_harness_errors():
    assert pair(classify(NameError("x"))) == ("error", "harness")
    assert pair(classify(FileNotFoundError("host file"))) == ("error", "harness")


def test_any_non_passing_trial_with_an_oom_kill_is_infra_oom():
    """docs/design.md §Outcomes: a truncated output after a kill can make even a careful check raise."""
    assert pair(classify(ValueError("invalid literal for int()"), oom_kills=1)) == ("infra", "oom")
    assert pair(classify(TypeError("x"), oom_kills=3, oom_as="failed")) == ("failed", "oom")


def test_sandbox_and_provider_faults_are_infra():
    assert pair(classify(SandboxStartError("no"))) == ("infra", "sandbox_start")
    assert pair(classify(SandboxLostError("gone"))) == ("infra", "sandbox_lost")
    assert pair(classify(SandboxLostError("gone"), oom_kills=1)) == ("infra", "oom")
    assert pair(classify(ProviderError("429"))) == ("infra", "provider")


def test_message_names_the_exception():
    assert classify(AssertionError("sorted.txt unsorted\nmore")).message == "AssertionError: sorted.txt unsorted"


def test_a_full_disk_is_infra_disk_also_when_wrapped():
    """Issue 17.7: ENOSPC inside a trial was error/harness ("the task is broken")."""
    import errno

    full = OSError(errno.ENOSPC, "No space left on device")
    assert pair(classify(full)) == ("infra", "disk")
    assert pair(classify(OSError(errno.EDQUOT, "Disk quota exceeded"))) == ("infra", "disk")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("could not save the output") from exc
    except RuntimeError as wrapped:
        assert pair(classify(wrapped)) == ("infra", "disk")
    assert pair(classify(OSError(errno.EACCES, "Permission denied"))) == ("error", "harness")


def test_a_non_passing_trial_that_hit_its_pids_limit_is_classified_like_oom():
    """Issue 21.6: a refused fork was failed/assertion; the pids limit is a kill threshold like memory's."""
    assert pair(classify(OutputMissingError("answer.txt"), pids_limit_hits=3)) == ("infra", "pids")
    assert pair(classify(ValueError("half an output"), pids_limit_hits=1)) == ("infra", "pids")
    assert pair(classify(AssertionError(), pids_limit_hits=1, oom_as="failed")) == ("failed", "pids")
    assert pair(classify(None, pids_limit_hits=5)) == ("passed", None)
    assert pair(classify(AssertionError(), oom_kills=1, pids_limit_hits=1)) == ("infra", "oom")
    assert "refused 3 fork(s)" in classify(AssertionError(), pids_limit_hits=3).message


def test_a_non_passing_trial_whose_disk_was_full_at_the_end_is_infra_disk():
    """Issue 21.4: `dd` into a full disk ends with a short output (an AssertionError), no ENOSPC to see."""
    assert pair(classify(AssertionError("answer.txt is empty"), disk_full=True)) == ("infra", "disk")
    assert pair(classify(OutputMissingError("answer.txt"), disk_full=True, oom_as="failed")) == ("infra", "disk")
    assert pair(classify(None, disk_full=True)) == ("passed", None)
    assert pair(classify(AssertionError(), oom_kills=1, disk_full=True)) == ("infra", "oom")
    assert "no space left" in classify(AssertionError(), disk_full=True).message


def test_a_disk_found_full_at_the_end_does_not_outrank_a_timeout_or_a_harness_error():
    """Review finding: the end-of-trial reading says nothing about what ended the trial first."""
    assert pair(classify(TrialTimeout("agent", "ran past 10 s"), disk_full=True)) == ("failed", "timeout")
    assert pair(classify(VerifierFailed("timeout", "verifier ran past 60 s"), disk_full=True)) == ("failed", "timeout")
    assert pair(classify(NameError("nmae"), disk_full=True)) == ("error", "harness")
    assert pair(classify(VerifierFailed("verifier", "no reward file"), disk_full=True)) == ("infra", "disk")
    full = OSError(errno.ENOSPC, "No space left on device")  # the trial's own write hit it: still infra/disk
    assert pair(classify(full, disk_full=True)) == ("infra", "disk")


def test_a_timeout_while_thrashing_at_the_memory_limit_is_infra_thrash_other_failures_keep_their_cause():
    """Issue 21.7: the kernel never OOM-kills a process that can still evict its own file pages."""
    timed_out = AssertionError("answer.txt is empty")
    assert pair(classify(timed_out, stop_reason="timeout", memory_thrashed=True)) == ("infra", "thrash")
    assert pair(classify(timed_out, stop_reason="timeout", memory_thrashed=True, oom_as="failed")) == ("failed", "thrash")
    assert pair(classify(timed_out, stop_reason="timeout")) == ("failed", "timeout")
    assert pair(classify(timed_out, memory_thrashed=True)) == ("failed", "assertion")  # it finished, wrongly
    assert pair(classify(None, memory_thrashed=True)) == ("passed", None)
    assert "thrashing at its memory limit" in classify(timed_out, stop_reason="timeout", memory_thrashed=True).message


def test_thrashed_means_at_the_limit_and_more_than_the_whole_limit_read_back():
    from pytest_harnessbench.outcomes import thrashed
    from pytest_harnessbench.sandbox.base import Evidence

    limit = 64 << 20
    assert thrashed(Evidence(memory_at_limit=True, file_refault_bytes=limit + 4096), limit)
    assert not thrashed(Evidence(memory_at_limit=True, file_refault_bytes=limit), limit)
    assert not thrashed(Evidence(memory_at_limit=False, file_refault_bytes=10 * limit), limit)
    assert not thrashed(Evidence(memory_at_limit=True, file_refault_bytes=None), limit)  # not readable here
    assert not thrashed(Evidence(memory_at_limit=True, file_refault_bytes=10 * limit), None)  # uncapped
