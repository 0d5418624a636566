"""The built-in captioner goes through the same doors as any hub VLM: Auto classes, chat template."""

import random

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from shapeworld.grammar import VOCABULARY, caption_words, caption_write
from shapeworld.perturb import caption_perturb_any
from shapeworld.render import scene_render
from shapeworld.scene import WorldConfig, scene_sample
from shapeworld.tiny_vlm import (
    CAPTION_INSTRUCTION,
    IMAGE,
    correction_instruction,
    prompt_ids,
    tiny_vlm_build,
    tokenizer_build,
)
from tests.shapeworld.micro import MICRO


def _messages(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def built():
    return tiny_vlm_build(MICRO, seed=0)


@pytest.fixture(scope="module")
def saved(built, tmp_path_factory):
    model, processor = built
    directory = tmp_path_factory.mktemp("tiny_vlm")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def scenes():
    rng = random.Random(3)
    return [scene_sample(rng, WorldConfig()) for _ in range(4)]


def test_saved_captioner_loads_through_auto_classes_with_identical_logits(built, saved, scenes):
    model, _ = built
    loaded = AutoModelForImageTextToText.from_pretrained(saved).eval()
    loaded_processor = AutoProcessor.from_pretrained(saved)
    prompt = loaded_processor.apply_chat_template(_messages(CAPTION_INSTRUCTION), add_generation_prompt=True)
    images = [scene_render(s, size=MICRO.image_size) for s in scenes]
    inputs = loaded_processor(images=images, text=[prompt] * len(images), return_tensors="pt")
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"


def test_chat_template_prompt_holds_one_image_token_per_patch(built):
    _, processor = built
    prompt = processor.apply_chat_template(_messages(CAPTION_INSTRUCTION), add_generation_prompt=True)
    assert prompt == f"<bos>{IMAGE} {CAPTION_INSTRUCTION} answer :"
    image = scene_render(scene_sample(random.Random(0)), size=MICRO.image_size)
    ids = processor(images=[image], text=[prompt], return_tensors="pt")["input_ids"][0].tolist()
    assert ids.count(processor.image_token_id) == MICRO.image_tokens == 16
    assert ids == prompt_ids(processor, CAPTION_INSTRUCTION)
    assert processor.tokenizer.unk_token_id not in ids


def test_offsets_mapping_matches_the_worlds_word_spans(scenes):
    tokenizer = tokenizer_build()
    for scene in scenes:
        caption = caption_write(scene, rng=random.Random(1))
        encoded = tokenizer(caption, return_offsets_mapping=True, add_special_tokens=False)
        assert [tuple(span) for span in encoded["offset_mapping"]] == [(s, e) for _, s, e in caption_words(caption)]
        assert tokenizer.unk_token_id not in encoded["input_ids"]


def test_correction_instruction_uses_only_known_words(scenes):
    tokenizer = tokenizer_build()
    scene = scenes[0]
    perturbation = caption_perturb_any(scene, caption_write(scene), random.Random(0), n_changes=2)
    flagged = [w.text for w in perturbation.words if w.label == "hallucinated"]
    text = correction_instruction(perturbation.caption, flagged)
    assert text.startswith("fix the caption: ") and " look again at: " in text
    assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"]


def test_same_seed_builds_the_same_weights():
    first, _ = tiny_vlm_build(MICRO, seed=5)
    second, _ = tiny_vlm_build(MICRO, seed=5)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_embeddings_are_tied(built):
    model, _ = built
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_vocabulary_holds_every_caption_word():
    vocab = tokenizer_build().get_vocab()
    assert all(word in vocab for word in VOCABULARY)
