"""TLDR's evaluation metrics, exactly as the paper defines them (Fu et al. 2025, §4 and Table 1).

Every function takes per-response lists of token (or word) labels, True = good, so one response's
length never weighs more than another's where the paper averages over responses. Sentences are
given as a sentence index per token (`sentence_ids_from_tokens` splits at periods, as the paper does).
"""

from __future__ import annotations

from statistics import mean

import numpy as np
from sklearn.metrics import average_precision_score

Labels = list[list[bool]]


def sentence_ids_from_tokens(token_texts: list[str]) -> list[int]:
    """Sentence index of each token: a new sentence starts after a token ending in a period."""
    ids, sentence = [], 0
    for text in token_texts:
        ids.append(sentence)
        if text.strip().endswith("."):
            sentence += 1
    return ids


def _sentences_good(good: list[bool], sentence_ids: list[int]) -> dict[int, bool]:
    """A sentence is good iff every one of its tokens is."""
    verdict: dict[int, bool] = {}
    for label, sentence in zip(good, sentence_ids, strict=True):
        verdict[sentence] = verdict.get(sentence, True) and label
    return verdict


def token_accuracy(pred_good: Labels, true_good: Labels) -> float:
    """A_T: per response, the share of tokens whose predicted label is the true one; mean over responses."""
    return mean(
        mean(p == t for p, t in zip(pred, true, strict=True))
        for pred, true in zip(pred_good, true_good, strict=True)
        if true
    )


def sentence_accuracy(pred_good: Labels, true_good: Labels, sentence_ids: list[list[int]]) -> float:
    """A_S: per response, the share of sentences judged right (good iff all tokens good); mean over responses."""
    shares = []
    for pred, true, ids in zip(pred_good, true_good, sentence_ids, strict=True):
        if not true:
            continue
        predicted, actual = _sentences_good(pred, ids), _sentences_good(true, ids)
        shares.append(mean(predicted[s] == actual[s] for s in actual))
    return mean(shares)


def response_accuracy(pred_good: Labels, true_good: Labels) -> float:
    """A_R: a response is good iff every token is; share of responses judged right."""
    return mean(all(p) == all(t) for p, t in zip(pred_good, true_good, strict=True))


def _average_precision(positive: list[bool], score: list[float]) -> float:
    """Average precision over pooled tokens; NaN where the positive class never occurs (AP is undefined)."""
    if not any(positive):
        return float("nan")
    return float(average_precision_score(np.array(positive, dtype=int), np.array(score, dtype=float)))


def average_precision_bad(p_good: list[list[float]], true_good: Labels) -> float:
    """mAP(neg): average precision with "bad" as the positive class, all tokens pooled, score 1 − P(good).

    Over 95 % of tokens are good, so this is the informative number.
    """
    pooled_p = [p for row in p_good for p in row]
    pooled_true = [t for row in true_good for t in row]
    return _average_precision([not t for t in pooled_true], [1.0 - p for p in pooled_p])


def average_precision_good(p_good: list[list[float]], true_good: Labels) -> float:
    """mAP(pos): average precision with "good" as the positive class, all tokens pooled."""
    pooled_p = [p for row in p_good for p in row]
    pooled_true = [t for row in true_good for t in row]
    return _average_precision(pooled_true, pooled_p)


def hallucination_rates(good: Labels, sentence_ids: list[list[int]]) -> dict[str, float]:
    """H_T, H_S, H_R of a captioner (from TLDR's predictions or from true labels).

    H_T: mean over responses of the share of bad tokens; H_S: mean over responses of the share of
    sentences with ≥ 1 bad token; H_R: share of responses with ≥ 1 bad token.
    """
    rows = [(labels, ids) for labels, ids in zip(good, sentence_ids, strict=True) if labels]
    return {
        "H_T": mean(mean(not label for label in labels) for labels, _ in rows),
        "H_S": mean(mean(not ok for ok in _sentences_good(labels, ids).values()) for labels, ids in rows),
        "H_R": mean(not all(labels) for labels, _ in rows),
    }


def _report(p_good: list[list[float]], true_good: Labels, sentence_ids: list[list[int]], threshold: float) -> dict:
    pred_good = [[p > threshold for p in row] for row in p_good]
    return {
        "A_T": token_accuracy(pred_good, true_good),
        "A_S": sentence_accuracy(pred_good, true_good, sentence_ids),
        "A_R": response_accuracy(pred_good, true_good),
        "mAP_neg": average_precision_bad(p_good, true_good),
        "mAP_pos": average_precision_good(p_good, true_good),
        "predicted": hallucination_rates(pred_good, sentence_ids),
        "true": hallucination_rates(true_good, sentence_ids),
        "responses": len(true_good),
        "tokens": sum(len(row) for row in true_good),
        "bad_tokens": sum(not t for row in true_good for t in row),
    }


def metrics_report(
    pred_p_good: list[list[float]],
    true_good: Labels,
    sentence_ids: list[list[int]],
    categories: list[str] | None = None,
    threshold: float = 0.5,
) -> dict:
    """All of TLDR's metrics, overall and per category: {"overall": {...}, "by_category": {name: {...}}}.

    A token is predicted good iff P(good) > threshold (θ = 0.5 in the paper). Responses without tokens
    are left out. "predicted" and "true" hold the hallucination rates H_T, H_S, H_R.
    """
    kept = [i for i, row in enumerate(true_good) if row]

    def subset(indices: list[int]) -> dict:
        return _report(
            [pred_p_good[i] for i in indices],
            [true_good[i] for i in indices],
            [sentence_ids[i] for i in indices],
            threshold,
        )

    report: dict = {"overall": subset(kept), "by_category": {}}
    if categories is not None:
        for category in sorted(set(categories)):
            report["by_category"][category] = subset([i for i in kept if categories[i] == category])
    return report
