"""Every backbone loads through `vlm_load`; missing models fail at once with a message that names them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from reward.vlm import CAPTION_PROMPT, ModelNotFound, captions_generate, image_token_ids, prompt_text, vlm_load


def test_tiny_vlm_loads_through_the_one_path(tiny_vlm_dir: Path) -> None:
    model, processor = vlm_load(str(tiny_vlm_dir))
    assert isinstance(model, PreTrainedModel) and isinstance(processor, ProcessorMixin)
    assert hasattr(model, "model") and model.config.get_text_config().hidden_size == 32


def test_unknown_path_raises_model_not_found_naming_it_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ModelNotFound, match=r"no model at var/models/x: run `python -m reward bootstrap`"):
        vlm_load("var/models/x")
    assert time.monotonic() - started < 1.0


def test_directory_without_config_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=str(tmp_path)):
        vlm_load(str(tmp_path))


def test_hub_id_not_cached_while_offline_raises_model_not_found_quickly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no local folder may be taken for the org name
    started = time.monotonic()
    with pytest.raises(ModelNotFound, match=r"nobody-here/tiny-vlm-that-does-not-exist.*hf download"):
        vlm_load("nobody-here/tiny-vlm-that-does-not-exist")
    assert time.monotonic() - started < 5.0


def test_prompt_ends_where_the_answer_starts(tiny_vlm_dir: Path) -> None:
    _, processor = vlm_load(str(tiny_vlm_dir))
    prompt = prompt_text(processor, CAPTION_PROMPT)
    assert CAPTION_PROMPT in prompt and processor.image_token in prompt


def test_captions_are_the_same_alone_or_in_a_padded_batch(tiny_vlm_dir: Path, scene_images: list[Image.Image]) -> None:
    model, processor = vlm_load(str(tiny_vlm_dir))
    batched = captions_generate(model, processor, scene_images, max_new_tokens=6, batch_size=3)
    alone = [captions_generate(model, processor, [image], max_new_tokens=6)[0] for image in scene_images]
    assert batched == alone and len(batched) == len(scene_images)
    banned = {processor.tokenizer.convert_ids_to_tokens(i) for i in image_token_ids(processor)}
    assert not any(token in caption for caption in batched for token in banned)


def test_sampling_with_a_seed_repeats(tiny_vlm_dir: Path, scene_images: list[Image.Image]) -> None:
    model, processor = vlm_load(str(tiny_vlm_dir))
    first = captions_generate(model, processor, scene_images, max_new_tokens=6, do_sample=True, seed=3)
    again = captions_generate(model, processor, scene_images, max_new_tokens=6, do_sample=True, seed=3)
    assert first == again
