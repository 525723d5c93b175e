"""The README is the front door: it must document what the code accepts."""

from pathlib import Path

from support import inprocess

from pytest_harnessbench.config import OPTIONS, declared_options

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_builtin_model_is_in_the_help_and_the_options_table():
    models = next(opt for opt in OPTIONS if opt.name == "models")
    row = next(line for line in README.splitlines() if line.startswith("| `--models`"))
    for builtin in ("oracle[:VARIANT]", "nop", "replay:RUN_DIR[::MODEL]"):
        assert builtin in models.help and builtin in row


def test_every_option_and_ini_key_is_documented():
    missing = [opt.flag for opt in declared_options() if f"`{opt.flag}`" not in README or f"`{opt.ini}`" not in README]
    assert missing == []


def test_the_options_table_shows_each_default_and_help_as_the_code_has_them():
    shown = {"": "—", "false": "off"}
    rows = [f"| `{opt.flag}` | `{opt.ini}` | `{shown.get(opt.default, opt.default)}` | {opt.help} |"
            for opt in declared_options()]  # the built-in backends' own options too
    assert [row for row in rows if row not in README] == []


def _bash_blocks(text: str) -> list[str]:
    return [block.split("\n```", 1)[0].strip() for block in text.split("```bash\n")[1:]]


def test_the_two_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    first, second = _bash_blocks(README)[:2]
    assert first.startswith("pip install -e . && pytest example_suite --models oracle:lean,oracle:heavy,nop")
    assert second == "bash scripts/setup-tests.sh && python -m pytest tests -n 2 --dist worksteal -p no:cacheprovider -q -ra"
    assert 'bash -c "$(readme_command 2)"' in ci and 'bash -c "$(readme_command 1)"' in ci
    assert "check_bakeoff.py" in ci


def test_the_writing_tasks_example_runs_as_written(pytester):
    """Issue 17: the example called an undefined make_numbers."""
    example = README.split("## Writing tasks", 1)[1].split("```python\n", 1)[1].split("\n```", 1)[0]
    pytester.makepyfile(test_example=example)
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle:lean,oracle:heavy",
                           "--multipliers", "uncapped")
    result.assert_outcomes(passed=2)
