"""Per-token rewards for PPO: word scores from a judge, normalised between baselines, put on tokens.

A judge scores words of a caption by character span: TLDR gives every word its P(good); the
verifier scores entity words (shape nouns) only. FiSAO turns such scores into rewards in two steps:

- Eq. 7, baselines: over labelled responses of the policy itself, the mean score of the correct
  words, S_c, and of the hallucinated words, S_h. They say what "typical right" and "typical wrong"
  look like on this judge's scale, whatever that scale is (a probability, a dot product).
- Eq. 8, reward: the score normalised between the two baselines, z = (s − (S_c + S_h)/2) / ((S_c − S_h)/2),
  so a typical correct word sits at z = +1 and a typical hallucinated one at z = −1; times the margin,
  clipped to a fixed range. A word scored as confidently as the typical correct one already earns the
  full reward: there is nothing to gain from pushing the judge's confidence further.
  (The text of FiSAO at hand gives Eq. 7 and 8 in words only; this is a reading of those words.)
- Per caption, the word rewards are averaged rather than summed by default (`ShapingConfig`): a sum
  pays for every extra word the judge likes, and PPO finds that at once.

The final PPO reward of token t adds the KL penalty to the reference policy:
r_t = shaped_t − β·(log π − log π_ref)(a_t | s_t).

Where a word's reward goes: on the word's last token (FG-RLHF puts each segment's reward on the
segment's final token). With γ = 1 every earlier token of the word still sees it in its return, and a
word's reward does not grow with the number of pieces the tokenizer happens to cut it into, as it
would if every piece carried it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import mean
from typing import Literal

import torch
from PIL import Image

from reward.data import LabelledCaption
from reward.tokens import Span
from shapeworld.parser import caption_parse

WordScores = list[tuple[int, int, float]]  # one caption: (char start, char end, score) per judged word
# A judge: the word scores of each caption of its image.
Judge = Callable[[list[Image.Image], list[str]], list[WordScores]]
# Shaped rewards of sampled captions: per caption, one reward per response token (its spans given).
TokenRewards = Callable[[list[Image.Image], list[str], list[list[Span]]], list[list[float]]]
# The span of a caption whose truth a judged word's score stands for: (caption, word start, word end) → span.
ClaimSpan = Callable[[str, int, int], Span]

# Baselines closer than this (on the judge's scale) cannot tell right from wrong: the reward becomes a step.
MIN_HALF_GAP = 1e-6


@dataclass(frozen=True)
class Baselines:
    """Eq. 7: the mean judge score of correct words and of hallucinated words in labelled own responses."""

    correct: float
    hallucinated: float
    correct_words: int = 0
    hallucinated_words: int = 0

    @property
    def separated(self) -> bool:
        """Whether the judge scores correct words higher on average (if not, its reward is only a step)."""
        return self.correct - self.hallucinated > 2 * MIN_HALF_GAP


# TLDR's P(good) ends, for a side the labelled responses never show (a captioner that never errs).
PROBABILITY_BASELINES = Baselines(correct=1.0, hallucinated=0.0)


@dataclass
class ShapingConfig:
    """Eq. 8: the reward of a word at a baseline (±margin), the range every reward is clipped to, and how a
    caption's word rewards add up.

    `per_caption` "mean" divides each word's reward by the number of judged words in its caption, so a
    caption earns its mean word reward, within ±clip whatever its length. "sum" (each word its full
    reward) lets PPO earn more by saying more: on the built-in captioner it tripled caption length
    within two minutes, repeating clauses of words the judge likes, and hallucinated more.
    """

    margin: float = 1.0
    clip: float = 1.0
    per_caption: Literal["mean", "sum"] = "mean"


def spans_overlap(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def labelled_word_scores(
    word_scores: list[WordScores], examples: list[LabelledCaption], *, claim_span: ClaimSpan | None = None
) -> tuple[list[float], list[float]]:
    """Split judged words into (scores of correct words, scores of hallucinated words) by the labels.

    A judged word is hallucinated iff a bad word lies in the span its score stands for: the word
    itself, or (`claim_span`) the whole phrase a judge scored through it.
    """
    correct, hallucinated = [], []
    for words, example in zip(word_scores, examples, strict=True):
        for start, end, value in words:
            span = claim_span(example.caption, start, end) if claim_span else (start, end)
            is_bad = any(spans_overlap(span, bad) for bad in example.bad_spans)
            (hallucinated if is_bad else correct).append(value)
    return correct, hallucinated


def entity_phrase_span(caption: str, start: int, end: int) -> Span:
    """The noun phrase a verifier scores through its noun: from the phrase's first word to the noun.

    The verifier judges "a blue circle" as one claim, so the phrase is wrong when "blue" is, though
    the noun itself is right.
    """
    parse = caption_parse(caption)
    for phrase in parse.phrases:
        if tuple(parse.words[phrase.noun][1:3]) == (start, end):
            return parse.words[phrase.start][1], end
    return start, end


def baselines_estimate(
    correct: list[float], hallucinated: list[float], *, default: Baselines | None = None
) -> Baselines:
    """Eq. 7: S_c and S_h as pooled means over the labelled words.

    A side without any word takes `default`'s value; without a default that is an error naming the
    side, since a judge's scale cannot be guessed.
    """
    sides = {}
    for name, scores in (("correct", correct), ("hallucinated", hallucinated)):
        if scores:
            sides[name] = mean(scores)
        elif default is not None:
            sides[name] = getattr(default, name)
        else:
            raise ValueError(
                f"no {name} words among the labelled captions, so the reward has no {name} baseline (Eq. 7): "
                f"give more scenes or corrections"
            )
    return Baselines(sides["correct"], sides["hallucinated"], len(correct), len(hallucinated))


def baselines_from_labelled(
    judge: Judge,
    examples: list[LabelledCaption],
    *,
    default: Baselines | None = None,
    claim_span: ClaimSpan | None = None,
) -> Baselines:
    """Eq. 7 on the judge's scores of labelled own responses (parser labels or annotators' corrections)."""
    scores = judge([e.image for e in examples], [e.caption for e in examples])
    correct, hallucinated = labelled_word_scores(scores, examples, claim_span=claim_span)
    return baselines_estimate(correct, hallucinated, default=default)


def reward_normalise(score: float, baselines: Baselines, shaping: ShapingConfig) -> float:
    """Eq. 8 without the KL term: margin·z clipped to ±clip, z = +1 at S_c and −1 at S_h.

    Baselines in the wrong order (a judge that cannot tell on this data) collapse to a step at their
    midpoint: higher still means better, and `Baselines.separated` says so in the statistics.
    """
    middle = (baselines.correct + baselines.hallucinated) / 2
    half_gap = max((baselines.correct - baselines.hallucinated) / 2, MIN_HALF_GAP)
    z = (score - middle) / half_gap
    return max(-shaping.clip, min(shaping.clip, shaping.margin * z))


def token_rewards_from_words(token_spans: list[Span], word_rewards: WordScores) -> list[float]:
    """Each word's reward on the last response token that overlaps it; a word no token covers is lost."""
    rewards = [0.0] * len(token_spans)
    for start, end, value in word_rewards:
        covering = [k for k, span in enumerate(token_spans) if spans_overlap(span, (start, end))]
        if covering:
            rewards[covering[-1]] += value
    return rewards


def reward_on_last_token(n_tokens: int, value: float) -> list[float]:
    """A whole-caption reward on the caption's last token (its end token), the rest 0."""
    return [0.0] * (n_tokens - 1) + [value] if n_tokens else []


def judged_token_rewards(judge: Judge, baselines: Baselines, shaping: ShapingConfig) -> TokenRewards:
    """Token-level rewards (TLDR tokens, or verifier entities): each judged word's Eq. 8 reward on its last token
    (divided by the caption's number of judged words, see `ShapingConfig.per_caption`).

    A caption with no word at all describes nothing and gets the lowest reward; without that an empty
    caption, at 0, would beat every caption with one error in it.
    """

    def rewards(images: list[Image.Image], captions: list[str], token_spans: list[list[Span]]) -> list[list[float]]:
        scored = judge(images, captions)
        out = []
        for caption, spans, words in zip(captions, token_spans, scored, strict=True):
            if not caption.strip():
                out.append(reward_on_last_token(len(spans), -shaping.clip))
                continue
            share = 1.0 / max(len(words), 1) if shaping.per_caption == "mean" else 1.0
            shaped = [(start, end, share * reward_normalise(value, baselines, shaping)) for start, end, value in words]
            out.append(token_rewards_from_words(spans, shaped))
        return out

    return rewards


def sentence_rewards(judge: Judge, baselines: Baselines, shaping: ShapingConfig) -> TokenRewards:
    """The whole-caption baseline: the worst word's Eq. 8 reward, on the last token.

    A caption is good iff every word is (TLDR's response-level verdict), so its one scalar is its worst
    word's; unlike P(all good), that does not fall with every extra correct word. Same baselines and
    scale as the token rewards, so the two differ only in where (and how finely) reward is given.
    """

    def rewards(images: list[Image.Image], captions: list[str], token_spans: list[list[Span]]) -> list[list[float]]:
        scored = judge(images, captions)
        out = []
        for caption, spans, words in zip(captions, token_spans, scored, strict=True):
            worst = min((reward_normalise(v, baselines, shaping) for _, _, v in words), default=-shaping.clip)
            out.append(reward_on_last_token(len(spans), worst if caption.strip() else -shaping.clip))
        return out

    return rewards


def tldr_judge(reward_model, processor) -> Judge:
    """TLDR as a judge: every word's P(good) = 1 − p_bad (a word is as bad as its worst token)."""
    from reward.detect import score

    def judge(images: list[Image.Image], captions: list[str]) -> list[WordScores]:
        scored = score(reward_model, processor, images, captions, batch_size=64)
        return [[(w.start, w.end, 1.0 - w.p_bad) for w in words] for words in scored]

    return judge


def verifier_judge(verifier) -> Judge:
    """The image-text verifier as a judge: entity words only, higher = more likely in the image."""
    from training.verifier import entity_scores

    def judge(images: list[Image.Image], captions: list[str]) -> list[WordScores]:
        return [[(s, e, float(v)) for s, e, v in row] for row in entity_scores(verifier, images, captions)]

    return judge


def rewards_with_kl(
    shaped: torch.Tensor, log_probs: torch.Tensor, ref_log_probs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """r_t = shaped_t − β·(log π − log π_ref)(a_t | s_t) (Eq. 8's KL term, FG-RLHF's r_t); all [B, N].

    Returns (r, the per-token KL estimate), both 0 outside the response.
    """
    kl = (log_probs - ref_log_probs) * mask
    return (shaped - kl_coef * kl) * mask, kl


def rewards_tensor(rewards: list[list[float]], mask: torch.Tensor) -> torch.Tensor:
    """Per-caption token rewards placed at their response positions: [B, N], 0 elsewhere."""
    placed = torch.zeros(mask.shape, dtype=torch.float32)
    for row, values in enumerate(rewards):
        if len(values) != int(mask[row].sum()):
            raise ValueError(f"caption {row}: {len(values)} rewards for {int(mask[row].sum())} response tokens")
        placed[row, : len(values)] = torch.tensor(values, dtype=torch.float32)
    return placed.to(mask.device)
