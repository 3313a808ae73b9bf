"""What every VQA source adapter shares: the Adapter record, the Skip signal, option parsing, closed-question MCQs.

An adapter turns the rows of one source (a Table 3 benchmark or the PMC-VQA training set), in that source's own
raw shape, into the MCQ item fields of docs/ARCHITECTURE.md. It works in two passes so a large source is never
decoded whole: `convert` sees a row without its image columns and returns the text fields (or raises Skip with a
reason, which ends up counted in the skipped sidecar), and `images` is called only for the rows that are kept.
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LETTERS = string.ascii_uppercase


class Skip(Exception):
    """A source row that cannot become an MCQ item; the message is the reason recorded in skipped.json."""


@dataclass
class Context:
    """Per-build facts an adapter may need beyond the row (e.g. where MedXpertQA's image files are)."""

    images_dir: Path | None = None


@dataclass(frozen=True)
class Adapter:
    name: str
    kind: str  # "benchmark" (a Table 3 column) | "train" (a training pool, e.g. PMC-VQA train)
    hub: dict  # default source: {"id", "configs": [...], "splits": [...]}; a config entry may override each
    convert: Callable[[dict, Context], dict]  # row without image columns -> item fields; raises Skip
    images: Callable[[dict, Context], list]  # full row -> PIL images
    fixture: Callable[[Path, dict, Any], None]  # writes a tiny dataset in the source's raw shape
    image_columns: tuple[str, ...] = ()  # columns dropped in the text pass (image features: decoding is costly)
    consolidated_name: str | None = None  # its `dataset_name` in UCSC-VLAA/MedVLThinker-Eval
    modality: str | None = None  # what every item's image is, where the source says so uniformly
    notes: str = ""
    item_id: Callable[[dict, str, int], str | None] = field(default=lambda row, split, index: None)


def parse_options(raw: Any) -> dict[str, str]:
    """Options as {letter: text} from a dict, a JSON/Python-literal string of a dict or list, or a list.

    Sources disagree: MedVLThinker stores a JSON string of a dict, MMMU a Python-literal string of a list,
    MedXpertQA a dict (with None for letters a row lacks once loaded as an Arrow struct).
    """
    value = raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError) as e:
                raise Skip("options are neither JSON nor a Python literal") from e
    if isinstance(value, dict):
        options = {str(k).strip().upper(): v for k, v in value.items() if v is not None}
        if not all(len(k) == 1 and k in LETTERS for k in options):
            raise Skip("option keys are not single letters")
        options = dict(sorted(options.items()))
    elif isinstance(value, list | tuple):
        if len(value) > len(LETTERS):
            raise Skip("more options than letters")
        options = {LETTERS[i]: v for i, v in enumerate(value)}
    else:
        raise Skip("options field is empty or not a list/dict")
    options = {k: strip_letter_prefix(k, str(v)) for k, v in options.items()}
    if len(options) < 2:
        raise Skip("fewer than two options")
    if list(options) != list(LETTERS[: len(options)]):
        raise Skip("option letters are not A, B, C, ... without gaps")
    if any(not v for v in options.values()):
        raise Skip("an option is empty")
    return options


def strip_letter_prefix(letter: str, text: str) -> str:
    """'B:Focal uptake' / '(B) Focal uptake' / 'B. Focal uptake' -> 'Focal uptake' (only the option's own letter)."""
    m = re.match(rf"^\s*\(?{letter}\s*[:.)]\s*(.*)$", text, flags=re.DOTALL)
    return (m.group(1) if m else text).strip()


def answer_letter(label: Any, options: dict[str, str]) -> str:
    letter = str(label or "").strip().upper().strip("().")
    if letter not in options:
        raise Skip("answer label is not one of the option letters")
    return letter


def mcq_fields(question: str, options: dict[str, str], answer: str, modality: str | None, meta: dict) -> dict:
    question = re.sub(r"[ \t]+", " ", question).strip()
    if not question:
        raise Skip("empty question")
    return {
        "question": question,
        "options": options,
        "answer": answer,
        "answer_text": options[answer],
        "modality": modality,
        "meta": meta,
    }


YES_NO = {"yes": "yes", "no": "no"}
_ARTICLES = r"(?:the |a |an )?"
# "... left or right?", "... the liver or the spleen?": one-word alternatives ending the question.
_OR_PAIR = re.compile(rf"\b{_ARTICLES}([\w-]+)\s+or\s+{_ARTICLES}([\w-]+)\s*\?*\s*$", flags=re.IGNORECASE)


def closed_mcq(question: str, answer: str) -> tuple[dict[str, str], str]:
    """A closed (yes/no or either/or) question as a 2-option MCQ: (options, answer letter).

    yes/no answers give A. yes, B. no (fixed order). Otherwise, when the question ends in two one-word
    alternatives ("... left or right?") and the answer is one of them, those two are the options in the
    question's order. Anything else has no options we can read off the text: it is skipped, with that reason.
    """
    ans = str(answer or "").strip().rstrip(".").lower()
    if ans in YES_NO:
        options = {"A": "yes", "B": "no"}
        return options, "A" if ans == "yes" else "B"
    m = _OR_PAIR.search(question.strip())
    if m:
        left, right = m.group(1), m.group(2)
        for letter, alt in (("A", left), ("B", right)):
            if alt.lower() == ans and left.lower() != right.lower():
                return {"A": left, "B": right}, letter
    raise Skip("closed question whose answer is neither yes/no nor one of two alternatives named in the question")


def image_list(value: Any) -> list:
    """A row's image field as a list (a single image, a list of images, or None)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
