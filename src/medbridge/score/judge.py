"""Judges decide which option a response chose. `rule` trusts the extraction (score/extract.py); `vlm` asks the
configured judge model (Qwen2.5-VL-32B in the paper) and records each verdict (`changed`: the judge's choice differs
from the extraction's), so a reviewer can see where the judge changed a choice. Which responses it re-reads is
`evaluate.judge_scope`: `unclear` (default) every response without a clean closed <answer> tag, `all` every
response. The metrics count the calls and the changed answers (`judge_calls`, `judge_changed`)."""

from __future__ import annotations

from medbridge import MedbridgeError
from medbridge.prompts import options_block

JUDGE_PROMPT = (
    "A model answered a multiple-choice question.\nQuestion: {question}\nOptions:\n{options}\n"
    "Model response:\n{response}\n\nWhich option letter did the response choose? Reply with the single letter, "
    "or NONE if it chose none."
)


def judge_backend(cfg: dict, role: str, purpose: str = "judge"):
    """The judge model (the score judge, the PMC-VQA modality labeller) on the configured backend, spread over
    `evaluate.judge_tensor_parallel_size` GPUs, else over every GPU the job holds (vLLM); its context is sized for
    `purpose` (judge: text-only verdicts; label: an image question, medbridge.engine)."""
    from medbridge.generate import default_device, get_backend

    ev = cfg["evaluate"]
    tp = ev.get("judge_tensor_parallel_size")
    if tp is None and ev["backend"] == "vllm":
        import torch

        tp = max(torch.cuda.device_count(), 1)
    return get_backend(ev["backend"])(cfg, role, default_device(), tensor_parallel_size=tp, purpose=purpose)


class RuleJudge:
    """The extraction's choices stand; nothing to record."""

    name = "rule"

    def __init__(self, cfg: dict):
        self.cfg = cfg

    def __call__(self, rows: list[dict], items: dict[str, dict] | None = None) -> list[dict]:
        return []


class VLMJudge:
    """Re-decides responses (`evaluate.judge_scope`: unclear ones, or all) with the judge model, loaded once (at its
    first response to judge) for every generations file the scoring job judges, through the configured generation
    backend (vLLM on GPUs: `evaluate.judge_tensor_parallel_size` GPUs; 32B in bf16 needs ~67 GB)."""

    name = "vlm"

    def __init__(self, cfg: dict):
        if "judge" not in cfg["models"]:
            raise MedbridgeError(
                "evaluate.judge is vlm but no `judge` model role is configured; add models.judge "
                "(e.g. Qwen/Qwen2.5-VL-32B-Instruct) or set evaluate.judge: rule"
            )
        self.cfg = cfg
        self._backend = None

    def backend(self):
        if self._backend is None:
            try:
                self._backend = judge_backend(self.cfg, "judge")
            except OSError as e:
                raise MedbridgeError(
                    f"the judge model could not be loaded ({e}); check models.judge or use judge: rule"
                ) from e
        return self._backend

    def __call__(self, rows: list[dict], items: dict[str, dict] | None = None) -> list[dict]:
        """Mutates the unclear samples of `rows` in place; returns the verdict records."""
        from medbridge.score.extract import extract_choice

        scope = self.cfg["evaluate"]["judge_scope"]
        if scope not in SCOPES:
            raise MedbridgeError(f"evaluate.judge_scope {scope!r} is unknown; choose one of {list(SCOPES)}")
        unclear = [
            (r, s) for r in rows for s in [r["greedy"], *r["samples"]] if scope == "all" or s["method"] not in ("tag",)
        ]
        if not unclear:
            return []
        question = {i: it.get("question", "") for i, it in (items or {}).items()}
        prompts = [
            JUDGE_PROMPT.format(
                question=question.get(r["id"], ""), options=options_block(r["options"]), response=s["text"]
            )
            for r, s in unclear
        ]
        verdicts = []
        for (row, sample), out in zip(unclear, self.backend().complete([[]] * len(prompts), prompts, 8)):
            choice, _ = extract_choice(out, list(row["options"]))
            verdicts.append(
                {
                    "id": row["id"],
                    "response": sample["text"],
                    "rule_choice": sample["choice"],
                    "judge_output": out,
                    "judge_choice": choice,
                    "changed": choice != sample["choice"],
                }
            )
            sample.update(choice=choice, method="judge", correct=choice == row["answer"])
        return verdicts


JUDGES = {"rule": RuleJudge, "vlm": VLMJudge}
SCOPES = ("unclear", "all")


def make_judge(cfg: dict):
    """The judge `evaluate.judge` names, ready to judge several generations files with one model load."""
    return JUDGES[cfg["evaluate"]["judge"]](cfg)
