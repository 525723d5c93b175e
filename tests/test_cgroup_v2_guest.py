"""cgroup v2 for real (issue 18), on a host that is cgroup v1 only.

Two User-Mode Linux guests (scripts/install-uml.sh: Debian's ``user-mode-linux``, cgroup v2 with the
cpu, io, memory and pids controllers) whose root filesystem is the host's own ``/`` run this
checkout's local-backend cgroup tests (tests/support/uml/guest.sh): one as root, one as uid 1000 in
a subtree delegated the way ``systemd-run --user --scope -p Delegate=yes`` delegates one. They are
booted in the background as soon as the session has collected this test, and run beside the rest of
the suite (tests/support/guest.py); this test, collected last, waits for them and reads the JUnit XML
and the groups left behind that they wrote to a host directory.

A guest has one CPU and slow system calls (fork+exec 20-100 ms), so only the tests that touch
cgroups run there; the rest of the suite runs on the host.
"""

import shutil
import xml.etree.ElementTree as ET

import pytest

from pytest_harnessbench.sandbox.cgroups import DELEGATE_COMMAND
from support import guest
from support.guest import BAKE_OFF, BAKE_OFF_ID

ESCAPE_TESTS = {f"test_{name}[local]" for name in (
    "cannot_read_a_host_process_environment", "cannot_read_files_outside_its_work_dir",
    "cannot_read_another_trials_work_dir", "cannot_reach_host_sockets", "holds_no_admin_capability_and_cannot_write_the_host",
    "cannot_signal_host_processes", "cannot_raise_its_own_limits", "a_fork_bomb_is_contained")} | {
    "test_file_tools_cannot_be_raced_out_of_the_work_dir", "test_file_tools_refuse_links_fifos_and_paths_out"}
LEAF = "test_v2_a_delegated_group_holding_the_session_gets_a_session_leaf_until_close"
MUST_PASS = {"test_hog_is_killed_at_1x_and_the_kernel_counts_it", "test_same_hog_survives_uncapped",
             "test_cpu_limit_throttles_a_busy_loop", "test_pids_limit", f"{LEAF}[variable]",
             "test_v2_limits_as_the_kernel_holds_them", "test_v2_polled_peak_where_the_kernel_has_no_memory_peak",
             "test_close_removes_group_and_directory_also_with_running_processes",
             "test_a_command_and_what_it_leaves_running_are_in_every_one_of_the_trials_groups",
             "test_reap_removes_only_names_of_its_own_pattern_and_counts_sandboxes"} | ESCAPE_TESTS
OWN_BAKE_OFF = {phase: f"{BAKE_OFF}[{BAKE_OFF_ID[phase]}]" for phase in BAKE_OFF_ID}
MUST_PASS_IN = {"root": MUST_PASS | {OWN_BAKE_OFF["root"]}, "user": MUST_PASS | {OWN_BAKE_OFF["user"], f"{LEAF}[itself]"}}
NOT_RUN_IN = {"root": {OWN_BAKE_OFF["user"]}, "user": {OWN_BAKE_OFF["root"]}}  # each bake-off once: ~15 s in a guest
MAY_SKIP = {"root": {f"{LEAF}[itself]"}, "user": set()}  # root's groups go elsewhere unless told

pytestmark = [pytest.mark.guest, pytest.mark.skipif(guest.can_boot() is not None, reason=str(guest.can_boot()))]


def _results(junit) -> dict[str, str]:
    """Test name -> passed, failed or skipped (with the message)."""
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        results[case.get("name")] = "passed" if outcome is None else \
            f"{outcome.tag}: {(outcome.get('message') or '')[:300]}"
    return results


def test_local_backend_on_cgroup_v2_as_root_and_as_a_delegated_user(request):
    outs = guest.wait(request.config)
    times = {}
    for phase, out in outs.items():
        log = (out / "guest.log").read_text() if (out / "guest.log").exists() else "(no guest.log)"
        assert (out / "status").exists(), f"the {phase} guest did not finish its script:\n{log[-3000:]}"
        results = _results(out / f"{phase}.xml")
        bad = {name: r for name, r in results.items() if r != "passed" and name not in MAY_SKIP[phase]}
        assert not bad, f"{phase} in the guest:\n{log[-6000:]}"
        assert MUST_PASS_IN[phase] <= {name for name, r in results.items() if r == "passed"}, (phase, results)
        assert not NOT_RUN_IN[phase] & set(results), (phase, "deselected, yet it ran")
        assert (out / f"{phase}-left.txt").read_text() == "", f"{phase}: groups left behind"
        times[phase] = (out / "exit").read_text().split()[1]
    assert DELEGATE_COMMAND in (outs["user"] / "undelegated.txt").read_text()
    print(f"guests (at once, beside the suite): as root {times['root']} s, as uid 1000 {times['user']} s")
    shutil.rmtree(outs["root"].parent, ignore_errors=True)  # kept on a failure: the messages name its logs
