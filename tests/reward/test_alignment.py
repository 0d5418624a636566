"""Corrections become word labels: replaced and deleted words are bad, insertions are recorded."""

from __future__ import annotations

from reward.alignment import word_labels_from_correction
from reward.words import response_words


def _bad(original: str, corrected: str) -> list[str]:
    return [w["text"] for w in word_labels_from_correction(original, corrected).words if w["label"] == "bad"]


def test_identical_caption_has_no_bad_word() -> None:
    result = word_labels_from_correction("a red circle.", "a red circle.")
    assert [w["label"] for w in result.words] == ["good"] * 4 and result.insertions == []


def test_replaced_word_is_bad() -> None:
    assert _bad("a red circle is left of a blue square.", "a red circle is right of a blue square.") == ["left"]


def test_deleted_words_are_bad() -> None:
    assert _bad("there are two small red stars.", "there are two red stars.") == ["small"]


def test_insertion_marks_no_word_bad_and_is_recorded() -> None:
    result = word_labels_from_correction("a circle.", "a red circle.")
    assert [w["label"] for w in result.words] == ["good"] * 3
    assert result.insertions == [{"after_word_index": 0, "text": "red"}]
    assert word_labels_from_correction("circle.", "a big circle.").insertions == [
        {"after_word_index": -1, "text": "a big"}
    ]


def test_full_rewrite_marks_every_word_bad() -> None:
    assert _bad("two blue squares", "one green star") == ["two", "blue", "squares"]


def test_punctuation_is_a_word_of_its_own() -> None:
    assert _bad("a red circle.", "a red circle!") == ["."]
    assert _bad("a red circle, a star.", "a red circle and a star.") == [","]


def test_empty_correction_marks_everything_bad() -> None:
    assert _bad("a star.", "") == ["a", "star", "."]
    assert word_labels_from_correction("", "a star.").words == []


def test_case_is_ignored_and_the_original_text_kept() -> None:
    result = word_labels_from_correction("A Red circle.", "a red circle.")
    assert [w["label"] for w in result.words] == ["good"] * 4
    assert [(w["text"], w["start"], w["end"]) for w in result.words] == response_words("A Red circle.")


def test_word_spans_point_into_the_original() -> None:
    original = "there are  two red stars ."
    for word in word_labels_from_correction(original, "there are three red stars.").words:
        assert original[word["start"] : word["end"]] == word["text"]
