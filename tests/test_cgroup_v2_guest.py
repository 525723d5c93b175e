"""cgroup v2 for real (issue 18), on a host that is cgroup v1 only.

Boots a User-Mode Linux guest (scripts/install-uml.sh: Debian's ``user-mode-linux``, cgroup
v2 with the cpu, io, memory and pids controllers) whose root filesystem is the
host's own ``/``, and runs this checkout's local-backend cgroup tests inside it
(tests/support/uml/guest.sh): as root, and as uid 1000 in a subtree delegated the way
``systemd-run --user --scope -p Delegate=yes`` delegates one. The guest writes
JUnit XML and the groups left behind to a host directory; this test reads them.

The guest has one CPU and slow system calls (fork+exec 20-100 ms), so only the
tests that touch cgroups run there; the rest of the suite runs on the host.
"""

import os
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_harnessbench.sandbox.cgroups import DELEGATE_COMMAND

REPO = Path(__file__).resolve().parent.parent
UML = shutil.which("linux.uml")
GUEST_TIMEOUT_S = 480
TESTS = "tests/test_local_sandbox.py tests/test_escape.py"
# The tests of TESTS that create cgroups (the others are filesystem and rlimit tests), and the escape suite's
# local cases: confinement as a normal user (bubblewrap without privileges) on cgroup v2.
CGROUP_TESTS = ("hog or cpu_limit or pids_limit or timeout_kills or leaves_running or (close and not rlimit) or interrupt "
                "or cannot_enter or reap_removes or v2 or four_trials or (escape and (local or file_tools))")
ESCAPE_TESTS = {f"test_{name}[local]" for name in (
    "cannot_read_a_host_process_environment", "cannot_read_files_outside_its_work_dir",
    "cannot_read_another_trials_work_dir", "cannot_reach_host_sockets", "holds_no_admin_capability_and_cannot_write_the_host",
    "cannot_signal_host_processes", "cannot_raise_its_own_limits", "a_fork_bomb_is_contained")} | {
    "test_file_tools_cannot_be_raced_out_of_the_work_dir", "test_file_tools_refuse_links_fifos_and_paths_out"}
# The bake-off once per phase: serial as root; under xdist as the user (workers born in the session leaf).
BAKE_OFF = "test_four_trials_classify_the_same_on_every_cgroup_version"
DESELECT = {"root": f"{TESTS}::{BAKE_OFF}[2]", "user": f"{TESTS}::{BAKE_OFF}[0]"}
LEAF = "test_v2_a_delegated_group_holding_the_session_gets_a_session_leaf_until_close"
MUST_PASS = {"test_hog_is_killed_at_1x_and_the_kernel_counts_it", "test_same_hog_survives_uncapped",
             "test_cpu_limit_throttles_a_busy_loop", "test_pids_limit", f"{LEAF}[variable]",
             "test_v2_limits_as_the_kernel_holds_them", "test_v2_polled_peak_where_the_kernel_has_no_memory_peak",
             "test_close_removes_group_and_directory_also_with_running_processes",
             "test_a_command_and_what_it_leaves_running_are_in_every_one_of_the_trials_groups",
             "test_reap_removes_only_names_of_its_own_pattern_and_counts_sandboxes"} | ESCAPE_TESTS
MUST_PASS_IN = {"root": MUST_PASS | {f"{BAKE_OFF}[0]"}, "user": MUST_PASS | {f"{BAKE_OFF}[2]", f"{LEAF}[itself]"}}
MAY_SKIP = {"root": {f"{LEAF}[itself]"}, "user": set()}  # root's groups go elsewhere unless told

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(UML is None, reason="user-mode-linux is not installed (scripts/setup-tests.sh installs it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the guest writes to the host's / with this user's rights: root"),
]


def _exposed(paths: list[Path]) -> list[str]:
    """PARENT/CHILD for each path below a PARENT others cannot enter (pyenv's /root/.pyenv): uid 1000 needs it."""
    found = set()
    for path in paths:
        for parent in reversed(path.parents):  # from / down
            if not parent.stat().st_mode & stat.S_IXOTH:
                found.add(str(parent / path.relative_to(parent).parts[0]))
                break
    return sorted(found)


def _boot(out: Path) -> float:
    """Run the guest to its end; returns its wall time. It calls setsid(), so signals go to its pid."""
    argv = [UML, "mem=2G", "rootfstype=hostfs", "rootflags=/", "rw", f"init={REPO}/tests/support/uml/init.sh",
            f"hb_script={REPO}/tests/support/uml/guest.sh", f"hb_out={out}", "con=null", "con0=fd:0,fd:1"]
    assert not any(" " in arg for arg in argv), "the guest's command line splits on spaces"
    start = time.monotonic()
    with open(out / "console.txt", "wb") as console:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=GUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the guest ran over {GUEST_TIMEOUT_S} s; its log: {out / 'guest.log'}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return time.monotonic() - start


def _results(junit: Path) -> dict[str, str]:
    """Test name -> passed, failed or skipped (with the message)."""
    results = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        results[case.get("name")] = "passed" if outcome is None else \
            f"{outcome.tag}: {(outcome.get('message') or '')[:300]}"
    return results


def test_local_backend_on_cgroup_v2_as_root_and_as_a_delegated_user(tmp_path):
    out = tmp_path / "guest"
    out.mkdir()
    python = Path(sys.executable)
    expose = _exposed([python, Path(sys.prefix), Path(sys.base_prefix), REPO])
    (out / "env").write_text(f"PYTHON='{python}'\nREPO='{REPO}'\nTESTS='{TESTS}'\nEXPOSE='{' '.join(expose)}'\n"
                             f"SELECTION='{CGROUP_TESTS}'\nROOT_DESELECT='{DESELECT['root']}'\n"
                             f"USER_DESELECT='{DESELECT['user']}'\n")
    elapsed = _boot(out)
    log = (out / "guest.log").read_text() if (out / "guest.log").exists() else "(no guest.log)"
    assert (out / "status").exists(), f"the guest did not finish its script ({elapsed:.0f} s):\n{log[-3000:]}"
    for phase in ("root", "user"):
        results = _results(out / f"{phase}.xml")
        bad = {name: r for name, r in results.items() if r != "passed" and name not in MAY_SKIP[phase]}
        assert not bad, f"{phase} in the guest:\n{log[-6000:]}"
        assert MUST_PASS_IN[phase] <= {name for name, r in results.items() if r == "passed"}, (phase, results)
        assert (out / f"{phase}-left.txt").read_text() == "", f"{phase}: groups left behind"
    assert DELEGATE_COMMAND in (out / "undelegated.txt").read_text()
    phases = {phase: float(ET.parse(out / f"{phase}.xml").getroot().find("testsuite").get("time"))
              for phase in ("root", "user")}
    print(f"guest: {elapsed:.0f} s in all, tests as root {phases['root']:.0f} s, as uid 1000 {phases['user']:.0f} s")
