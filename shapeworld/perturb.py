"""Synthetic hard negatives (TLDR §3): one or two small changes to a true caption, by taxonomy.

Where the paper asks a text-only LLM for the change and aligns tokens with difflib, the world's
ground truth does both exactly: a change is made on the parsed caption, and the new caption is
labelled by `caption_label`. A change is kept only if one of the changed words comes out
hallucinated and no word becomes unparsed, so a perturbation is never a paraphrase of the truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from shapeworld.grammar import NUMBER_WORDS, PLURALS, group_noun, phrase_write
from shapeworld.parser import (
    CaptionParse,
    NounPhrase,
    WordLabel,
    caption_label,
    caption_parse,
    phrase_matches,
    word_kind,
)
from shapeworld.scene import COLOURS, LETTERS, SHAPES, SIZES, Scene

CATEGORIES = (
    "spatial_relationship",
    "visual_attribute",
    "attribute_binding",
    "object_identification",
    "counting",
    "small_object",
    "text_ocr",
    "counterfactual",
)
# Relation words, and whether the grammar writes "of" after them ("left of b", "above b").
_RELATION_TAKES_OF = {"left": True, "right": True, "above": False, "below": False}
_MOST_CLAIMED = 5  # counts a perturbation may claim: one .. five


@dataclass(frozen=True)
class Perturbation:
    """A perturbed caption, its taxonomy category, and exact labels of its words."""

    caption: str
    category: str
    words: list[WordLabel]


@dataclass(frozen=True)
class _Edit:
    """Word-level changes: replace word i, insert words after word i, delete word i."""

    replace: dict[int, str]
    insert_after: dict[int, tuple[str, ...]]
    delete: frozenset[int] = frozenset()


def caption_perturb(
    scene: Scene, caption: str, category: str, rng: random.Random, *, n_changes: int = 1
) -> Perturbation | None:
    """Perturb `caption` by `category` with `n_changes` (1 or 2) changes; None where it does not apply."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown perturbation category {category!r}; expected one of {CATEGORIES}")
    current = _perturb_once(scene, caption, category, rng)
    if current is None:
        return None
    for _ in range(n_changes - 1):
        again = _perturb_once(scene, current.caption, category, rng)
        if again is not None and _hallucinated(again.words) > _hallucinated(current.words):
            current = again
    return current


def caption_perturb_any(scene: Scene, caption: str, rng: random.Random, n_changes: int = 1) -> Perturbation | None:
    """Perturb by a category drawn at random among those that apply to this caption."""
    categories = list(CATEGORIES)
    rng.shuffle(categories)
    for category in categories:
        perturbation = caption_perturb(scene, caption, category, rng, n_changes=n_changes)
        if perturbation is not None:
            return perturbation
    return None


def _perturb_once(scene: Scene, caption: str, category: str, rng: random.Random) -> Perturbation | None:
    """Try the category's candidate edits in random order; keep the first that verifies."""
    parse = caption_parse(caption)
    unparsed_before = sum(w.label == "unparsed" for w in caption_label(scene, caption))
    candidates = _CANDIDATES[category](scene, parse, rng)
    rng.shuffle(candidates)
    for edit in candidates:
        new_caption, changed = _caption_edit(caption, parse, edit)
        words = caption_label(scene, new_caption)
        if sum(w.label == "unparsed" for w in words) > unparsed_before:
            continue
        if any(words[k].label == "hallucinated" for k in changed):
            return Perturbation(new_caption, category, words)
    return None


def _caption_edit(caption: str, parse: CaptionParse, edit: _Edit) -> tuple[str, list[int]]:
    """Apply an edit keeping the caption's own spacing; returns the new caption and changed word indices."""
    pieces, changed = [], []
    previous_end, k = 0, 0
    for i, (text, start, end) in enumerate(parse.words):
        if i in edit.delete:  # the word and the space before it
            previous_end = end
            continue
        pieces += [caption[previous_end:start], edit.replace.get(i, text)]
        if i in edit.replace:
            changed.append(k)
        k += 1
        previous_end = end
        for extra in edit.insert_after.get(i, ()):
            pieces += [" ", extra]
            changed.append(k)
            k += 1
    pieces.append(caption[previous_end:])
    return "".join(pieces), changed


def _hallucinated(words: list[WordLabel]) -> int:
    return sum(w.label == "hallucinated" for w in words)


def _described(parse: CaptionParse) -> list[tuple[int, NounPhrase]]:
    return [(k, p) for k, p in enumerate(parse.phrases) if not p.negated]


def _others(values: tuple[str, ...], current: str) -> list[str]:
    return [v for v in values if v != current]


def _spatial_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Any other relation word: the opposite direction, or the other axis ("left of b" ↔ "above b").

    Why the other axis too: a captioner's own relation errors are mostly on the wrong axis ("above"
    for two groups side by side: 44 of the built-in captioner's 56 wrong relation words on 500
    held-out scenes, 9 the opposite direction), and a spatial category of flips alone would not
    measure them. Training on them too made no clear difference to how well the reward model finds
    its captioner's relation errors (bench/reward_variants.py, `--spatial-within-axis`). A word on
    the other axis that still holds (diagonal groups) is rejected by the check in `_perturb_once`.
    """
    edits = []
    for i, _, _ in parse.relations:
        word = parse.words[i][0]
        followed_by_of = i + 1 < len(parse.words) and parse.words[i + 1][0] == "of"
        for other in _others(tuple(_RELATION_TAKES_OF), word):
            if _RELATION_TAKES_OF[other] == _RELATION_TAKES_OF[word]:
                edits.append(_Edit({i: other}, {}))
            elif _RELATION_TAKES_OF[other]:
                edits.append(_Edit({i: other}, {i: ("of",)}))
            elif followed_by_of:
                edits.append(_Edit({i: other}, {}, frozenset({i + 1})))
    return edits


def _attribute_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    edits = []
    for _, phrase in _described(parse):
        for i, colour in phrase.colours:
            edits += [_Edit({i: other}, {}) for other in _others(COLOURS, colour)]
        for i, size in phrase.sizes:
            edits += [_Edit({i: other}, {}) for other in _others(SIZES, size)]
    return edits


def _binding_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Swap the colours, or the sizes, of two phrases that differ in them."""
    edits = []
    described = [p for _, p in _described(parse)]
    for a in range(len(described)):
        for b in range(a + 1, len(described)):
            for attribute in ("colours", "sizes"):
                words_a, words_b = getattr(described[a], attribute), getattr(described[b], attribute)
                if words_a and words_b and words_a[0][1] != words_b[0][1]:
                    (i, value_a), (j, value_b) = words_a[0], words_b[0]
                    edits.append(_Edit({i: value_b, j: value_a}, {}))
    return edits


def _identity_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Rename a phrase's shape, preferring shapes absent from the scene (clearer hallucinations)."""
    present = {g.shape for g in scene.groups}
    edits = []
    for _, phrase in _described(parse):
        for shape in _others(SHAPES, phrase.shape):
            if shape not in present or rng.random() < 0.2:
                noun = PLURALS[shape] if phrase.plural else shape
                edits.append(_Edit({phrase.noun: noun}, {}))
    return edits


def _counting_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Change one phrase's count, keeping the noun's and the verb's number in agreement."""
    edits = []
    matches = phrase_matches(scene, parse)
    for k, phrase in _described(parse):
        if phrase.counts:
            count_word = phrase.counts[0][0]
        elif phrase.determiner in ("a", "an"):
            count_word = phrase.start
        else:
            continue
        for count in range(1, _MOST_CLAIMED + 1):
            if count == matches[k][0].count:
                continue
            replace = {count_word: "a" if count == 1 else NUMBER_WORDS[count - 1]}
            replace[phrase.noun] = group_noun(phrase.shape, count)
            verb = verb_of(parse, k)
            if verb is not None:
                replace[verb] = "is" if count == 1 else "are"
            edits.append(_Edit(replace, {}))
    return edits


def verb_of(parse: CaptionParse, k: int) -> int | None:
    """The "is"/"are" whose subject is phrase k.

    It follows the subject ("a red circle is left of ..."), except in "there is ..." and in fronted
    sentences ("left of two squares is a red circle"), where it comes just before the subject.
    """
    texts = [w for w, _, _ in parse.words]
    phrase = parse.phrases[k]
    sentence_start = phrase.start
    while sentence_start > 0 and texts[sentence_start - 1] not in (".", "!", "?"):
        sentence_start -= 1
    fronted = word_kind(texts[sentence_start]) == "relation"
    before = phrase.start - 1
    verb_before = before >= sentence_start and texts[before] in ("is", "are")
    if verb_before and (fronted or (before > sentence_start and texts[before - 1] == "there")):
        return before
    if fronted:
        return None
    next_start = min(
        (p.start for p in parse.phrases if p.sentence == phrase.sentence and p.start >= phrase.end),
        default=len(texts),
    )
    for i in range(phrase.end, next_start):
        if texts[i] in ("is", "are"):
            return i
        if texts[i] in (".", "!", "?"):
            break
    return None


def _small_object_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Change the colour or the shape of an object described as small, and of no other."""
    edits = []
    for _, phrase in _described(parse):
        if not any(size == "small" for _, size in phrase.sizes):
            continue
        for i, colour in phrase.colours:
            edits += [_Edit({i: other}, {}) for other in _others(COLOURS, colour)]
        for shape in _others(SHAPES, phrase.shape):
            edits.append(_Edit({phrase.noun: PLURALS[shape] if phrase.plural else shape}, {}))
    return edits


def _ocr_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Misread a letter the caption names, or claim one where the caption names none."""
    if parse.letters:
        return [_Edit({i: other}, {}) for i, _ in parse.letters for other in _others(LETTERS, parse.words[i][0])]
    matches = phrase_matches(scene, parse)
    edits = []
    for k, phrase in _described(parse):
        letters = _others(LETTERS, matches[k][0].letter or "")
        letter = rng.choice(letters)
        edits.append(_Edit({}, {phrase.noun: ("with", "the", "letter", letter)}))
    return edits


def _counterfactual_candidates(scene: Scene, parse: CaptionParse, rng: random.Random) -> list[_Edit]:
    """Add a false negation: "there is no <group that is there> ." or "<the group> has no letter .\""""
    if not parse.words:
        return []
    last = len(parse.words) - 1
    # a caption cut off mid-sentence is closed first, so the claim stands as a sentence of its own
    opening = () if parse.words[last][0] in (".", "!", "?") else (".",)
    edits = []
    for group in scene.groups:
        noun = group_noun(group.shape, group.count)
        be = "is" if group.count == 1 else "are"
        attributes = rng.choice([(group.colour,), (group.size, group.colour), (group.size,), ()])
        edits.append(_Edit({}, {last: (*opening, "there", be, "no", *attributes, noun, ".")}))
        if group.letter is not None:
            reference = phrase_write(group, definite=True)
            edits.append(_Edit({}, {last: (*opening, *reference.split(), "has", "no", "letter", ".")}))
    return edits


_CANDIDATES = {
    "spatial_relationship": _spatial_candidates,
    "visual_attribute": _attribute_candidates,
    "attribute_binding": _binding_candidates,
    "object_identification": _identity_candidates,
    "counting": _counting_candidates,
    "small_object": _small_object_candidates,
    "text_ocr": _ocr_candidates,
    "counterfactual": _counterfactual_candidates,
}
