"""The import graph of the package runs one way (scripts/import_graph.py draws it): no circle, nothing back up.

Every import counts, lazy ones inside functions and those under TYPE_CHECKING too.
"""

from pathlib import Path

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


ROOT = Path(__file__).resolve().parent.parent


def layout_block() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("## Layout", 1)[1].split("```\npytest_harnessbench/\n", 1)[1].split("```", 1)[0]


def layout() -> list[str]:
    """The README's Layout list, top to bottom: ``plugin.py`` -> ``plugin``, ``sandbox/`` -> ``sandbox``."""
    return [line.split()[0].removesuffix(".py").rstrip("/") for line in layout_block().splitlines()
            if line.startswith("  ") and not line.startswith("   ")]


def test_the_readme_layout_names_every_module():
    """A module the Layout leaves out escapes the order check below, and a reader's map."""
    package = ROOT / PACKAGE
    top = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert sorted(top - {"__init__"} - set(layout())) == []
    block = layout_block()
    nested = {p.name for sub in package.iterdir() if (sub / "__init__.py").is_file() for p in sub.rglob("*.py")}
    assert sorted(name for name in nested - {"__init__.py"} if name not in block) == []


def test_the_readme_layout_lists_modules_so_that_imports_only_run_down():
    """A module listed in the Layout imports only modules listed below it (or in its own package)."""
    order = layout()
    assert order[:2] == ["plugin", "harbor_items"] and "errors" in order
    rank = {name: i for i, name in enumerate(order)}

    def listed(module: str) -> str | None:
        head = module.removeprefix(f"{PACKAGE}.").split(".")[0]
        return head if head in rank else None

    upward = [(a, b) for a, targets in EDGES.items() for b in targets
              if listed(a) and listed(b) and listed(a) != listed(b) and rank[listed(a)] > rank[listed(b)]]
    assert upward == []
