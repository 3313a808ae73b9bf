"""Judges decide which option a response chose. `rule` trusts the extraction (score/extract.py); `vlm` asks the
configured judge model (Qwen2.5-VL-32B in the paper) about every response without a clean <answer> tag and
records each verdict, so a reviewer can see where the judge changed a choice."""

from __future__ import annotations

from medbridge import MedbridgeError
from medbridge.prompts import options_block

JUDGE_PROMPT = (
    "A model answered a multiple-choice question.\nQuestion: {question}\nOptions:\n{options}\n"
    "Model response:\n{response}\n\nWhich option letter did the response choose? Reply with the single letter, "
    "or NONE if it chose none."
)


def rule_judge(rows: list[dict], cfg: dict, items: dict[str, dict] | None = None) -> list[dict]:
    """The extraction's choices stand; nothing to record."""
    return []


def vlm_judge(rows: list[dict], cfg: dict, items: dict[str, dict] | None = None) -> list[dict]:
    """Re-decide unclear responses with the judge model; mutates rows in place; returns the verdict records."""
    from medbridge.generate.hf import HFBackend
    from medbridge.score.extract import extract_choice

    if "judge" not in cfg["models"]:
        raise MedbridgeError("evaluate.judge is vlm but no `judge` model role is configured; add models.judge "
                             "(e.g. Qwen/Qwen2.5-VL-32B-Instruct) or set evaluate.judge: rule")  # fmt: skip
    unclear = [(r, s) for r in rows for s in [r["greedy"], *r["samples"]] if s["method"] not in ("tag",)]
    if not unclear:
        return []
    import torch

    try:
        backend = HFBackend(cfg, "judge", device="cuda" if torch.cuda.is_available() else "cpu")
    except OSError as e:
        raise MedbridgeError(f"the judge model could not be loaded ({e}); check models.judge or use judge: rule") from e
    question = {i: it.get("question", "") for i, it in (items or {}).items()}
    prompts = [JUDGE_PROMPT.format(question=question.get(r["id"], ""), options=options_block(r["options"]),
                                   response=s["text"]) for r, s in unclear]  # fmt: skip
    verdicts = []
    for (row, sample), out in zip(unclear, backend.complete_text(prompts, max_new_tokens=8)):
        choice, _ = extract_choice(out, list(row["options"]))
        verdicts.append({"id": row["id"], "response": sample["text"], "rule_choice": sample["choice"],
                         "judge_output": out, "judge_choice": choice})  # fmt: skip
        sample.update(choice=choice, method="judge", correct=choice == row["answer"])
    return verdicts


JUDGES = {"rule": rule_judge, "vlm": vlm_judge}
