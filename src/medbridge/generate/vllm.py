"""vLLM backend (GPU): one `LLM.generate` over all prompts, greedy and sampled requests together, per-request seeds.

vLLM is an optional extra (`pip install medbridge[vllm]`), imported only when this backend is built. Request
building is plain Python (`build_requests`) so it is tested without a GPU.
"""

from __future__ import annotations

from medbridge import MedbridgeError
from medbridge.data.mcq import load_item_images
from medbridge.generate import Completion, SamplingSettings, item_seed
from medbridge.generate.chat import chat_prompt
from medbridge.models.registry import load_processor, resolve


def build_requests(processor, items: list[dict], settings: SamplingSettings, seed: int, pixels: dict | None = None):
    """Two requests per item (greedy, then n samples): (prompt dicts with multimodal data, sampling-param kwargs)."""
    prompts, params, cache = [], [], {}
    for it in items:
        prompt = {"prompt": chat_prompt(processor, it, settings.prompt),
                  "multi_modal_data": {"image": load_item_images(it, cache)}}  # fmt: skip
        if pixels:
            prompt["mm_processor_kwargs"] = pixels
        prompts += [prompt, prompt]
        params.append(dict(n=1, temperature=0.0, max_tokens=settings.max_new_tokens))
        if settings.n_samples == 0:  # greedy only (Table 3)
            prompts.pop()
            continue
        params.append(dict(n=settings.n_samples, temperature=settings.temperature, top_p=settings.top_p,
                           max_tokens=settings.max_new_tokens, seed=item_seed(seed, it["id"])))  # fmt: skip
    return prompts, params


class VLLMBackend:
    def __init__(self, cfg: dict, model_name: str, device: str = "cuda"):
        try:
            from vllm import LLM
        except ImportError as e:
            raise MedbridgeError(
                "evaluate.backend is vllm but vLLM is not installed; install the GPU extra "
                "(pip install 'medbridge[vllm]', or use the container) or set evaluate.backend: hf"
            ) from e
        ev = cfg["evaluate"]
        self.source = resolve(cfg, model_name)
        self.processor = load_processor(self.source)
        self.pixels = {k: ev[k] for k in ("min_pixels", "max_pixels") if k in ev}
        self.llm = LLM(
            model=self.source.path,
            revision=self.source.revision,
            tokenizer=self.source.processor_path,
            tokenizer_revision=self.source.processor_revision,
            trust_remote_code=self.source.trust_remote_code,
            dtype=self.source.dtype,
            seed=cfg["seed"],
            gpu_memory_utilization=ev.get("gpu_memory_utilization", 0.9),
            tensor_parallel_size=ev.get("tensor_parallel_size", 1),
            limit_mm_per_prompt={"image": 8},
        )

    def generate(self, items: list[dict], settings: SamplingSettings, seed: int, progress: bool = True):
        from vllm import SamplingParams

        prompts, params = build_requests(self.processor, items, settings, seed, self.pixels)
        outs = self.llm.generate(prompts, [SamplingParams(**p) for p in params], use_tqdm=progress)
        per = 1 if settings.n_samples == 0 else 2  # requests per item
        return [Completion(outs[per * i].outputs[0].text, [o.text for o in outs[per * i + 1].outputs] if per == 2 else [])
                for i in range(len(items))]  # fmt: skip
