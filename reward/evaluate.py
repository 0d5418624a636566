"""Evaluating a reward model: the paper's metrics on held-out labelled captions, overall and per category.

Two held-out sets matter (both from scenes of a seed the training never draws):
- perturbations: each scene's true caption and one hard negative per applicable taxonomy category
  (the paper's synthetic test set);
- own captions: what the captioner really writes, labelled exactly by the parser (real
  hallucinations, which single swaps do not look like).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image
from sklearn.metrics import roc_auc_score
from transformers import PreTrainedModel, ProcessorMixin

from reward.data import LabelledCaption, bad_spans_from_words, own_caption_examples
from reward.detect import token_scores
from reward.metrics import metrics_report
from reward.model import TokenRewardModel
from reward.tokens import Span, token_labels_from_words
from reward.vlm import CAPTION_PROMPT, captions_generate
from reward.words import response_words
from shapeworld.grammar import caption_write
from shapeworld.parser import CONTENT_KINDS, caption_label, word_kind
from shapeworld.perturb import CATEGORIES, caption_perturb
from shapeworld.render import scenes_drawn
from shapeworld.scene import Scene, WorldConfig

# Evaluation scenes come from this seed, validation scenes (threshold calibration) from the next one;
# training streams draw from their own generator seeded with small numbers.
HELD_OUT_SEED = 1_000_000
VALIDATION_SEED = 1_500_000


@dataclass(frozen=True)
class HeldOutScenes:
    scenes: list[Scene]
    images: list[Image.Image]


def held_out_scenes(n: int, *, seed: int = HELD_OUT_SEED, world: WorldConfig | None = None) -> HeldOutScenes:
    """`n` scenes and their images that no training stream draws (a seed of their own)."""
    return HeldOutScenes(*scenes_drawn(n, seed, world))


def perturbation_set(held_out: HeldOutScenes, *, seed: int = HELD_OUT_SEED) -> list[LabelledCaption]:
    """Every scene's canonical caption ("true") and one hard negative per applicable category."""
    rng = random.Random(seed)
    examples = []
    for scene, image in zip(held_out.scenes, held_out.images, strict=True):
        caption = caption_write(scene)
        examples.append(LabelledCaption(image, caption, bad_spans_from_words(caption_label(scene, caption)), "true"))
        for category in CATEGORIES:
            perturbed = caption_perturb(scene, caption, category, rng)
            if perturbed is not None:
                examples.append(
                    LabelledCaption(image, perturbed.caption, bad_spans_from_words(perturbed.words), category)
                )
    return examples


def own_caption_set(
    held_out: HeldOutScenes, captioner: PreTrainedModel, processor: ProcessorMixin
) -> tuple[list[LabelledCaption], list[str]]:
    """The captioner's greedy captions of the held-out scenes, labelled by the parser."""
    captions = captions_generate(captioner, processor, held_out.images, batch_size=64)
    return own_caption_examples(held_out.scenes, held_out.images, captions), captions


def reward_evaluate(
    model: TokenRewardModel,
    processor: ProcessorMixin,
    examples: list[LabelledCaption],
    *,
    threshold: float | None = None,
    batch_size: int = 64,
    instruction: str = CAPTION_PROMPT,
) -> dict:
    """The paper's metrics (A_T, A_S, A_R, mAP(neg), mAP(pos), H_*) on tokens, overall and per category.

    Also the trivial baseline that calls every response bad, since on a weak captioner's own captions
    that answer alone can look good on A_R, and `errors_by_word_kind`.
    """
    scored = token_scores(
        model,
        processor,
        [e.image for e in examples],
        [e.caption for e in examples],
        batch_size=batch_size,
        instruction=instruction,
    )
    p_good, true_good, sentences = [], [], []
    for example, (offsets, token_p_bad) in zip(examples, scored, strict=True):
        bad = token_labels_from_words(offsets, list(example.bad_spans))
        p_good.append([1.0 - p for p in token_p_bad])
        true_good.append([not b for b in bad])
        sentences.append([example.caption[:start].count(".") for start, _ in offsets])
    report = metrics_report(
        p_good,
        true_good,
        sentences,
        [e.category for e in examples],
        threshold if threshold is not None else model.config.threshold,
    )
    report["overall"]["A_R_all_bad_baseline"] = sum(not all(t) for t in true_good if t) / max(
        sum(1 for t in true_good if t), 1
    )
    report["by_word_kind"] = errors_by_word_kind(examples, scored)
    return report


def errors_by_word_kind(
    examples: list[LabelledCaption], scored: list[tuple[list[Span], list[float]]]
) -> dict[str, dict]:
    """Per content-word kind of the built-in world (colour, letter, relation, ...): the tokens of that
    kind, how many are wrong, and the ROC AUC of p_bad between its wrong and right tokens (None when it
    has only one of the two).

    mAP(neg) pools every token, so one number cannot say where it is lost: whether a kind's errors
    are many, or ranked no better than the kind's right words (a captioner's guessed letters beside
    the letters it read right). Function words and words of no known kind (free text) are left out.
    """
    by_kind: dict[str, tuple[list[bool], list[float]]] = {}
    for example, (spans, p_bad) in zip(examples, scored, strict=True):
        words = response_words(example.caption)
        token_bad = token_labels_from_words(spans, list(example.bad_spans))
        for (start, end), p, bad in zip(spans, p_bad, token_bad, strict=True):
            word = next((text for text, s, e in words if s < end and e > start), None)
            kind = word_kind(word) if word is not None else None
            if kind in CONTENT_KINDS:
                labels, scores = by_kind.setdefault(kind, ([], []))
                labels.append(bad)
                scores.append(p)
    return {
        kind: {
            "tokens": len(labels),
            "bad": sum(labels),
            "auc": round(float(roc_auc_score(labels, scores)), 4) if 0 < sum(labels) < len(labels) else None,
        }
        for kind, (labels, scores) in sorted(by_kind.items())
    }
