"""Likelihood optimisation for free (TLDR §5.4): the reward model's LoRA, merged back into the captioner.

Training TLDR tunes the backbone's projector and decoder with LoRA to tell good tokens from bad;
dropping the head and merging that LoRA into the captioner (LM head kept) at a fraction
τ = α_infer / α_train of its strength nudges the captioner's own likelihoods towards grounded words.
The paper found τ = 0.25 helped most and τ = 1 can break the model.
"""

from __future__ import annotations

from pathlib import Path

from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import PreTrainedModel, ProcessorMixin

from reward.evaluate import held_out_scenes
from reward.model import reward_model_manifest
from reward.vlm import captions_generate, vlm_load
from shapeworld.hallucination import captioner_rates

TAUS = (0.0, 0.1, 0.25, 0.5, 1.0)


def captioner_merge(reward_dir: Path, tau: float) -> tuple[PreTrainedModel, ProcessorMixin]:
    """The reward model's backbone with its LoRA merged at scale τ (its LM head untouched, its head dropped)."""
    base_model = reward_model_manifest(reward_dir)["base_model"]
    vlm, processor = vlm_load(base_model)
    adapted = PeftModel.from_pretrained(vlm, reward_dir)
    for module in adapted.modules():
        if isinstance(module, LoraLayer):
            for adapter in module.scaling:
                module.scaling[adapter] *= tau  # α_infer = τ·α_train
    return adapted.merge_and_unload().eval(), processor


def likelihood_experiment(reward_dir: Path, *, taus: tuple[float, ...] = TAUS, n_scenes: int = 300) -> dict:
    """Exact hallucination rates and object recall of the merged captioner for every τ (τ = 0: unchanged)."""
    held_out = held_out_scenes(n_scenes)
    results = {}
    for tau in taus:
        captioner, processor = captioner_merge(reward_dir, tau)
        captions = captions_generate(captioner, processor, held_out.images, batch_size=64)
        results[str(tau)] = captioner_rates(held_out.scenes, captions)
    return {"n_scenes": n_scenes, "by_tau": results}
