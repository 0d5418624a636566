"""Choosing the decision threshold θ on a validation set, instead of assuming the paper's 0.5.

A word is flagged when P(good) ≤ θ. The head's probabilities are only as calibrated as its training
mix is representative (the share of bad tokens in training is not the share in the captions it
will judge), so θ is set on validation captions drawn apart from both the training stream and the
evaluation sets, where balanced response accuracy is highest: the mean of the share of good
responses passed and the share of bad responses flagged. Plain response accuracy A_R rewards
flagging everything whenever most validation responses are bad (seven in eight perturbed captions
are, and half or more of the built-in captioner's own): it once set θ where every caption had a
highlighted word, which tells an annotator nothing. Flagging everything scores 0.5 in balanced
accuracy, whatever the mix. Validation sets of different kinds count alike. The chosen θ is saved
in the model's manifest and used by detection and evaluation alike.
"""

from __future__ import annotations

import itertools

from transformers import ProcessorMixin

from reward.data import LabelledCaption
from reward.detect import token_scores
from reward.model import TokenRewardModel
from reward.tokens import token_labels_from_words


def threshold_for_balanced_accuracy(
    min_p_good: list[float], response_good: list[bool], sources: list[str] | None = None
) -> float:
    """θ maximising balanced response accuracy when a response is called good iff its lowest P(good) exceeds θ.

    `sources` names where each response comes from; each source's balanced accuracy then counts
    alike, whatever its size. Why: pooled, the built-in model's 700 perturbed validation captions
    outvoted the captioner's 100 own ones, and θ flagged a fifth of the own captions that were bad
    where weighing the two alike flagged most of them, and did better on perturbations too
    (held-out response accuracy 0.91 and 0.89 instead of 0.54 and 0.79).

    Candidates are the midpoints between consecutive distinct scores (and the ends), so the answer
    is the centre of the best interval rather than an edge that a tiny shift would cross. Ties go to
    the θ closest to 0.5, the paper's default, which is also the answer when no source holds both
    good and bad responses (nothing to balance).
    """
    sources = sources or [""] * len(min_p_good)
    balanced_sources = []
    for source in sorted(set(sources)):
        rows = [(p, good) for p, good, s in zip(min_p_good, response_good, sources, strict=True) if s == source]
        good_total = sum(good for _, good in rows)
        if 0 < good_total < len(rows):
            balanced_sources.append((rows, good_total, len(rows) - good_total))
    if not balanced_sources:
        return 0.5
    scores = sorted(set(min_p_good))
    candidates = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(scores)), 1.0]

    def balanced_accuracy(theta: float) -> float:
        total = 0.0
        for rows, good_total, bad_total in balanced_sources:
            passed = sum(p > theta for p, good in rows if good)
            flagged = sum(p <= theta for p, good in rows if not good)
            total += passed / good_total + flagged / bad_total
        return total

    return max(candidates, key=lambda theta: (balanced_accuracy(theta), -abs(theta - 0.5)))


def threshold_calibrate(
    model: TokenRewardModel, processor: ProcessorMixin, validation_sets: list[list[LabelledCaption]]
) -> float:
    """The θ of `model` with the best balanced response accuracy on labelled validation captions.

    Each set (perturbations, the captioner's own captions, corrections) counts alike.
    """
    min_p_good, response_good, sources = [], [], []
    for index, examples in enumerate(validation_sets):
        images, captions = [e.image for e in examples], [e.caption for e in examples]
        scored = token_scores(model, processor, images, captions, batch_size=64)
        for example, (offsets, token_p_bad) in zip(examples, scored, strict=True):
            if not offsets:
                continue
            min_p_good.append(1.0 - max(token_p_bad))
            response_good.append(not any(token_labels_from_words(offsets, list(example.bad_spans))))
            sources.append(str(index))
    return threshold_for_balanced_accuracy(min_p_good, response_good, sources)
