"""transformers `generate` backend: batched across questions, left padding, n samples per question in one call."""

from __future__ import annotations

from medbridge.data.mcq import load_item_images
from medbridge.generate import Completion, SamplingSettings, item_seed
from medbridge.generate.chat import chat_prompt, user_turn
from medbridge.models.registry import load


class HFBackend:
    def __init__(
        self,
        cfg: dict,
        model_name: str,
        device: str = "cpu",
        tensor_parallel_size: int | None = None,
        purpose: str = "generate",
    ):
        # tensor_parallel_size, purpose: vLLM's engine sizing; transformers puts the model on one device here
        self.model, self.processor, self.source = load(cfg, model_name, device)
        self.model.generation_config = neutral_generation_config(
            self.model.generation_config, self.processor.tokenizer.pad_token_id
        )
        self.batch_size = cfg["evaluate"]["batch_size"]
        self.pixels = _pixel_kwargs(cfg)
        self.device = device

    def _inputs(self, batch: list[dict], kind: str, cache: dict):
        texts = [chat_prompt(self.processor, it, kind) for it in batch]
        images = [load_item_images(it, cache) for it in batch]
        enc = self.processor(text=texts, images=images, return_tensors="pt", padding=True, **self.pixels)
        return enc.to(self.device)

    def _decode(self, out, prompt_len: int) -> list[str]:
        return self.processor.batch_decode(out[:, prompt_len:], skip_special_tokens=True)

    def generate(self, items: list[dict], settings: SamplingSettings, seed: int, progress: bool = True):
        import torch
        from tqdm import tqdm

        results, cache = [], {}
        batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        for batch in tqdm(batches, desc=f"generate {self.source.name}", disable=not progress):
            enc = self._inputs(batch, settings.prompt, cache)
            plen = enc["input_ids"].shape[1]
            with torch.inference_mode():
                greedy = self._decode(self.model.generate(**enc, **generate_kwargs(settings, sample=False)), plen)
                # One seed per batch, derived from its items' ids: reruns (and resumed shards) sample the same texts.
                torch.manual_seed(item_seed(seed, "|".join(it["id"] for it in batch)))
                sampled = (
                    []
                    if settings.n_samples == 0
                    else self._decode(self.model.generate(**enc, **generate_kwargs(settings, sample=True)), plen)
                )
            n = settings.n_samples
            results += [Completion(g, sampled[j * n : (j + 1) * n]) for j, g in enumerate(greedy)]
        return results

    def complete(self, images: list[list], prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy answers to user turns of images (possibly none) and a text: the judge's and the modality
        labeller's questions."""
        import torch

        out = []
        for i in range(0, len(prompts), self.batch_size):
            imgs, texts = images[i : i + self.batch_size], prompts[i : i + self.batch_size]
            chats = [user_turn(self.processor, im, p) for im, p in zip(imgs, texts)]
            vision = dict(images=imgs, **self.pixels) if any(imgs) else {}
            enc = self.processor(text=chats, return_tensors="pt", padding=True, **vision).to(self.device)
            with torch.inference_mode():
                gen = self.model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, repetition_penalty=1.0)
            out += self._decode(gen, enc["input_ids"].shape[1])
        return out


def _pixel_kwargs(cfg: dict) -> dict:
    ev = cfg["evaluate"]
    return {k: ev[k] for k in ("min_pixels", "max_pixels") if k in ev}  # routed to the image processor


def neutral_generation_config(own, pad_token_id: int | None = None):
    """A GenerationConfig with the checkpoint's token ids (eos, pad, bos) and none of its sampling defaults: every
    knob a call uses is then the one `generate_kwargs` passes (SamplingSettings), never the checkpoint's."""
    from transformers import GenerationConfig

    pad = own.pad_token_id if own.pad_token_id is not None else pad_token_id
    return GenerationConfig(eos_token_id=own.eos_token_id, pad_token_id=pad, bos_token_id=own.bos_token_id)


def generate_kwargs(settings: SamplingSettings, sample: bool) -> dict:
    """The explicit `generate` arguments of a greedy or a sampled call (top_k 0 = off in transformers)."""
    common = dict(max_new_tokens=settings.max_new_tokens, repetition_penalty=settings.repetition_penalty)
    if not sample:
        return common | dict(do_sample=False)
    return common | dict(
        do_sample=True,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=settings.top_k,
        num_return_sequences=settings.n_samples,
    )
