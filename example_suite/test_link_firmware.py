"""Link a firmware image with a linker whose peak memory varies from run to run."""

import pytest

import _tasks as T

LEAN = "python3 tools/ld.py --no-keep-memory -o app.bin --map app.map @link.order"

# The linker's default mode holds everything in memory and its peak depends on
# a run-time partitioning heuristic: from about 0.8x to 3.3x this task's spec.
HEAVY = "python3 tools/ld.py -o app.bin --map app.map @link.order"


@pytest.mark.task(cpus=1, memory="64Mi", timeout=60, image=T.IMAGE,
                  solutions={"lean": LEAN, "heavy": HEAVY})
def test_link_firmware(trial):
    T.write_tree(trial.sandbox, T.link_project())  # objs/*.o, link.order, tools/ld.py, a stale app.bin
    trial.run_agent(
        "Link the object files listed in link.order, in that order, into the firmware image app.bin "
        "with the project's linker tools/ld.py, and write its link map to app.map "
        "(see python3 tools/ld.py --help).")
    digest = trial.sandbox.exec("sha256sum app.bin").stdout.split()
    want_digest, want_map = T.link_expected()
    assert digest and digest[0] == want_digest, "app.bin is missing, stale or wrong"
    assert trial.sandbox.read_file("app.map") == want_map, "app.map does not match the link"
