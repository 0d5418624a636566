"""Exact hallucination rates of any captioner, from its captions and the scenes' ground truth.

The rates are the TLDR paper's (§3), computed from the parser's word labels instead of a reward
model's guesses; beside them, the numbers that catch a captioner which avoids errors by saying less.
A word counts as bad when it is hallucinated or an unparsed content word (never silently true).

- content-word hallucination rate: bad content words / all content words, pooled over captions;
- H_T: mean share of bad words per caption; H_S: mean share of sentences with a bad word; H_R:
  share of captions with a bad word;
- object recall: share of the scene's groups named with the right shape (a CHAIR-like object metric);
- per word kind (shape, colour, size, count, relation, letter): share of such words that are bad.
"""

from __future__ import annotations

from collections import Counter
from statistics import mean

from shapeworld.grammar import caption_write
from shapeworld.parser import CONTENT_KINDS, WordLabel, caption_label, object_recall, word_kind
from shapeworld.scene import Scene

BAD = ("hallucinated", "unparsed")


def word_is_bad(word: WordLabel) -> bool:
    return word.label in BAD


def sentence_ids(words: list[WordLabel]) -> list[int]:
    """Sentence index of every word: sentences end at a period (the paper's split)."""
    ids, current = [], 0
    for word in words:
        ids.append(current)
        if word.text == ".":
            current += 1
    return ids


def caption_rates(scene: Scene, caption: str) -> dict:
    """Per-caption counts and shares; `captioner_rates` pools them."""
    words = caption_label(scene, caption)
    bad = [word_is_bad(w) for w in words]
    content = [w for w in words if w.label != "neutral"]
    by_sentence: dict[int, bool] = {}
    for sentence, is_bad in zip(sentence_ids(words), bad, strict=True):
        by_sentence[sentence] = by_sentence.get(sentence, False) or is_bad
    kinds = Counter()
    bad_kinds = Counter()
    for word in content:
        kind = word_kind(word.text) if word_kind(word.text) in CONTENT_KINDS else "unknown"
        kinds[kind] += 1
        bad_kinds[kind] += word_is_bad(word)
    return {
        "content_words": len(content),
        "bad_content_words": sum(word_is_bad(w) for w in content),
        "token_rate": sum(bad) / len(words) if words else 0.0,
        "sentence_rate": mean(by_sentence.values()) if by_sentence else 0.0,
        "response_bad": any(bad),
        "object_recall": object_recall(scene, caption) if scene.groups else 1.0,
        "exact": caption.strip() == caption_write(scene),
        "kinds": kinds,
        "bad_kinds": bad_kinds,
    }


def captioner_rates(scenes: list[Scene], captions: list[str]) -> dict:
    """Pooled exact rates of a set of captions of `scenes` (see the module docstring)."""
    if not captions:
        raise ValueError("no captions to judge")
    per_caption = [caption_rates(s, c) for s, c in zip(scenes, captions, strict=True)]
    kinds = sum((r["kinds"] for r in per_caption), Counter())
    bad_kinds = sum((r["bad_kinds"] for r in per_caption), Counter())
    content = sum(r["content_words"] for r in per_caption)
    return {
        "captions": len(per_caption),
        "content_word_hallucination_rate": sum(r["bad_content_words"] for r in per_caption) / max(content, 1),
        "H_T": float(mean(r["token_rate"] for r in per_caption)),
        "H_S": float(mean(r["sentence_rate"] for r in per_caption)),
        "H_R": float(mean(r["response_bad"] for r in per_caption)),
        "object_recall": float(mean(r["object_recall"] for r in per_caption)),
        "exact_match": float(mean(r["exact"] for r in per_caption)),
        "per_kind": {kind: bad_kinds[kind] / kinds[kind] for kind in sorted(kinds)},
    }
