"""The README is the front door: it must document what the code accepts."""

from pathlib import Path

from pytest_harnessbench.config import OPTIONS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_option_and_ini_key_is_documented():
    missing = [opt.flag for opt in OPTIONS if f"`{opt.flag}`" not in README or f"`{opt.ini}`" not in README]
    assert missing == []


def test_the_two_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "pip install -e . && pytest example_suite --models oracle:lean,oracle:heavy,nop" in README
    assert "python -m pytest tests -p no:cacheprovider -q -ra" in README
    assert "python3 -m pytest tests -p no:cacheprovider -q -ra" in ci and "bash .ci/docker-setup.sh" in ci
