"""Answer extraction from a model's free text, in the order the authors' evaluation uses:

1. the first strict <answer>...</answer> (the authors' `parse_mcq_letter` uses `re.search`; `evaluate.answer_tag:
   last` takes the last one, as the GRPO accuracy reward does); else an unclosed <answer> (its first non-empty
   line); inside it, the first standalone capital letter;
2. else `(answer|final)\\s*[:\\-]?\\s*([A-Z])\\b` anywhere (case-insensitive);
3. else the first standalone capital letter of the text.
A letter that is not one of the item's options is no answer. Junk never raises: it yields (None, "none").
"""

from __future__ import annotations

import re

_STRICT = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.IGNORECASE | re.DOTALL)
_UNCLOSED = re.compile(r"<answer>\s*(.*)$", re.IGNORECASE | re.DOTALL)
_LETTER = re.compile(r"\b([A-Z])\b")
_ANSWER_IS = re.compile(r"(answer|final)\s*[:\-]?\s*([A-Z])\b", re.IGNORECASE)


ANSWER_TAGS = ("first", "last")


def answer_span(text: str, tag: str = "first") -> tuple[str | None, str]:
    """The content of the answer tag and which form held it: 'tag' (the first or last closed one, by `tag`),
    'unclosed', or (None, 'none')."""
    if tag not in ANSWER_TAGS:
        raise ValueError(f"answer tag {tag!r} is not one of {ANSWER_TAGS} (config key evaluate.answer_tag)")
    closed = _STRICT.findall(text)
    if closed:
        return closed[0 if tag == "first" else -1].strip(), "tag"
    m = _UNCLOSED.search(text)
    if m:
        for line in m.group(1).splitlines():
            if line.strip():
                return line.strip(), "unclosed"
    return None, "none"


def extract_choice(text: str, letters, tag: str = "first") -> tuple[str | None, str]:
    """(option letter or None, method) with method in {'tag', 'unclosed', 'answer_is', 'letter', 'none'}."""
    letters = set(letters)
    span, how = answer_span(text or "", tag)
    if span is not None:
        m = _LETTER.search(span.upper())
        if m and m.group(1) in letters:
            return m.group(1), how
    m = _ANSWER_IS.search(text or "")
    if m and m.group(2).upper() in letters:
        return m.group(2).upper(), "answer_is"
    m = _LETTER.search((text or "").strip())
    if m and m.group(1) in letters:
        return m.group(1), "letter"
    return None, "none"


def well_formatted(text: str) -> bool:
    """The paper's output format: a <think> block then an <answer> block (the GRPO format reward's pattern)."""
    return re.fullmatch(r"\s*<think>.*?</think>\s*<answer>.*?</answer>\s*", text or "", re.DOTALL) is not None
