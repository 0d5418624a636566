import pytest

from reward.calibrate import threshold_for_balanced_accuracy


def test_the_threshold_separates_good_from_bad_responses_at_the_centre_of_the_gap():
    theta = threshold_for_balanced_accuracy([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert theta == pytest.approx(0.55)


def test_a_shifted_head_gets_a_shifted_threshold():
    # every response scores low, but good ones less low: 0.5 would call them all bad
    theta = threshold_for_balanced_accuracy([0.4, 0.35, 0.1, 0.05], [True, True, False, False])
    assert 0.1 < theta < 0.35


def test_with_no_clean_cut_the_threshold_balances_passing_good_and_flagging_bad():
    scores = [0.9, 0.7, 0.6, 0.4, 0.3]
    good = [True, False, True, False, False]
    theta = threshold_for_balanced_accuracy(scores, good)
    assert 0.4 < theta < 0.6  # passes both good responses, flags two of the three bad ones


def test_mostly_bad_validation_does_not_make_every_caption_flagged():
    # Flagging everything is right on 7 of 9 responses, more than any other threshold; it is useless.
    good_scores, bad_scores = [0.8, 0.7], [0.9, 0.85, 0.75, 0.6, 0.5, 0.3, 0.2]
    scores, good = good_scores + bad_scores, [True] * 2 + [False] * 7
    theta = threshold_for_balanced_accuracy(scores, good)
    assert 0.6 < theta < 0.7


def test_one_kind_of_response_only_keeps_the_default():
    assert threshold_for_balanced_accuracy([0.9, 0.2], [False, False]) == 0.5
    assert threshold_for_balanced_accuracy([0.9, 0.2], [True, True]) == 0.5


def test_each_source_counts_alike_whatever_its_size():
    # A large source whose bad responses mostly score 0.5, and a small one whose good responses score
    # 0.45: pooled, the large one's gap above 0.5 wins and the small one's good responses are all
    # flagged; weighed alike, θ between 0.3 and 0.45 serves the small source and part of the large.
    scores = [0.9] * 10 + [0.5] * 30 + [0.2] * 10 + [0.45, 0.45, 0.3, 0.3]
    good = [True] * 10 + [False] * 40 + [True, True, False, False]
    sources = ["perturbations"] * 50 + ["own"] * 4
    assert 0.5 < threshold_for_balanced_accuracy(scores, good) < 0.9
    assert 0.3 < threshold_for_balanced_accuracy(scores, good, sources) < 0.45


def test_a_source_with_one_kind_of_response_does_not_vote():
    scores, good = [0.9, 0.2, 0.05, 0.01], [True, False, False, False]
    sources = ["mixed", "mixed", "bad only", "bad only"]
    assert threshold_for_balanced_accuracy(scores, good, sources) == threshold_for_balanced_accuracy(
        scores[:2], good[:2]
    )
