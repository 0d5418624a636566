"""PPO's pieces give the numbers worked out by hand, and the loop learns what a planted reward asks for."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.training.conftest import planted_rewards, target_probability
from training.policy import CaptionPolicy, PolicyConfig
from training.ppo import (
    PpoConfig,
    budget_fraction,
    gae,
    group_baseline,
    policy_loss,
    ppo_train,
    value_loss,
    whiten,
)


def test_gae_with_gamma_one_follows_the_recursion_and_stops_at_the_end_of_each_caption():
    rewards = torch.tensor([[1.0, 0.0, 2.0], [1.0, 3.0, 99.0]])
    values = torch.tensor([[0.5, 1.0, 0.0], [1.0, 2.0, 99.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # Row 0: A2 = 2; A1 = (0 + 0 - 1) + 0.5 * 2 = 0; A0 = (1 + 1 - 0.5) + 0.5 * 0 = 1.5.
    # Row 1 ends after two tokens: A1 = 3 + 0 - 2 = 1; A0 = (1 + 2 - 1) + 0.5 * 1 = 2.5; the padding is 0.
    assert advantages.tolist() == [[1.5, 0.0, 2.0], [2.5, 1.0, 0.0]]
    assert returns.tolist() == [[2.0, 1.0, 2.0], [3.5, 3.0, 0.0]]


def test_group_baseline_subtracts_the_other_captions_mean_on_each_last_token():
    # Two images, two captions each: totals 3 and 1 for the first image, 4 and 0 for the second.
    shaped = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [True, True, True], [True, True, False]])

    relative = group_baseline(shaped, mask, 2)

    # Each caption's last token loses the other caption's total; every other token keeps its reward.
    assert relative.tolist() == [[1.0, 1.0, 0.0], [-2.0, 0.0, 0.0], [2.0, 2.0, 0.0], [0.0, -4.0, 0.0]]
    # So each caption's total becomes its lead over its image's other caption.
    assert (relative * mask).sum(dim=1).tolist() == [2.0, -2.0, 4.0, -4.0]
    assert group_baseline(shaped, mask, 1) is shaped


def test_a_rollout_must_hold_whole_groups_of_captions():
    with pytest.raises(ValueError, match="multiple of samples_per_image 3"):
        PpoConfig(rollout_batch_size=32, samples_per_image=3)


def test_whitening_uses_only_the_masked_positions_and_can_keep_the_mean():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    everything = torch.ones_like(x, dtype=torch.bool)
    std = math.sqrt(1.25)
    assert whiten(x, everything)[0].tolist() == pytest.approx([-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std], abs=1e-5)
    kept = whiten(x, everything, shift_mean=False)
    assert kept[0].tolist() == pytest.approx(
        [2.5 - 1.5 / std, 2.5 - 0.5 / std, 2.5 + 0.5 / std, 2.5 + 1.5 / std], abs=1e-5
    )
    padded = whiten(torch.tensor([[1.0, 3.0, 100.0, 100.0]]), torch.tensor([[True, True, False, False]]))
    assert padded[0].tolist() == pytest.approx([-1.0, 1.0, 0.0, 0.0], abs=1e-5)


def test_policy_loss_is_the_pessimistic_clipped_surrogate():
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.75, 0.25, 0.55]]))  # ratios 1.5, 0.5, 1.1
    advantages = torch.tensor([[1.0, 1.0, -1.0]])
    loss, clipped = policy_loss(new, old, advantages, torch.ones(1, 3, dtype=torch.bool), clip=0.2)
    # max(-1.5, -1.2) = -1.2 (clipped); max(-0.5, -0.8) = -0.5; max(1.1, 1.1) = 1.1.
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1) / 3, abs=1e-5)
    assert clipped.item() == pytest.approx(1 / 3)


def test_value_loss_takes_the_worse_of_the_clipped_and_unclipped_errors():
    values, old, returns = torch.tensor([[0.5, -0.1]]), torch.zeros(1, 2), torch.ones(1, 2)
    loss = value_loss(values, old, returns, torch.ones(1, 2, dtype=torch.bool), clip=0.2)
    # 0.5 is clipped to 0.2: max(0.25, 0.64) = 0.64; -0.1 moves less than 0.2: 1.21. Half their mean.
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21) / 2)


def test_the_budget_is_whichever_of_time_and_steps_runs_out_first():
    assert budget_fraction(30.0, 1, minutes=1.0, max_steps=4) == pytest.approx(0.5)
    assert budget_fraction(30.0, 3, minutes=None, max_steps=4) == pytest.approx(0.75)
    assert budget_fraction(90.0, 0, minutes=1.0, max_steps=None) == pytest.approx(1.5)


def test_a_planted_reward_for_one_word_makes_the_policy_say_it_more(planted_run):
    assert planted_run.stats["steps"] == 6
    assert planted_run.stats["updates"] == 6 * 4 * 2  # rollouts x epochs x minibatches
    assert planted_run.after > 1.3 * planted_run.before


def test_grouped_rollouts_sample_each_image_several_times_and_still_learn(captioner_dir: Path, world):
    _, images = world
    policy = CaptionPolicy.load(captioner_dir, PolicyConfig(max_new_tokens=4), seed=0)
    before = target_probability(policy, images)
    rollouts = []

    def rewards(batch_images, captions, token_spans):
        rollouts.append(batch_images)
        return planted_rewards(batch_images, captions, token_spans)

    config = PpoConfig(rollout_batch_size=32, minibatch_size=16, lr=3e-2, kl_coef=0.0, samples_per_image=4)
    ppo_train(policy, images, rewards, config, minutes=None, max_rollouts=6, seed=0)

    # Each rollout: 8 images, each in a run of 4 captions.
    for batch in rollouts:
        groups = [batch[i : i + 4] for i in range(0, 32, 4)]
        assert all(image is group[0] for group in groups for image in group)
        assert len({id(group[0]) for group in groups}) == 8
    assert target_probability(policy, images) > 1.3 * before


def test_should_stop_ends_the_run_early(captioner_dir: Path, world):
    _, images = world
    policy = CaptionPolicy.load(captioner_dir, PolicyConfig(max_new_tokens=3))
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2  # let the first rollout start, then stop inside its updates

    config = PpoConfig(rollout_batch_size=8, minibatch_size=4)
    stats = ppo_train(policy, images, planted_rewards, config, minutes=5.0, max_rollouts=100, should_stop=stop)
    assert stats["stopped_early"] is True
    assert stats["steps"] == 1 and stats["updates"] == 1
    assert stats["seconds"] < 60


def test_a_run_needs_a_budget_and_images(captioner_dir: Path, world):
    _, images = world
    policy = CaptionPolicy.load(captioner_dir)
    with pytest.raises(ValueError, match="needs a budget"):
        ppo_train(policy, images, planted_rewards, PpoConfig(), minutes=None, max_rollouts=None)
    with pytest.raises(ValueError, match="no images"):
        ppo_train(policy, [], planted_rewards, PpoConfig(), minutes=None, max_rollouts=1)
