"""docs/design.md is what the code cites: every citation names a section that exists (issue 22)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_citation_of_the_design_doc_names_one_of_its_sections():
    sections = set(re.findall(r"^## (.+)$", (ROOT / "docs" / "design.md").read_text(), re.M))
    cited = {}
    for path in [*ROOT.glob("pytest_harnessbench/**/*.py"), *ROOT.glob("benchmarks/*.py")]:
        text = path.read_text()
        assert "DESIGN.md" not in text, f"{path}: cites DESIGN.md, which is not in the repository"
        for citation in re.findall(r"docs/design\.md ((?:§[A-Z][a-z]+(?: card| directory| flow| hooks)?(?:, )?)+)", text):
            for name in re.findall(r"§([A-Z][a-z]+(?: card| directory| flow| hooks)?)", citation):
                cited.setdefault(name, []).append(path.name)
    assert cited, "no citation found: the pattern above is wrong"
    assert {name: files for name, files in cited.items() if name not in sections} == {}
