"""`python -m reward labels`: (original, corrected) caption pairs become word-labelled TLDR data.

This is how human corrections (the app's, or RLHF-V-style public data where `rejected` is the model's
caption and `chosen` its fix) turn into token-level training data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from reward.alignment import word_labels_from_correction
from reward.data import JsonlProblem

# Accepted names of the two texts, the app's first, then RLHF-V / DPO-style ones.
ORIGINAL_KEYS = ("original", "rejected", "caption")
CORRECTED_KEYS = ("corrected", "chosen", "correction")


def correction_pairs_label(lines: TextIO) -> Iterator[dict | JsonlProblem]:
    """One labelled record per valid input line, or a `JsonlProblem` naming the bad line; never stops early.

    Fields other than the two texts (an image reference, ids) are carried over untouched.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("a line must hold a JSON object")
            original = _text(record, ORIGINAL_KEYS)
            corrected = _text(record, CORRECTED_KEYS)
        except json.JSONDecodeError as error:
            yield JsonlProblem(number, f"not valid JSON ({error.msg})")
            continue
        except ValueError as error:
            yield JsonlProblem(number, str(error))
            continue
        labels = word_labels_from_correction(original, corrected)
        extra = {k: v for k, v in record.items() if k not in ORIGINAL_KEYS + CORRECTED_KEYS}
        yield {
            **extra,
            "original": original,
            "corrected": corrected,
            "words": labels.words,
            "insertions": labels.insertions,
        }


def _text(record: dict, keys: tuple[str, ...]) -> str:
    for key in keys:
        if key in record:
            if not isinstance(record[key], str):
                raise ValueError(f"field {key!r} must be a string")
            return record[key]
    raise ValueError(f"missing field: one of {', '.join(repr(k) for k in keys)}")
