"""The agent's read_file tool reads at most TOOL_OUTPUT_LIMIT bytes of a file into the controller, never the rest."""

from __future__ import annotations

import os
import resource
import uuid

import pytest

from pytest_harnessbench.agents.defaults import TOOL_OUTPUT_LIMIT
from pytest_harnessbench.agents.tools import TOOLS, acting_on
from pytest_harnessbench.resources import Allocation, Multiplier, Spec
from pytest_harnessbench.sandbox.local import LocalBackend

pytestmark = pytest.mark.trials  # the agent tool against a real local sandbox


@pytest.fixture
def box():
    backend = LocalBackend(f"tool-{os.getpid()}-{uuid.uuid4().hex[:6]}", enforcement="rlimit")
    sandbox = backend.provision(Allocation.of(Spec.from_marker(memory="64Mi"), Multiplier.parse("1")), "tool")
    yield sandbox
    sandbox.close()
    backend.close()


@pytest.fixture
def read_file(box):
    """The read_file tool, acting on ``box`` for the test."""
    with acting_on(box, lambda call: None, lambda: 30):
        yield next(tool for tool in TOOLS if tool.name == "read_file")


def _in_a_bounded_child(call, headroom: int = 512 * 1024**2) -> str:
    """``call()`` in a forked child whose address space may grow by ``headroom`` only.

    Reading the whole 10 GiB into memory (the fault this guards against) then ends in the child's MemoryError,
    not in an OOM kill of whatever else runs on the machine.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            with open("/proc/self/status") as status:
                vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
            resource.setrlimit(resource.RLIMIT_AS, (vm_kib * 1024 + headroom, resource.RLIM_INFINITY))
            try:
                result = call()
            except BaseException as exc:  # reported to the parent, which fails the test
                result = f"child raised {exc!r}"
            with os.fdopen(write_end, "w") as out:
                out.write(result)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        output = result.read()
    os.waitpid(pid, 0)
    return output


def test_a_sparse_10_gib_file_is_read_only_as_far_as_shown(box, read_file):
    box.exec("printf 'first line\\n' > big && truncate -s 10G big", timeout=30)
    assert (box.workdir / "big").stat().st_size == 10 * 1024**3
    output = _in_a_bounded_child(lambda: read_file.invoke({"path": "big"}))
    assert output.startswith("first line\n"), output[:200]
    assert f"[file cut: its first {TOOL_OUTPUT_LIMIT} bytes shown;" in output
    assert len(output) < TOOL_OUTPUT_LIMIT + 200


def test_a_small_file_is_shown_whole_and_a_missing_one_is_the_models_error(box, read_file):
    box.write_file("small.txt", "é" * 10)
    assert read_file.invoke({"path": "small.txt"}) == "é" * 10
    assert read_file.invoke({"path": "nope.txt"}).startswith("error: ")


def test_the_limit_is_exact_at_the_boundary(box, read_file):
    box.write_file("edge.txt", "x" * TOOL_OUTPUT_LIMIT)
    assert read_file.invoke({"path": "edge.txt"}) == "x" * TOOL_OUTPUT_LIMIT
    box.write_file("over.txt", "x" * (TOOL_OUTPUT_LIMIT + 1))
    assert read_file.invoke({"path": "over.txt"}).startswith("x" * TOOL_OUTPUT_LIMIT + "\n[file cut")
