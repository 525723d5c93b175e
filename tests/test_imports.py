"""The import graph of the package runs one way (scripts/import_graph.py draws it): no circle, nothing back up.

Every import counts, lazy ones inside functions and those under TYPE_CHECKING too.
"""

from scripts.import_graph import PACKAGE, cycles, graph

EDGES = graph()


def imports(module: str) -> set[str]:
    return {m.removeprefix(f"{PACKAGE}.") for m in EDGES[f"{PACKAGE}.{module}"]}


def test_there_is_no_circle_in_the_import_graph():
    assert cycles(EDGES) == []


def test_the_cycle_finder_finds_a_circle_and_nothing_else():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_type_checking_imports():
    assert "config" in imports("session") and "agents.harness" in imports("trial")  # trial imports it in a function
    assert "resources" in imports("sandbox.base")  # under TYPE_CHECKING


def test_the_bottom_modules_import_nothing_above_them():
    assert imports("errors") == imports("evidence") == imports("options") == set()
    assert imports("models") <= {"store"}  # a replay source is an earlier run directory


def test_backends_and_the_classifier_do_not_reach_up_into_the_session():
    core = {"config", "session", "plugin", "trial", "gate", "stats", "report", "records"}
    for module in (m.removeprefix(f"{PACKAGE}.") for m in EDGES):
        if module.startswith("sandbox"):
            assert not imports(module) & core, module
    assert not {m for m in imports("outcomes") if m.startswith(("sandbox", "agents"))}
    assert not {m for m in imports("config") if m.startswith(("agents", "sandbox.base", "sandbox.local"))}
