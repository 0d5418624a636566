"""Reward shaping: Eq. 7 baselines, Eq. 8 normalisation and clipping, and where each word's reward lands."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from reward.data import LabelledCaption
from reward.model import TokenRewardModel
from reward.words import response_words
from training.rewards import (
    Baselines,
    ShapingConfig,
    baselines_estimate,
    baselines_from_labelled,
    entity_phrase_span,
    judged_token_rewards,
    labelled_word_scores,
    reward_normalise,
    reward_on_last_token,
    rewards_tensor,
    rewards_with_kl,
    sentence_rewards,
    tldr_judge,
    token_rewards_from_words,
)

BLANK = Image.new("RGB", (32, 32))
# "a bluish circle ." cut as a subword tokenizer would: a, blu, ish, circle, ., then the end token.
SUBWORD_SPANS = [(0, 1), (2, 5), (5, 8), (9, 15), (16, 17), (17, 17)]


def test_normalised_reward_is_plus_and_minus_the_margin_at_the_baselines_and_clipped_beyond():
    baselines, shaping = Baselines(correct=0.9, hallucinated=0.5), ShapingConfig(margin=1.0, clip=1.0)
    assert reward_normalise(0.9, baselines, shaping) == pytest.approx(1.0)
    assert reward_normalise(0.5, baselines, shaping) == pytest.approx(-1.0)
    assert reward_normalise(0.7, baselines, shaping) == pytest.approx(0.0)
    assert reward_normalise(0.8, baselines, shaping) == pytest.approx(0.5)
    assert reward_normalise(0.99, baselines, shaping) == pytest.approx(1.0)  # clipped
    assert reward_normalise(0.0, baselines, shaping) == pytest.approx(-1.0)  # clipped
    assert reward_normalise(0.8, baselines, ShapingConfig(margin=3.0, clip=1.0)) == pytest.approx(1.0)
    assert reward_normalise(0.9, baselines, ShapingConfig(margin=0.5, clip=1.0)) == pytest.approx(0.5)


def test_baselines_in_the_wrong_order_become_a_step_at_their_midpoint():
    inverted = Baselines(correct=0.4, hallucinated=0.6)
    assert not inverted.separated
    assert reward_normalise(0.55, inverted, ShapingConfig()) == 1.0
    assert reward_normalise(0.45, inverted, ShapingConfig()) == -1.0


def test_baselines_are_pooled_means_and_a_missing_side_needs_a_default():
    assert baselines_estimate([0.8, 1.0], [0.2]) == Baselines(0.9, 0.2, 2, 1)
    assert baselines_estimate([0.8], [], default=Baselines(1.0, 0.0)) == Baselines(0.8, 0.0, 1, 0)
    with pytest.raises(ValueError, match="no hallucinated words"):
        baselines_estimate([0.8], [])


def test_a_word_reward_lands_on_the_words_last_token():
    word_rewards = [(0, 1, 0.2), (2, 8, -1.0), (9, 15, 0.5), (30, 35, 9.0)]  # the last word has no token
    assert token_rewards_from_words(SUBWORD_SPANS, word_rewards) == [0.2, 0.0, -1.0, 0.5, 0.0, 0.0]
    assert reward_on_last_token(3, 2.0) == [0.0, 0.0, 2.0]
    assert reward_on_last_token(0, 2.0) == []


def _judge(images, captions):
    """A judge that finds "bluish" wrong and everything else right."""
    return [[(s, e, 0.0 if w == "bluish" else 1.0) for w, s, e in response_words(c)] for c in captions]


def test_token_rewards_normalise_every_judged_word_and_an_empty_caption_gets_the_lowest():
    summed = judged_token_rewards(_judge, Baselines(1.0, 0.0), ShapingConfig(per_caption="sum"))
    out = summed([BLANK, BLANK], ["a bluish circle .", ""], [SUBWORD_SPANS, [(0, 0)]])
    assert out == [[1.0, 0.0, -1.0, 1.0, 1.0, 0.0], [-1.0]]


def test_by_default_a_caption_earns_its_mean_word_reward_whatever_its_length():
    rewards = judged_token_rewards(_judge, Baselines(1.0, 0.0), ShapingConfig())
    short, long = "a circle .", "a circle . a circle . a circle ."
    out = rewards([BLANK] * 3, ["a bluish circle .", short, long], [SUBWORD_SPANS, *_word_spans(short, long)])
    assert out[0] == [0.25, 0.0, -0.25, 0.25, 0.25, 0.0]
    assert sum(out[1]) == pytest.approx(sum(out[2])) == pytest.approx(1.0)


def _word_spans(*captions: str) -> list[list[tuple[int, int]]]:
    return [[(s, e) for _, s, e in response_words(caption)] for caption in captions]


def test_sentence_reward_is_the_worst_word_on_the_last_token():
    rewards = sentence_rewards(_judge, Baselines(1.0, 0.0), ShapingConfig())
    out = rewards([BLANK, BLANK], ["a bluish circle .", "a circle ."], [SUBWORD_SPANS, [(0, 1), (2, 8), (9, 10)]])
    assert out == [[0.0, 0.0, 0.0, 0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]


def test_kl_penalty_is_subtracted_per_token():
    shaped = torch.tensor([[1.0, 0.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    rewards, kl = rewards_with_kl(
        shaped, torch.tensor([[-1.0, -2.0, 0.0]]), torch.tensor([[-1.5, -1.0, 0.0]]), mask, kl_coef=0.5
    )
    assert kl.tolist() == [[0.5, -1.0, 0.0]]
    assert rewards.tolist() == [[0.75, 0.5, 0.0]]


def test_rewards_must_match_the_response_tokens():
    mask = torch.tensor([[True, True, False]])
    assert rewards_tensor([[1.0, 2.0]], mask).tolist() == [[1.0, 2.0, 0.0]]
    with pytest.raises(ValueError, match="caption 0: 3 rewards for 2 response tokens"):
        rewards_tensor([[1.0, 2.0, 3.0]], mask)


def test_labels_split_judged_words_and_a_verifier_claim_covers_its_whole_phrase():
    caption = "a blue circle is left of a red square ."
    blue = caption.index("blue")
    example = LabelledCaption(BLANK, caption, ((blue, blue + 4),), "own")
    circle, square = caption.index("circle"), caption.index("square")
    nouns = [[(circle, circle + 6, 0.3), (square, square + 6, 0.8)]]
    assert labelled_word_scores(nouns, [example]) == ([0.3, 0.8], [])
    assert entity_phrase_span(caption, circle, circle + 6) == (0, circle + 6)
    assert labelled_word_scores(nouns, [example], claim_span=entity_phrase_span) == ([0.8], [0.3])


def test_baselines_from_labelled_captions_use_the_judges_scores():
    caption = "a bluish circle ."
    example = LabelledCaption(BLANK, caption, ((2, 8),), "correction")
    assert baselines_from_labelled(_judge, [example]) == Baselines(1.0, 0.0, 3, 1)


def test_tldr_judge_gives_every_word_a_probability(reward_dir: Path, world):
    _, images = world
    model, processor = TokenRewardModel.load(reward_dir)
    captions = ["a red circle is left of a blue square .", ""]
    scored = tldr_judge(model, processor)(images[:2], captions)
    assert [(s, e) for s, e, _ in scored[0]] == [(s, e) for _, s, e in response_words(captions[0])]
    assert all(0.0 <= p <= 1.0 for _, _, p in scored[0])
    assert scored[1] == []
