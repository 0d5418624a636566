"""Where mAP(neg) is lost: wrong tokens and their ranking per content-word kind."""

from PIL import Image

from reward.data import LabelledCaption
from reward.evaluate import errors_by_word_kind
from reward.words import response_words

IMAGE = Image.new("RGB", (8, 8))


def _example(caption: str, bad_words: tuple[str, ...]) -> LabelledCaption:
    spans = tuple((start, end) for text, start, end in response_words(caption) if text in bad_words)
    return LabelledCaption(IMAGE, caption, spans, "own")


def _scored(caption: str, p_bad_of: dict[str, float]) -> tuple[list[tuple[int, int]], list[float]]:
    """One token per word, except "hexagon", cut in two as a subword tokenizer might."""
    spans, scores = [], []
    for text, start, end in response_words(caption):
        pieces = [(start, start + 3), (start + 3, end)] if text == "hexagon" else [(start, end)]
        spans += pieces
        scores += [p_bad_of.get(text, 0.1)] * len(pieces)
    return spans, scores


def test_each_kind_counts_its_tokens_and_wrong_tokens_and_ranks_them():
    first = "a red hexagon with the letter K is left of a blue star . the blue star is right of the red hexagon ."
    second = "two red stars with the letter A ."
    examples = [_example(first, ("K", "left")), _example(second, ())]
    scored = [_scored(first, {"K": 0.9, "left": 0.2, "blue": 0.5}), _scored(second, {"A": 0.4})]
    report = errors_by_word_kind(examples, scored)
    assert report["letter"] == {"tokens": 2, "bad": 1, "auc": 1.0}
    # The wrong "left" (0.2) only has to rank above the right "right" (0.1); "of" is a function word.
    assert report["relation"] == {"tokens": 2, "bad": 1, "auc": 1.0}
    # Every token of a word counts: "hexagon" is two.
    assert report["shape"] == {"tokens": 7, "bad": 0, "auc": None}
    assert report["colour"] == {"tokens": 5, "bad": 0, "auc": None}
    assert "function" not in report and "unknown" not in report


def test_a_wrong_word_scored_below_the_right_ones_of_its_kind_gets_a_low_auc():
    caption = "a red circle with the letter K . a blue star with the letter A ."
    examples = [_example(caption, ("K",))]
    report = errors_by_word_kind(examples, [_scored(caption, {"K": 0.3, "A": 0.8})])
    assert report["letter"] == {"tokens": 2, "bad": 1, "auc": 0.0}
