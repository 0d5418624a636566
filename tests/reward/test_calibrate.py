import pytest

from reward.calibrate import threshold_for_response_accuracy


def test_the_threshold_separates_good_from_bad_responses_at_the_centre_of_the_gap():
    theta = threshold_for_response_accuracy([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert theta == pytest.approx(0.55)


def test_a_shifted_head_gets_a_shifted_threshold():
    # every response scores low, but good ones less low: 0.5 would call them all bad
    theta = threshold_for_response_accuracy([0.4, 0.35, 0.1, 0.05], [True, True, False, False])
    assert 0.1 < theta < 0.35


def test_with_no_clean_cut_the_threshold_maximises_response_accuracy():
    scores = [0.9, 0.7, 0.6, 0.4, 0.3]
    good = [True, False, True, False, False]
    theta = threshold_for_response_accuracy(scores, good)
    accuracy = sum((p > theta) == g for p, g in zip(scores, good, strict=True))
    assert accuracy == 4
