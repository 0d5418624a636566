"""TLDR's metrics on hand-checked cases and the paper's worked example."""

from __future__ import annotations

import math

import pytest

from reward.metrics import (
    average_precision_bad,
    average_precision_good,
    hallucination_rates,
    metrics_report,
    response_accuracy,
    sentence_accuracy,
    sentence_ids_from_tokens,
    token_accuracy,
)


def test_worked_example_of_the_paper() -> None:
    # 208 tokens in 10 sentences; 15 bad tokens spread over 6 sentences.
    sentence_ids = [i // 21 if i < 189 else 9 for i in range(208)]
    bad = set(range(0, 3)) | set(range(21, 24)) | set(range(42, 45)) | set(range(63, 65)) | {84, 85} | {105, 106}
    good = [[i not in bad for i in range(208)]]
    assert len(bad) == 15
    rates = hallucination_rates(good, [sentence_ids])
    assert rates["H_T"] == pytest.approx(15 / 208) and round(100 * rates["H_T"], 1) == 7.2
    assert rates["H_S"] == pytest.approx(0.6)
    assert rates["H_R"] == 1


def test_hallucination_rates_average_over_responses() -> None:
    good = [[True, False, True, True], [True, True]]
    rates = hallucination_rates(good, [[0, 0, 1, 1], [0, 0]])
    assert rates == {"H_T": pytest.approx(0.125), "H_S": pytest.approx(0.25), "H_R": 0.5}


def test_accuracies_follow_the_definitions() -> None:
    true = [[True, True, False, True], [True, True, True]]
    pred = [[True, False, False, True], [True, True, True]]
    sentences = [[0, 0, 1, 1], [0, 1, 1]]
    assert token_accuracy(pred, true) == pytest.approx((3 / 4 + 1) / 2)
    # response 0: sentence 0 predicted bad but good (wrong), sentence 1 bad and bad (right)
    assert sentence_accuracy(pred, true, sentences) == pytest.approx((1 / 2 + 1) / 2)
    # response 0 is bad and predicted bad; response 1 good and predicted good
    assert response_accuracy(pred, true) == 1.0
    assert response_accuracy([[True] * 4, [True] * 3], true) == 0.5


def test_sentences_split_after_periods() -> None:
    assert sentence_ids_from_tokens(["a", "star", ".", "two", "circles", ".", "x"]) == [0, 0, 0, 1, 1, 1, 2]
    assert sentence_ids_from_tokens(["a", " star.", "two"]) == [0, 0, 1]


def test_average_precision_takes_bad_or_good_as_the_positive_class() -> None:
    p_good = [[0.9, 0.1, 0.8], [0.7, 0.95]]
    true = [[True, False, True], [True, False]]
    # bad ranked by 1 - P(good): bad, good, good, good, bad -> (1/1 + 2/5) / 2
    assert average_precision_bad(p_good, true) == pytest.approx(0.7)
    # good ranked by P(good): bad, good, good, good, bad -> (1/2 + 2/3 + 3/4) / 3
    assert average_precision_good(p_good, true) == pytest.approx((1 / 2 + 2 / 3 + 3 / 4) / 3)
    assert math.isnan(average_precision_bad([[0.9]], [[True]]))


def test_report_is_overall_and_per_category() -> None:
    p_good = [[0.9, 0.2], [0.8, 0.9], [0.1]]
    true = [[True, False], [True, True], [True]]
    report = metrics_report(p_good, true, [[0, 0], [0, 0], [0]], categories=["counting", "true", "true"])
    assert report["overall"]["A_R"] == pytest.approx(2 / 3) and report["overall"]["responses"] == 3
    assert report["by_category"]["counting"]["A_T"] == 1.0 and report["by_category"]["true"]["A_R"] == 0.5
    assert report["overall"]["true"]["H_R"] == pytest.approx(1 / 3)
    assert report["overall"]["predicted"]["H_R"] == pytest.approx(2 / 3)
