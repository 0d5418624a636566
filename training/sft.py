"""Supervised fine-tuning on corrections: the baseline that PPO with token-level rewards has to beat.

The same LoRA policy as PPO, trained with cross-entropy on the response tokens of (image, corrected
caption) pairs, i.e. the mean −log π of every token of the annotator's caption and its end token.
The loss is PPO's own log-probability (image tokens banned), so the two methods optimise one model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from PIL import Image

from training.policy import CaptionPolicy
from training.ppo import Progress, StopCheck, budget_check, budget_fraction, masked_mean


@dataclass
class SftConfig:
    """Batch size, learning rate and gradient clipping of supervised fine-tuning."""

    batch_size: int = 16
    lr: float = 5e-4
    max_grad_norm: float = 1.0


def sft_loss(log_probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the target tokens: mean −log π over the response tokens; [B, N] → scalar."""
    return -masked_mean(log_probs, mask)


def sft_train(
    policy: CaptionPolicy,
    pairs: list[tuple[Image.Image, str]],
    config: SftConfig,
    *,
    minutes: float | None,
    max_steps: int | None,
    seed: int = 0,
    on_progress: Progress | None = None,
    should_stop: StopCheck | None = None,
) -> dict:
    """Train `policy` in place on (image, target caption) pairs, in seeded shuffled epochs, until the budget ends."""
    budget_check(minutes, max_steps)
    if not pairs:
        raise ValueError("no (image, corrected caption) pairs to fine-tune on")
    should_stop = should_stop or (lambda: False)
    generator = torch.Generator().manual_seed(seed)
    adapter, _ = policy.trainable_parameters()
    optimizer = torch.optim.AdamW(adapter, lr=config.lr, weight_decay=0.0)
    start = time.monotonic()
    losses: list[float] = []
    queue: list[int] = []
    stopped = False
    while budget_fraction(time.monotonic() - start, len(losses), minutes=minutes, max_steps=max_steps) < 1.0:
        if should_stop():
            stopped = True
            break
        while len(queue) < min(config.batch_size, len(pairs)):
            queue += torch.randperm(len(pairs), generator=generator).tolist()
        chosen, queue = queue[: config.batch_size], queue[config.batch_size :]
        sequences = policy.teacher_forced([pairs[i][0] for i in chosen], [pairs[i][1] for i in chosen])
        log_probs, _ = policy(sequences, with_values=False)
        loss = sft_loss(log_probs, sequences.response_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(adapter, config.max_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        if on_progress is not None and (len(losses) % 5 == 0 or len(losses) == 1):
            fraction = budget_fraction(time.monotonic() - start, len(losses), minutes=minutes, max_steps=max_steps)
            on_progress(min(fraction, 1.0), f"step {len(losses)} loss {loss.item():.4f}")
    recent = losses[-10:]
    return {
        "steps": len(losses),
        "seconds": round(time.monotonic() - start, 1),
        "stopped_early": stopped,
        "first_loss": round(losses[0], 5) if losses else None,
        "final_loss": round(sum(recent) / len(recent), 5) if recent else None,
        "pairs": len(pairs),
    }
