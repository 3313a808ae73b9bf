import subprocess
import sys

import pytest

from medbridge.cli import VERBS


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb):
    proc = subprocess.run([sys.executable, "-m", "medbridge.cli", verb, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"medbridge {verb}" in proc.stdout


def test_top_level_help_lists_every_verb():
    proc = subprocess.run([sys.executable, "-m", "medbridge.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert all(verb in proc.stdout for verb in VERBS)


def test_rules_only_call_medbridge_verbs():
    """Rules hold no logic: every shell command is one `{MEDBRIDGE} <verb>` of the VERBS table."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = "\n".join(p.read_text() for p in (root / "rules").glob("*.smk"))
    assert "run:" not in text and "script:" not in text
    verbs = re.findall(r'"\{MEDBRIDGE\} ([a-z0-9-]+)', text)
    assert verbs and set(verbs) <= set(VERBS)
