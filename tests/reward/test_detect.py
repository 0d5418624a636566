"""Detection as the annotation page sees it: one score per caption word, bad input named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from reward.detect import WordScore, score
from reward.images import ImageError
from reward.model import RewardConfig, TokenRewardModel
from reward.tokens import CaptionTooLong
from reward.vlm import vlm_load
from reward.words import response_words

CAPTIONS = ["a red circle is left of a blue square.", "there are two stars.", "a large green triangle."]


@pytest.fixture
def reward_model(tiny_vlm_dir: Path) -> tuple[TokenRewardModel, object]:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    torch.manual_seed(1)
    return TokenRewardModel.build(vlm, RewardConfig(), base_model=str(tiny_vlm_dir)), processor


def test_word_scores_align_with_the_caption_words(reward_model, scene_images: list[Image.Image]) -> None:
    model, processor = reward_model
    scores = score(model, processor, scene_images, CAPTIONS)
    for caption, words in zip(CAPTIONS, scores, strict=True):
        assert [(w.text, w.start, w.end) for w in words] == response_words(caption)
        assert all(isinstance(w, WordScore) and 0.0 <= w.p_bad <= 1.0 for w in words)
    assert model.training  # left as it was found


def test_scores_do_not_depend_on_the_batch(reward_model, scene_images: list[Image.Image]) -> None:
    model, processor = reward_model
    together = score(model, processor, scene_images, CAPTIONS, batch_size=3)
    alone = score(model, processor, scene_images, CAPTIONS, batch_size=1)
    for row_together, row_alone in zip(together, alone, strict=True):
        assert [w.p_bad for w in row_together] == pytest.approx([w.p_bad for w in row_alone], abs=1e-5)


def test_empty_caption_gets_no_words_and_others_are_still_scored(reward_model, scene_images) -> None:
    model, processor = reward_model
    scores = score(model, processor, scene_images, ["", "  ", CAPTIONS[2]])
    assert scores[0] == [] and scores[1] == [] and len(scores[2]) == len(response_words(CAPTIONS[2]))


def test_over_long_caption_is_refused_with_its_index(reward_model, scene_images) -> None:
    model, processor = reward_model
    with pytest.raises(CaptionTooLong, match="caption 2 needs"):
        score(model, processor, scene_images, [CAPTIONS[0], "", "a red circle " * 300])


def test_bad_images_are_named_by_index(reward_model, scene_images, tmp_path: Path) -> None:
    model, processor = reward_model
    with pytest.raises(ImageError, match="image 1 is a int"):
        score(model, processor, [scene_images[0], 42], CAPTIONS[:2])
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match=r"image 1: .*broken.png"):
        score(model, processor, [scene_images[0], corrupt], CAPTIONS[:2])


def test_the_naive_binary_model_gives_every_word_its_whole_caption_verdict(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    torch.manual_seed(1)
    naive = TokenRewardModel.build(vlm, RewardConfig(objective="naive"), base_model=str(tiny_vlm_dir))
    torch.nn.init.normal_(naive.head.weight, std=1.0)  # so that positions would differ if read one by one
    for words in score(naive, processor, scene_images, CAPTIONS):
        assert len({w.p_bad for w in words}) == 1
