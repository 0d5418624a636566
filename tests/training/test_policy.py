"""The policy samples what it scores, its reference is the untouched captioner, and it saves as a plain captioner."""

from __future__ import annotations

from pathlib import Path

import torch

from reward.vlm import captions_generate, image_token_ids, vlm_load
from reward.words import response_words
from training.policy import CaptionPolicy, PolicyConfig, log_probs_of, response_cut, response_text


def _base_log_probs(directory: Path, sequences) -> torch.Tensor:
    """log-probs of the response tokens under a freshly loaded captioner, no adapter anywhere."""
    model, processor = vlm_load(str(directory))
    width = sequences.response_ids.shape[1]
    with torch.no_grad():
        logits = model(**sequences.model_inputs, logits_to_keep=width + 1).logits[:, :-1]
    return log_probs_of(logits, sequences.response_ids, image_token_ids(processor), 1.0)


def test_a_response_is_cut_after_its_first_end_token():
    assert response_cut([5, 6, 2, 0, 0], [2]) == [5, 6, 2]
    assert response_cut([5, 6, 7], [2]) == [5, 6, 7]


def test_response_text_gives_each_token_its_characters_in_the_caption(captioner_dir: Path):
    tokenizer = vlm_load(str(captioner_dir))[1].tokenizer
    caption = "a red circle is left of two blue squares ."
    ids = tokenizer(caption, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    text, spans = response_text(tokenizer, ids)
    assert text == caption
    assert spans[:-1] == [(s, e) for _, s, e in response_words(caption)]
    assert spans[-1][0] == spans[-1][1]  # the end token adds no characters


def test_rollout_scores_what_it_sampled_and_starts_at_the_reference(captioner_dir: Path, world):
    _, images = world
    policy = CaptionPolicy.load(captioner_dir, PolicyConfig(max_new_tokens=6))
    rollout = policy.rollout(images[:4], seed=3)
    mask = rollout.sequences.response_mask
    assert rollout.log_probs.shape == rollout.ref_log_probs.shape == rollout.values.shape == mask.shape
    assert mask[:, 0].all() and (mask.long().diff(dim=1) <= 0).all()  # a prefix of each row
    assert [len(spans) for spans in rollout.token_spans] == mask.sum(dim=1).tolist()
    assert (rollout.log_probs[mask] < 0).all()
    # A fresh adapter changes nothing (LoRA's B starts at zero): π = π_ref, and V starts at 0.
    assert torch.allclose(rollout.log_probs, rollout.ref_log_probs, atol=1e-5)
    assert (rollout.values == 0).all()
    again = policy.rollout(images[:4], seed=3)
    assert again.captions == rollout.captions  # the seed decides the samples


def test_the_image_token_is_never_sampled_even_when_the_model_wants_it(captioner_dir: Path, world):
    _, images = world
    policy = CaptionPolicy.load(captioner_dir, PolicyConfig(max_new_tokens=8))
    (image_token,) = policy.banned
    head = policy.vlm.get_base_model().get_output_embeddings()

    def prefer_image_token(module, inputs, output):
        output[..., image_token] += 30.0
        return output

    handle = head.register_forward_hook(prefer_image_token)
    try:
        rollout = policy.rollout(images, seed=0)
    finally:
        handle.remove()
    sampled = rollout.sequences.response_ids[rollout.sequences.response_mask]
    assert image_token not in sampled.tolist()
    assert torch.isfinite(rollout.log_probs[rollout.sequences.response_mask]).all()


def test_the_reference_is_the_untouched_captioner_after_training(planted_run, captioner_dir: Path):
    base = _base_log_probs(captioner_dir, planted_run.probe)
    assert torch.allclose(planted_run.reference_log_probs, base, atol=1e-5)
    assert not torch.allclose(planted_run.policy_log_probs, base, atol=1e-3)  # the adapter did learn


def test_the_saved_policy_is_a_plain_captioner_with_the_adapter_merged_in(planted_run, world):
    _, images = world
    assert (planted_run.saved_dir / "config.json").is_file()
    assert not (planted_run.saved_dir / "adapter_config.json").exists()
    merged = _base_log_probs(planted_run.saved_dir, planted_run.probe)
    assert torch.allclose(merged, planted_run.policy_log_probs, atol=1e-4)
    model, processor = vlm_load(str(planted_run.saved_dir))
    captions = captions_generate(model, processor, images[:3], max_new_tokens=6)
    assert len(captions) == 3 and all(isinstance(c, str) for c in captions)
