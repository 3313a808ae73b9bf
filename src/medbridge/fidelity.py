"""The fidelity ledger: every choice the paper leaves open or the package makes, with what the paper says, what the
authors' public code does (github armenjeddi/medbridgerl, file and function), what the package does by default, and
the config key that changes it.

One registry: docs/FIDELITY.md is rendered from it (`medbridge fidelity --out docs/FIDELITY.md`; a test keeps the
two equal), and `comparison.csv` names, for every reproduced number, the ledger rows that touch it and those where
the run's config departs from the authors' value.

Parts a row touches: T1 (Table 1, probes), T2 (Table 2, Acc@1), F1 (Figure 1, Pass@K), RQ3 (Figure 2), T3 (Table 3),
REC (the recipe's decisions). `trained` rows apply only to models this DAG trains (sources sft / grpo, rq3-*);
`only` restricts a row to some eval sets (e.g. RetinaMNIST).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVAL = ("T2", "F1", "RQ3", "T3", "REC")  # everything that generates answers
MCQ = ("T2", "F1", "RQ3", "REC")  # MedMNIST multiple choice
AUTHORS = "armenjeddi/medbridgerl"
CARE_TRAINER = "GRPO-CARE/src/r1-v/src/open_r1/trainer/grpo_trainer_ref_ema.py"
CARE_SCRIPT = "GRPO-CARE/src/r1-v/src/open_r1/grpo.py"


@dataclass(frozen=True)
class Key:
    path: str  # dotted config path
    faithful: object  # the value that does what the paper / the authors did (None: no faithful value exists)
    default: object = None  # what the code does when the key is absent


@dataclass(frozen=True)
class Row:
    id: str
    topic: str
    paper: str
    authors: str
    package: str
    keys: tuple[Key, ...] = ()
    touches: tuple[str, ...] = EVAL
    trained: str | None = None  # "grpo" | "sft": only models the DAG trains that way
    only: tuple[str, ...] = field(default=())  # eval sets the row is limited to (empty: all)


LEDGER: tuple[Row, ...] = (
    # ---- evaluation (RQ2, RQ3, Table 3, recipe) ----
    Row(
        "eval-prompt",
        "Evaluation prompt",
        "Outputs constrained to <think> and <answer> tags; no prompt text given.",
        "inference.py `build_prompt_with_tags`: question, options, tag instructions (typo included).",
        "The authors' prompt verbatim (prompts.py).",
        (Key("evaluate.prompt", "eval", "eval"),),
    ),
    Row(
        "chat-template",
        "Chat template",
        "Silent.",
        "inference.py `QwenVLPredictor.generate_once`: `apply_chat_template(add_generation_prompt=False)`, so the "
        "assistant turn is never opened (a bug).",
        "Assistant turn opened (`add_generation_prompt=True`); no key: the closed turn is a bug, not a choice.",
    ),
    Row(
        "eval-backend",
        "Generation engine",
        "Silent.",
        "inference.py `QwenVLPredictor`: transformers `generate`, one sample per call.",
        "vLLM in the paper config (speed); HF transformers in the tiny profile; same sampling settings.",
        (Key("evaluate.backend", "hf"),),
    ),
    Row(
        "processor",
        "Processor per step",
        "Silent.",
        "inference.py `QwenVLPredictor.__init__` and linprobe.py `main`: `AutoProcessor.from_pretrained` of the model "
        f"itself; {CARE_TRAINER} `__init__`: Qwen/Qwen2.5-VL-7B-Instruct's processor when the model id contains "
        '"octomed", else the model\'s own.',
        "Per step, as the authors: a role's `processor` override applies to the steps in `processor_steps` "
        "(evaluate, probe, train; default all). Paper config: OctoMed (`sft`) evaluates and is probed with its own "
        "processor and trains (`ours`, the RQ3 grid) with Qwen2.5-VL-7B-Instruct's; Med-R1 and `ours_released` "
        "keep an override at every step (choices: Med-R1's folders may lack a processor; the released checkpoint's "
        "training used Qwen's).",
        touches=("T1", *EVAL),
    ),
    Row(
        "greedy-acc1",
        "Acc@1",
        "The text: Accuracy@1 under greedy decoding. The numbers: every checkable Table 2 cell is c / (N x 16), the "
        "mean accuracy of the 16 samples (the unbiased Pass@1): BreastMNIST base/sft/rl 54.99/79.17/69.79 = "
        "739/1064/938 of 1344 = 84 x 16 (greedy on 84 items gives k/84: 54.76 or 55.95, never 54.99); RetinaMNIST "
        "20.19/22.19/20.62 = 323/355/330 of 1600 = 100 x 16; DermaMNIST fits 161 x 16.",
        "Not in the public code (inference.py only samples: k draws per item).",
        "`sampled` (the numbers): the mean accuracy of each item's n samples, in Table 2, the comparison, Figure 2, "
        "the claims and the recipe's gap alike; one greedy answer per item is always generated and shown beside it "
        "(Table 2's second row, `acc1_greedy` in metrics). Table 3 stays greedy (one answer per item; its cells are "
        "k/200).",
        (Key("evaluate.acc1", "sampled", "sampled"),),
        touches=("T2", "RQ3", "REC"),
    ),
    Row(
        "sampling",
        "Sampling for Pass@K",
        "n samples, temperature and top-p (values lost in the text extraction); K up to 16.",
        "inference.py `main` defaults: k 16, temperature 0.7, top_p 0.9, top_k 0 (not passed, so the checkpoint's "
        "generation_config.json decides it, as it does repetition_penalty), max_new_tokens 2048; seed 123 + 1000 x "
        "row + sample, reset before every call (`eval_one_row`).",
        "n 16, temperature 0.7, top_p 0.9, top_k 0 (off), repetition_penalty 1.0, 2048 new tokens, all explicit from "
        "`evaluate` for both backends; the checkpoint's generation_config.json is never applied (Qwen2.5-VL's top_k 1 "
        "and top_p 0.001 would make the samples near-greedy; set top_k 1 and repetition_penalty 1.05 to mimic what "
        "the authors' call inherits from such a file). Seeds from the config `seed` per batch/request (one engine "
        "seed on vLLM's CPU build), so samples are reproducible but not the authors' random streams.",
        (
            Key("evaluate.n_samples", 16),
            Key("evaluate.temperature", 0.7, 0.7),
            Key("evaluate.top_p", 0.9, 0.9),
            Key("evaluate.top_k", None, 0),
            Key("evaluate.repetition_penalty", None, 1.0),
            Key("evaluate.max_new_tokens", 2048, 2048),
        ),
        touches=("F1", "RQ3", "REC"),
    ),
    Row(
        "passk-estimator",
        "Pass@K estimator",
        '"the probability that at least one of K independent samples is correct".',
        "inference.py `eval_one_row`: draws exactly k samples and counts any correct; one K per run. Unbiased for "
        "that K, only noisier than the estimator below.",
        "The unbiased estimator 1 - C(n-c,K)/C(n,K) from n = 16 samples, every K from one run (score/passk.py).",
        touches=("F1", "RQ3", "REC"),
    ),
    Row(
        "answer-extraction",
        "Answer extraction",
        "The predicted choice is verified with Qwen2.5-VL-32B-Instruct.",
        "inference.py `parse_mcq_letter` / `extract_answer_tag`: the FIRST closed <answer> tag (`re.search`), else an "
        "unclosed tag's first line, then `answer:/final:` + letter, then the first standalone capital.",
        "The same order, first tag (score/extract.py); `last` reads the last tag, as the GRPO reward does.",
        (Key("evaluate.answer_tag", "first", "first"),),
    ),
    Row(
        "judge-scope",
        "Judge scope",
        "Correctness of the predicted choice verified with Qwen2.5-VL-32B-Instruct (how, not said).",
        "No judge in the public code.",
        "`vlm`: the 32B judge re-decides every response without a clean closed tag (method other than `tag`; "
        "`judge_scope: all` re-reads every response, about 17 calls per item); verdicts kept beside the metrics, "
        "whose `judge_calls` and `judge_changed` count how many answers each setting re-read and changed (a test "
        "with a stand-in judge shows `all` changing a clean-tag answer `unclear` leaves). `rule`: extraction only "
        "(tiny profile).",
        (Key("evaluate.judge", "vlm", "rule"), Key("evaluate.judge_scope", None, "unclear")),
    ),
    Row(
        "image-resolution",
        "Image resolution",
        "MedMNIST at 224 x 224.",
        "inference.py `main`: min_pixels 1280*28*28 (~1 M pixels), so 224 px images are upsampled for evaluation; "
        f"{CARE_SCRIPT} `make_conversation_from_jsonl`: GRPO at max_pixels 802816, min_pixels 3136, so 224 px "
        "images train at native size. Theirs, kept.",
        "Evaluation at the authors' bounds, GRPO at theirs; the same mismatch as the authors'.",
        (
            Key("evaluate.min_pixels", 1003520),
            Key("evaluate.max_pixels", 12845056),
            Key("train.grpo.max_pixels", 802816),
        ),
        touches=EVAL,
    ),
    # ---- MedMNIST items ----
    Row(
        "balanced-subsets",
        "Balanced test subsets",
        '"we evaluate on balanced subsets of the official test splits" (size unstated).',
        "Not in the public code.",
        "All of the smallest class and as many of each other class, seeded (no `mcq.per_class`: the paper config). "
        "The paper's numbers say so: every Table 1 cell is k/N with N = classes x the smallest test class "
        "(BreastMNIST 68/84, 84 = 2 x 42; DermaMNIST 161 = 7 x 23; RetinaMNIST 100 = 5 x 20; OCTMNIST 1000 = "
        "4 x 250; BloodMNIST 1944 = 8 x 243; PathMNIST 3051 = 9 x 339; PneumoniaMNIST 468 = 2 x 234), and Table 2's "
        "cells fit the same N x 16. The same subsets serve Tables 1, 2 and Figure 1 (the probe's test set is the MCQ "
        "images). `mcq.per_class` caps each class (the tiny profile; 100 gave OCTMNIST 400, not 1000).",
        (Key("mcq.balance", "equal", "equal"), Key("mcq.per_class", None)),
        touches=("T1", *MCQ),
    ),
    Row(
        "chestmnist-rule",
        "ChestMNIST as one answer",
        "Silent (ChestMNIST is multi-label).",
        "Not in the public code.",
        'Images with exactly one finding, plus images with no finding as a 15th class "no finding" '
        "(`with_no_finding`): inferred from Table 1's ChestMNIST denominator 315 = 15 x 21, which 15 classes of 21 "
        "fit and 14 classes cannot (315 / 14 = 22.5), an inference, not a statement; `findings_only` keeps the 14 "
        "single findings (the tiny profile: its synthetic twin has no image without a finding). Images with several "
        "findings are never items; the probe is 15- (or 14-) way on the same images. Table 2's ChestMNIST cells "
        "(8.70/13.22/8.03) fit neither 315 x 16 nor 294 x 16 samples, so its RQ2 item count stays unknown.",
        (Key("mcq.chestmnist", "with_no_finding", "with_no_finding"),),
        touches=("T1", *MCQ),
        only=("chestmnist",),
    ),
    Row(
        "options",
        "Option texts and order",
        "C-option MCQ from the class labels.",
        "Not in the public code (inference.py reads options from the JSONL, letters in list order).",
        "medmnist INFO label names, in class-index order.",
        (Key("mcq.option_order", "fixed", "fixed"),),
        touches=MCQ,
    ),
    Row(
        "retina-options",
        "RetinaMNIST options",
        "Silent.",
        "Not in the public code.",
        'medmnist\'s labels "0".."4" as they are (INFO has no names); `grades` spells out the diabetic '
        "retinopathy grades.",
        (Key("mcq.retina_options", None, "digits"),),
        touches=MCQ,
        only=("retinamnist",),
    ),
    Row(
        "question-text",
        "Question text",
        "Silent.",
        "Not in the public code.",
        '"Which class best describes this <image kind> image?" (ChestMNIST: "Which finding is present ...").',
        touches=MCQ,
    ),
    # ---- RQ1 probe ----
    Row(
        "probe-features",
        "Probe features",
        "Frozen vision encoder, linear probe.",
        "linprobe.py `LinearProbe.encode`: the visual module's output (after the merger), mean-pooled.",
        "Merger output mean-pooled; `vit` takes the pre-merger ViT tokens.",
        (Key("probe.features", "merger", "merger"),),
        touches=("T1",),
    ),
    Row(
        "probe-augment",
        "Probe images",
        "Silent.",
        "linprobe.py `main`: train RandomResizedCrop(224, bicubic) + RandomHorizontalFlip, fresh every epoch; "
        "eval Resize(256, bicubic) + CenterCrop(224).",
        "The authors' transforms, features re-extracted every epoch (a GPU cost `medbridge plan` shows); `none`: "
        "cached features of the images as they are (the tiny profile).",
        (Key("probe.augment", "authors", "authors"),),
        touches=("T1",),
    ),
    Row(
        "probe-head",
        "Probe head and epoch",
        "Silent.",
        "linprobe.py: BatchNorm1d(affine=False, eps 1e-6; momentum left at PyTorch's 0.1) + Linear, SGD lr 0.1, "
        "momentum 0.9, wd 0, cosine, 20 epochs, batch 1024; prints the accuracy on its evaluation folder (the "
        "balanced test subset) every epoch and reports the last epoch's.",
        "The same head and schedule; BatchNorm momentum 0.1 and the last epoch's head scored on the test subset "
        "(the authors' evaluation folder is the balanced test subset; its per-epoch accuracy is kept as "
        "`test_curve`). `select: best_val` keeps the epoch best on MedMNIST's val split, `bn_momentum: null` a "
        "cumulative average (both in the tiny profile, whose few steps leave an exponential average biased). "
        "`logreg` is a cross-check.",
        (
            Key("probe.head", "sgd", "sgd"),
            Key("probe.epochs", 20, 20),
            Key("probe.lr", 0.1, 0.1),
            Key("probe.bn_momentum", 0.1, 0.1),
            Key("probe.select", "last", "last"),
        ),
        touches=("T1",),
    ),
    Row(
        "probe-train-set",
        "Probe training images",
        "Silent.",
        "linprobe.py: every image of the ImageFolder train split.",
        "All train images (paper config); `probe.train_per_class` caps them (tiny profile).",
        (Key("probe.train_per_class", None),),
        touches=("T1",),
    ),
    # ---- GRPO-CARE ----
    Row(
        "rl-prompt",
        "RL prompt",
        "Silent.",
        f"{CARE_SCRIPT} `main`: QUESTION_TEMPLATE after the question; upstream GRPO-CARE's multiple-choice line "
        '("Please provide only the single option letter ... within the <answer> </answer> tags.", its '
        "TYPE_TEMPLATE) is dropped, while the accuracy reward still matches the letter exactly.",
        "The same text (prompts.py); `letter_instruction: true` appends upstream's line. Either way TRL logs, per "
        "step, "
        "the share of rollouts whose last <answer> tag holds more than a letter (`rewards/answer_not_a_letter/mean`, "
        "a weight-0 metric in training_log.csv), so a reader sees how much reward the exact match withholds.",
        (Key("train.grpo.prompt", "rl", "rl"), Key("train.grpo.letter_instruction", False, False)),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "rewards",
        "GRPO rewards",
        "GRPO-style RL with a consistency-aware variant.",
        f"{CARE_SCRIPT} `accuracy_reward` (the LAST <answer> tag, `clean_text`, exact match) + `format_reward` "
        "(fullmatch); the length bonus exists, off (`--len_control false`).",
        "The same (train/rewards.py).",
        (Key("train.grpo.length_bonus", False, False),),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "care-span",
        "CARE answer span",
        "Silent.",
        f'{CARE_TRAINER} `compute_loss` / `get_thinking_answer_masks`: from the token after the last "<answer>"\'s '
        '"answer" (its ">") to eos - 3.',
        "The authors' span; `content` takes only the answer's own tokens (train/care.py).",
        (Key("train.grpo.care.span", "authors", "authors"),),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "care-statistics",
        "CARE statistics",
        "Silent.",
        f"{CARE_TRAINER} `compute_loss`: accurate / confident means over one device's batch (one prompt's 8 "
        "rollouts); clamp 0.95, margin 0.01, bonus 0.5, EMA 0.995 every 10 steps (scripts/octomed_7b_pmcvqa8k.sh).",
        "Means per group of num_generations, the same values; the reference's update: row care-ema.",
        (
            Key("train.grpo.care.conf_clamp", 0.95, 0.95),
            Key("train.grpo.care.conf_margin", 0.01, 0.01),
            Key("train.grpo.care.bonus_weight", 0.5, 0.5),
        ),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "care-ema",
        "CARE reference update",
        "GRPO-CARE: the confidence p is read from an EMA copy of the policy.",
        f"{CARE_TRAINER} via trainer/ema_trainer.py `moving_average`: ref = lerp(param, ref, 0.995) every 10 steps, "
        "written inside ZeRO-3 `GatheredParameters` without `modifier_rank`, which DeepSpeed discards on exit: every "
        "partitioned weight of the reference stayed the initial model's; only the small tensors ZeRO-3 keeps whole "
        "on every rank (at most stage3_param_persistence_threshold elements: norms, biases), not gathered there, "
        "moved.",
        "Frozen (the initial model throughout) by default: the reported numbers were made with that (nearly) "
        "initial reference, so the authors' effective behaviour is the faithful one, not the text's; frozen also "
        "keeps the norms and biases that moved in theirs. `ema` moves the whole reference as the paper describes "
        "(TRL's SyncRefModelCallback formula, one parameter pair gathered at a time and kept with modifier_rank=0; "
        "train/care.py `ema_update`).",
        (
            Key("train.grpo.care.ema", "frozen", "frozen"),
            Key("train.grpo.care.ema_decay", 0.995, 0.995),
            Key("train.grpo.care.ema_every", 10, 10),
        ),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "trl-knobs",
        "TRL defaults the authors did not have",
        "Silent.",
        f"{CARE_TRAINER} `__init__`: rollouts from HF `generate` with a fresh GenerationConfig (top_k 50 and "
        "repetition_penalty 1.0 by default; transformers may fill default-valued fields from the checkpoint's "
        "generation_config.json, not checked here); the loss has no importance weights.",
        "top_k 50, repetition_penalty 1.0, min_p none, TRL's vLLM importance-sampling correction off: all set in "
        "train/grpo.py `rollout_settings`.",
        (
            Key("train.grpo.top_k", 50, 50),
            Key("train.grpo.repetition_penalty", 1.0, 1.0),
            Key("train.grpo.vllm_importance_sampling_correction", False, False),
        ),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "rollout-engine",
        "Rollout engine",
        "Silent.",
        "scripts/octomed_7b_pmcvqa8k.sh: `--use_vllm False` (HF generate).",
        "TRL's colocated vLLM in the paper config (speed), HF in the tiny profile; sampling as the row above.",
        (Key("train.grpo.use_vllm", False, False),),
        touches=("RQ3", "T2", "T3"),
        trained="grpo",
    ),
    Row(
        "rl-train-items",
        "RQ3 training items",
        "RL on the training split of OrganAMNIST, PathMNIST, OCTMNIST.",
        "Not in the public code.",
        "Up to mcq.train_per_class items per class of the train split (1000 in the paper config, a choice), one epoch.",
        (Key("mcq.train_per_class", None),),
        touches=("RQ3", "T2"),
        trained="grpo",
    ),
    Row(
        "sft-bridge",
        "SFT bridge",
        "MSFT is OctoMed-7B.",
        "Not in the public code.",
        "The paper config evaluates OctoMed-7B; the tiny profile trains its own bridge (TRL SFTTrainer, "
        "MedVLThinker's recipe).",
        touches=("T1", *MCQ),
        trained="sft",
    ),
    # ---- Section 4 ----
    Row(
        "table3-source",
        "Table 3 items",
        "Six benchmarks as MCQs.",
        "export_eval_data_to_jsonl.py `main`: UCSC-VLAA/MedVLThinker-Eval (split test), options from its `options` "
        "field (`parse_options_field`).",
        "MedVLThinker-Eval rows by dataset_name; `hub` rebuilds items from each benchmark's raw dataset (closed "
        "questions as home-made yes/no or either/or MCQs). `medbridge vqa-counts` gives the items per source.",
        (Key("vqa.source", "medvlthinker", "hub"),),
        touches=("T3",),
    ),
    Row(
        "table3-size",
        "Table 3 item counts",
        "Silent.",
        "inference.py `--max_examples`: the first N rows of the export (over all benchmarks).",
        "A seeded draw of 200 per benchmark (every reported value but MMMU's is a multiple of 0.5 %); MMMU all 170.",
        (Key("vqa.max_items", None),),
        touches=("T3",),
    ),
    Row(
        "pmc-labelling",
        "PMC-VQA modality labels",
        "Qwen2.5-VL-32B classifies each question's modality (MRI, CT, ultrasound, X-ray, microscopy, "
        "dermatology, OCT, ... or none).",
        "Not in the public code.",
        'The 32B judge labels each question (its prompt: data/pmc.py); "fundus" fills the "...".',
        (Key("vqa.pmc.labeller", "vlm"),),
        touches=("T3",),
        trained="grpo",
    ),
    Row(
        "pmc-balance",
        "PMC-VQA balanced subset",
        "A modality-balanced subset of 8,000 questions.",
        "Not in the public code (the training JSONL is an input of scripts/octomed_7b_pmcvqa8k.sh).",
        "Quotas as equal as the categories allow (a small category gives all it has, the rest is shared: "
        "water-filling), `none` one more stratum, seeded (data/pmc.py).",
        (Key("vqa.pmc.subset_size", 8000),),
        touches=("T3",),
        trained="grpo",
    ),
    Row(
        "med-r1",
        "Med-R1 row",
        "Med-R1-2B reported in Table 3 (which checkpoint, not said).",
        "Not in the public code.",
        "yuxianglai117/Med-R1 keeps one Qwen2-VL-2B checkpoint per modality (VQA_CT, ...) and per task in "
        "sub-folders; a model role names one (`subfolder`), downloaded, fingerprinted and loaded as that folder. "
        "Choice: the cross-task disease-diagnosis checkpoint (VQA_DD): a task checkpoint is trained on every "
        "modality, where a modality checkpoint sees one, and Table 3's benchmarks mix modalities and are mostly "
        "diagnosis questions. The folder name follows the repo's VQA_<task> naming (unverified offline; "
        "`download-model` lists the repo's folders with weights if it differs). Key: `models.med_r1.subfolder`.",
        touches=("T3",),
    ),
    Row(
        "recipe-split",
        "Recipe diagnosis split",
        'Support@K and Acc@1 "on a small validation set".',
        "Not in the public code.",
        "Key `recipe.split` (val, as the paper): evaluate.models answer each dataset's balanced validation subset "
        "(eval sets `<dataset>-val`, the same per-class draw as the test subsets) and the decisions come from those; "
        '`recipe.per_class` sizes them (paper config: 100 per class, capped by the smallest class: "small" is '
        "not sized in the paper).",
        (Key("recipe.split", "val", "val"), Key("recipe.per_class", None)),
        touches=("REC",),
    ),
    Row(
        "recipe-tau",
        "Recipe threshold",
        "A target reliability threshold tau, value not given.",
        "Not in the public code.",
        "tau 0.5, K 16.",
        (Key("recipe.tau", None, 0.5),),
        touches=("REC",),
    ),
)


def _get(cfg: dict, path: str, default):
    node = cfg
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def deviations(cfg: dict, rows=LEDGER) -> list[str]:
    """Ids of ledger rows where the config departs from the authors' value for some key."""
    return [
        r.id for r in rows if any(k.faithful is not None and _get(cfg, k.path, k.default) != k.faithful for k in r.keys)
    ]


def rows_for(part: str, evalset: str | None = None, trained: str | None = None) -> list[Row]:
    """Ledger rows that touch a number of `part` on `evalset` by a model trained (`sft`/`grpo`) by the DAG or not."""
    return [
        r
        for r in LEDGER
        if part in r.touches and (not r.only or evalset in r.only) and (r.trained is None or r.trained == trained)
    ]


def trained_by(cfg: dict, model: str) -> str | None:
    """`grpo` / `sft` for models this DAG trains (config roles of those sources, rq3-* models), else None."""
    from medbridge.artifacts.rq3 import model_spec

    if not cfg:  # no run config (comparison_frame called without one): no model is known to be trained here
        return None
    source = (model_spec(cfg, model) or {}).get("source")
    return source if source in ("sft", "grpo") else None


def render_markdown() -> str:
    def cell(text: str) -> str:  # tags like <answer> would vanish as HTML outside `code` spans
        parts = text.replace("|", "\\|").replace("\n", " ").split("`")
        return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))

    def keys(r: Row) -> str:
        if not r.keys:
            return "none"

        def value(v) -> str:  # as YAML writes it
            return str(v).lower() if isinstance(v, bool) else str(v)

        return "<br>".join(
            f"`{k.path}`" + (f" (authors: `{value(k.faithful)}`)" if k.faithful is not None else "") for k in r.keys
        )

    lines = [
        "# Fidelity ledger",
        "",
        "Every choice the paper leaves open or the package makes: what the paper says, what the authors' public code "
        f"does (github `{AUTHORS}`, read for facts, nothing copied), what this package does by default, and the "
        "config key that changes it (with the authors' value where there is one; `config/paper.yaml` uses it unless "
        "the row says why not). `comparison.csv` names, for each reproduced number, the rows that touch it "
        "(`ledger`) and those where the run's config departs from the authors' value (`ledger_deviations`).",
        "",
        "Parts: T1 Table 1 (probes), T2 Table 2 (Acc@1), F1 Figure 1 (Pass@K), RQ3 Figure 2, T3 Table 3, REC the "
        "recipe's decisions. Generated from `src/medbridge/fidelity.py` by `medbridge fidelity --out "
        "docs/FIDELITY.md`; edit the registry, not this file.",
        "",
        "| id | choice | paper | authors' code | package default | key | parts |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in LEDGER:
        parts = ", ".join(r.touches) + (f" ({r.trained}-trained models)" if r.trained else "")
        parts += f" ({', '.join(r.only)} only)" if r.only else ""
        lines.append(
            f"| `{r.id}` | {cell(r.topic)} | {cell(r.paper)} | {cell(r.authors)} | {cell(r.package)} | "
            f"{keys(r)} | {parts} |"
        )
    return "\n".join(lines) + "\n"
