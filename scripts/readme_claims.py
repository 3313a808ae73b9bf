"""Put a run's claims table (results/<run>/artifacts/claims.md, made by `medbridge claims`) into README.md's section
"What the tiny run shows", between its two markers: the README's numbers come from a run, never typed by hand.

    .venv/bin/python scripts/readme_claims.py [results/tiny/artifacts/claims.md]

tests/test_dag.py checks that the README's section equals what a fresh tiny run (seed 0) writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- claims: made by scripts/readme_claims.py -->", "<!-- claims: end -->"


def section(claims_md: str) -> str:
    """The README block for a claims.md (its title line dropped: the README section has its own)."""
    body = claims_md.split("\n", 1)[1].strip() if claims_md.startswith("# ") else claims_md.strip()
    return f"{START}\n{body}\n{END}"


def readme_section(readme: str) -> str:
    a, b = readme.index(START), readme.index(END) + len(END)
    return readme[a:b]


def main() -> None:
    claims = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "results" / "tiny" / "artifacts" / "claims.md")
    readme = (ROOT / "README.md").read_text()
    new = readme.replace(readme_section(readme), section(claims.read_text()))
    tmp = ROOT / ".README.md.tmp"
    tmp.write_text(new)
    tmp.replace(ROOT / "README.md")
    print(f"README.md: claims section from {claims}")


if __name__ == "__main__":
    main()
