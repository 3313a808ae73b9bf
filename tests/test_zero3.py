"""DeepSpeed ZeRO-3 for real, on CPU: `accelerate launch` with the paper's config/accelerate/zero3.yaml (bf16 off:
CPU training is float32) starts 2 processes that talk over gloo, with DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu).

Opt-in (`make test-zero3`): .venv has no deepspeed, so the launched processes run in a venv of the GPU lock
(envs/requirements-gpu.txt, ~11 GB: `python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install --require-hashes
--no-deps -r envs/requirements-gpu.txt`), named by MEDBRIDGE_DEEPSPEED_PYTHON. The first run builds DeepSpeed's
shared-memory comm op (a few minutes, cached in ~/.cache/torch_extensions); then each launch takes about a minute.
"""

import copy
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import consistent

ROOT = Path(__file__).resolve().parents[1]
DS_PYTHON = os.environ.get("MEDBRIDGE_DEEPSPEED_PYTHON")

pytestmark = [pytest.mark.zero3, pytest.mark.skipif(not DS_PYTHON, reason="opt-in: `make test-zero3` (GPU-lock venv)")]

# Run by each rank, on medbridge's own GRPO trainer (CARE with EMA) built under ZeRO-3.
DRIVER = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import deepspeed
    import torch
    import yaml
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus
    from PIL import Image

    from medbridge.train.care import answer_confidence, ema_update
    from medbridge.train.grpo import build_trainer

    cfg_path, items, out = sys.argv[1:4]
    trainer, processor = build_trainer(yaml.safe_load(Path(cfg_path).read_text()), "base", [items], Path(out) / "w")
    policy, ref = trainer.model, trainer.reward_funcs[-1].ref_model
    rank, gathered = deepspeed.comm.get_rank(), deepspeed.zero.GatheredParameters
    report = {"stage": trainer.accelerator.state.deepspeed_plugin.zero_stage,
              "partitioned": all(hasattr(p, "ds_id") for p in [*policy.parameters(), *ref.parameters()])}

    def whole(model):  # every parameter's whole value as a forward would see it
        out = []
        for p in model.parameters():
            if p.ds_status == ZeroParamStatus.AVAILABLE:  # resident (ZeRO-3 persistence): read in place
                out.append(p.data.detach().clone())
                continue
            with gathered([p]):
                out.append(p.data.detach().clone())
        return out

    # 1. one batched reference forward gives the p of one forward per rollout
    tok = processor.tokenizer
    prompts = [[{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", size, color)},
                                             {"type": "text", "text": "Which? A or B"}]}]
               for size, color in (((56, 56), (120, 30, 200)), ((112, 84), (9, 200, 40)))]
    texts = ["<think>x</think><answer>B</answer>", "<think>a much longer thought</think><answer>A</answer>"]
    comp = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    ref.eval()
    together = answer_confidence(ref, processor, prompts, comp, clamp=1.0)
    alone = torch.cat([answer_confidence(ref, processor, [p], [c], clamp=1.0) for p, c in zip(prompts, comp)])
    report["care_equal"] = bool(torch.allclose(together, alone, rtol=1e-5, atol=1e-6))
    report["care_p"] = together.tolist()

    # 2. the authors' moving_average pattern: gather what is not resident, update in place, no modifier_rank
    before = whole(ref)
    resident = [p.ds_status == ZeroParamStatus.AVAILABLE for p in ref.parameters()]
    for p in ref.parameters():
        fetch = [p] if p.ds_status == ZeroParamStatus.NOT_AVAILABLE else []
        with gathered(fetch, enabled=bool(fetch)):
            p.data.add_(1.0)
    report["authors_kept_is_resident"] = [not torch.equal(a, b) for a, b in zip(before, whole(ref))] == resident
    # and an update inside a gather without modifier_rank, on partitioned parameters (the policy's, not yet used by
    # any forward): discarded
    partitioned = [p for p in policy.parameters() if p.ds_status == ZeroParamStatus.NOT_AVAILABLE]
    before = whole(policy)
    for p in partitioned:
        with gathered([p]):
            p.data.add_(1.0)
    report["partitioned_tried"] = len(partitioned)
    report["gathered_update_kept"] = sum(not torch.equal(a, b) for a, b in zip(before, whole(policy)))

    # 3. ema_update under ZeRO-3 equals TRL's formula on the whole tensors
    torch.manual_seed(0)
    for p in policy.parameters():  # move the policy away from the reference (rank 0's noise, broadcast)
        with gathered([p], modifier_rank=0):
            if rank == 0:
                p.data.add_(torch.randn_like(p.data))
    pol0, ref0 = whole(policy), whole(ref)
    ema_update(policy, ref, 0.5)
    got = whole(ref)
    report["ema_equal_trl"] = all(torch.equal(g, r.mul(0.5).add(w, alpha=0.5)) for g, r, w in zip(got, ref0, pol0))
    report["ema_moved"] = sum(not torch.equal(g, r) for g, r in zip(got, ref0))
    report["n_params"] = len(got)
    Path(out, f"rank{rank}.json").write_text(json.dumps(report))
""")


@pytest.fixture(scope="module")
def zero3_run(tiny_cfg, tiny_model_dir, synthetic_dir, tmp_path_factory):
    """(config file, items file, root): the tiny model as `base`, GRPO-CARE with EMA every step, 2 steps."""
    from medbridge.data.mcq import make_items
    from medbridge.data.medmnist import npz_name
    from medbridge.io import write_jsonl

    if not Path(DS_PYTHON).is_file():
        pytest.fail(f"MEDBRIDGE_DEEPSPEED_PYTHON={DS_PYTHON} does not exist: make a venv of envs/requirements-gpu.txt")
    root = tmp_path_factory.mktemp("zero3")
    items = root / "items.jsonl"
    npz = synthetic_dir / npz_name("pneumoniamnist", 64)
    write_jsonl(items, make_items("pneumoniamnist", npz, "train", 10, seed=0))
    cfg = copy.deepcopy(tiny_cfg)
    cfg["run_name"] = "zero3"
    cfg["models"] = {"base": {"source": "local", "path": str(tiny_model_dir)}}
    cfg["evaluate"]["models"] = ["base"]
    cfg["train"]["grpo"].update(
        num_generations=4,
        batch_size=8,
        max_steps=2,
        max_completion_length=16,
        save_steps=1,
        care={**cfg["train"]["grpo"]["care"], "ema": "ema", "ema_every": 1},
    )
    cfg_path = root / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(consistent(cfg)))
    return cfg_path, items, root


def _launch(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    from medbridge.train.launch import free_port

    env = {
        **os.environ,
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        DS_PYTHON,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ROOT / "config/accelerate/zero3.yaml"),
        "--mixed_precision",
        "no",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(free_port()),
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def test_grpo_care_trains_under_zero3_and_saves_once(zero3_run):
    """`medbridge grpo` in 2 ZeRO-3 ranks: the work dir, checkpoints (every step), model folder and sidecar are made
    by the main process alone; the saved model is whole and loadable."""
    from medbridge.models.registry import check_local_dir

    cfg_path, items, root = zero3_run
    out = root / "models" / "rl"
    _launch(
        [
            "-m",
            "medbridge.cli",
            "grpo",
            "--config",
            str(cfg_path),
            "--init-model",
            "base",
            "--train-items",
            str(items),
            "--out",
            str(out),
        ]
    )
    check_local_dir(out)
    log = pd.read_csv(out / "training_log.csv")
    assert len(log) == 2 and "rewards/care_bonus/mean" in log.columns and "care/bonus_rate" in log.columns
    assert json.loads(Path(f"{out}.provenance.json").read_text())["config"]["train"]["grpo"]["care"]["ema"] == "ema"
    assert sorted(p.name for p in out.parent.iterdir()) == ["rl", "rl.provenance.json"]  # no work or temp dir left


def test_ema_and_care_reference_under_zero3(zero3_run):
    cfg_path, items, root = zero3_run
    out = root / "driver"
    out.mkdir()
    (root / "driver.py").write_text(DRIVER)
    _launch([str(root / "driver.py"), str(cfg_path), str(items), str(out)])
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rep in reports:
        assert rep["stage"] == 3 and rep["partitioned"]
        assert rep["care_equal"]  # one padded forward = one per rollout, on the partitioned reference
        assert rep["ema_equal_trl"] and rep["ema_moved"] == rep["n_params"]  # every pair moved, by TRL's formula
        # the authors' update: kept only where ZeRO-3 keeps the parameter resident (not gathered); inside a gather
        # without modifier_rank, on a partitioned parameter, discarded
        assert rep["authors_kept_is_resident"]
        assert rep["partitioned_tried"] > 0 and rep["gathered_update_kept"] == 0
    assert reports[0]["care_p"] == reports[1]["care_p"]
