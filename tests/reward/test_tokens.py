"""Response words, model tokens and their alignment, for every architecture's processor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from reward.tokens import (
    CaptionTooLong,
    encode_responses,
    token_labels_from_words,
    word_scores_from_tokens,
)
from reward.vlm import CAPTION_PROMPT, prompt_text, vlm_load
from reward.words import response_words

RESPONSES = ["a red circle is left of a blue square.", "there are two small stars .", "big"]


def test_response_words_split_punctuation_into_words_of_their_own() -> None:
    text = "two red circles. a star's left, of 3!"
    assert [w for w, _, _ in response_words(text)] == [
        "two", "red", "circles", ".", "a", "star", "'", "s", "left", ",", "of", "3", "!"
    ]  # fmt: skip
    assert response_words("a red-ish circle.")[2:4] == [("-", 5, 6), ("ish", 6, 9)]


def test_word_labels_load_no_model_stack() -> None:
    """The web app labels corrections in every request process; torch there would cost ~300 MB each."""
    import subprocess
    import sys

    code = "import sys, reward.alignment, reward.words; print('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_a_token_is_bad_iff_it_overlaps_a_bad_word() -> None:
    offsets = [(0, 1), (2, 4), (4, 5), (6, 12), (12, 13)]  # "a", "re", "d", "circle", "."
    assert token_labels_from_words(offsets, [(2, 5)]) == [False, True, True, False, False]
    assert token_labels_from_words(offsets, []) == [False] * 5


def test_a_word_is_as_bad_as_its_worst_subword() -> None:
    words = response_words("a red circle.")
    offsets = [(0, 1), (1, 4), (4, 5), (6, 12), (12, 13)]  # the second token covers " re"
    scores = word_scores_from_tokens(words, offsets, [0.1, 0.2, 0.9, 0.3, 0.05])
    assert scores == [0.1, 0.9, 0.3, 0.05]


def test_response_tokens_follow_the_prompt_and_keep_their_offsets(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    _, processor = vlm_load(str(tiny_vlm_dir))
    encoding = encode_responses(processor, scene_images, RESPONSES, instruction=CAPTION_PROMPT)
    inputs, mask = encoding.model_inputs, encoding.response_mask
    assert mask.shape == inputs["input_ids"].shape == inputs["attention_mask"].shape
    for row, response in enumerate(RESPONSES):
        tokens = processor.tokenizer(response, add_special_tokens=False)["input_ids"]
        assert inputs["input_ids"][row][mask[row]].tolist() == tokens
        assert len(encoding.offsets[row]) == len(tokens)
        assert all(response[s:e].strip() for s, e in encoding.offsets[row])
        last = int(inputs["attention_mask"][row].sum())
        assert mask[row, last - len(tokens) : last].all() and not mask[row, last:].any()  # right padding
        prompt = processor(
            images=[scene_images[row]], text=[prompt_text(processor, CAPTION_PROMPT)], return_tensors="pt"
        )["input_ids"][0]
        assert torch.equal(inputs["input_ids"][row][: len(prompt)], prompt)


@pytest.fixture
def paligemma_processor(tiny_vlm_root: Path):
    """The processor of a saved tiny PaliGemma (the one architecture with a bidirectional prefix)."""
    from tiny_vlms import tiny_vlm_save

    directory = tiny_vlm_root / "paligemma"
    if not (directory / "config.json").is_file():
        tiny_vlm_save("paligemma", directory)
    return vlm_load(str(directory))[1]


def test_paligemma_reads_the_response_as_its_causal_suffix(
    paligemma_processor, scene_images: list[Image.Image]
) -> None:
    encoding = encode_responses(paligemma_processor, scene_images[:2], RESPONSES[:2], instruction=CAPTION_PROMPT)
    types = encoding.model_inputs["token_type_ids"]
    valid = encoding.model_inputs["attention_mask"].bool()
    assert torch.equal(types[valid].bool(), encoding.response_mask[valid])


def test_over_long_caption_names_its_index_and_the_limit(tiny_vlm_dir: Path, scene_images: list[Image.Image]) -> None:
    _, processor = vlm_load(str(tiny_vlm_dir))
    with pytest.raises(CaptionTooLong, match=r"caption 1 needs \d+ tokens.*at most 30"):
        encode_responses(
            processor, scene_images[:2], ["a star.", "a red circle " * 20], instruction=CAPTION_PROMPT, max_length=30
        )


def test_a_response_read_twice_is_marked_at_its_second_reading(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    _, processor = vlm_load(str(tiny_vlm_dir))
    once = encode_responses(processor, scene_images, RESPONSES, instruction=CAPTION_PROMPT)
    twice = encode_responses(processor, scene_images, RESPONSES, instruction=CAPTION_PROMPT, read_twice=True)
    assert once.first_reading_mask is None
    assert twice.offsets == once.offsets
    ids, mask, first = twice.model_inputs["input_ids"], twice.response_mask, twice.first_reading_mask
    eos = processor.tokenizer.eos_token_id
    for row, response in enumerate(RESPONSES):
        tokens = processor.tokenizer(response, add_special_tokens=False)["input_ids"]
        assert ids[row][first[row]].tolist() == ids[row][mask[row]].tolist() == tokens
        prompt_length = int((once.model_inputs["attention_mask"][row]).sum()) - len(tokens)
        # prompt, first reading, the end-of-sequence token, second reading, then right padding
        expected = [*once.model_inputs["input_ids"][row][:prompt_length].tolist(), *tokens, eos, *tokens]
        length = int(twice.model_inputs["attention_mask"][row].sum())
        assert ids[row][:length].tolist() == expected
        assert mask[row, length - len(tokens) : length].all() and not mask[row, length:].any()
        assert first[row, prompt_length : prompt_length + len(tokens)].all() and int(first[row].sum()) == len(tokens)


def test_paligemma_reads_both_readings_as_its_causal_suffix(
    paligemma_processor, scene_images: list[Image.Image]
) -> None:
    encoding = encode_responses(
        paligemma_processor, scene_images[:2], RESPONSES[:2], instruction=CAPTION_PROMPT, read_twice=True
    )
    types = encoding.model_inputs["token_type_ids"]
    valid = encoding.model_inputs["attention_mask"].bool()
    first_position = encoding.first_reading_mask.long().argmax(dim=1)
    suffix = torch.arange(types.shape[1])[None, :] >= first_position[:, None]
    assert torch.equal(types[valid].bool(), suffix[valid])


def test_the_length_limit_counts_both_readings(tiny_vlm_dir: Path, scene_images: list[Image.Image]) -> None:
    _, processor = vlm_load(str(tiny_vlm_dir))
    once = encode_responses(
        processor, scene_images[:1], ["a red circle is left of a blue square ."], instruction=CAPTION_PROMPT
    )
    length = int(once.model_inputs["attention_mask"].sum())
    with pytest.raises(CaptionTooLong, match=r"caption 0 needs \d+ tokens .*\(read twice\); .*at most"):
        encode_responses(
            processor,
            scene_images[:1],
            ["a red circle is left of a blue square ."],
            instruction=CAPTION_PROMPT,
            max_length=length + 1,
            read_twice=True,
        )
