"""Corrections become word labels: the words an annotator replaced or deleted were bad.

A difflib alignment of the original caption's words with the corrected caption's words (TLDR's
labels come from the same kind of alignment between a caption and its perturbation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal, TypedDict

from reward.words import response_words


class LabelledWord(TypedDict):
    text: str
    start: int
    end: int
    label: Literal["good", "bad"]


class Insertion(TypedDict):
    after_word_index: int
    text: str


@dataclass
class CorrectionLabels:
    """Labels of the original caption's words, and what the annotator added that was not there.

    `after_word_index` is -1 for an insertion before the first word.
    """

    words: list[LabelledWord] = field(default_factory=list)
    insertions: list[Insertion] = field(default_factory=list)


def word_labels_from_correction(original: str, corrected: str) -> CorrectionLabels:
    """Word labels of `original` from the annotator's `corrected` version.

    Equal words are good; replaced and deleted words are bad. An insertion marks no original word
    bad: the caption left something out, and no word it wrote was wrong (the word before the gap may
    be perfectly true). Words compare case-insensitively, so a capitalisation fix labels nothing bad;
    the original text is kept.
    """
    words = response_words(original)
    corrected_words = response_words(corrected)
    labels: list[Literal["good", "bad"]] = ["good"] * len(words)
    insertions: list[Insertion] = []
    matcher = SequenceMatcher(
        a=[text.lower() for text, _, _ in words], b=[text.lower() for text, _, _ in corrected_words], autojunk=False
    )
    for operation, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if operation in ("replace", "delete"):
            labels[a_start:a_end] = ["bad"] * (a_end - a_start)
        elif operation == "insert":
            start, end = corrected_words[b_start][1], corrected_words[b_end - 1][2]
            insertions.append({"after_word_index": a_start - 1, "text": corrected[start:end]})
    return CorrectionLabels(
        words=[
            {"text": text, "start": start, "end": end, "label": label}
            for (text, start, end), label in zip(words, labels, strict=True)
        ],
        insertions=insertions,
    )
