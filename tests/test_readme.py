"""The README is the front door: it must document what the code accepts."""

from pathlib import Path

from pytest_harnessbench.config import OPTIONS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_option_and_ini_key_is_documented():
    missing = [opt.flag for opt in OPTIONS if f"`{opt.flag}`" not in README or f"`{opt.ini}`" not in README]
    assert missing == []


def test_the_options_table_shows_each_default_and_help_as_the_code_has_them():
    shown = {"": "—", "false": "off"}
    rows = [f"| `{opt.flag}` | `{opt.ini}` | `{shown.get(opt.default, opt.default)}` | {opt.help} |" for opt in OPTIONS]
    assert [row for row in rows if row not in README] == []


def _bash_blocks(text: str) -> list[str]:
    return [block.split("\n```", 1)[0].strip() for block in text.split("```bash\n")[1:]]


def test_the_two_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    first, second = _bash_blocks(README)[:2]
    assert first.startswith("pip install -e . && pytest example_suite --models oracle:lean,oracle:heavy,nop")
    assert second == "bash scripts/setup-tests.sh && python -m pytest tests -p no:cacheprovider -q -ra"
    assert 'bash -c "$(readme_command 2)"' in ci and 'bash -c "$(readme_command 1)"' in ci
    assert "check_bakeoff.py" in ci
