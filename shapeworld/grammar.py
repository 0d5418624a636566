"""Captions of a scene: one canonical phrasing to learn from, and random phrasings for variety.

The canonical caption chains the groups in canonical order (left to right), one relation per
consecutive pair, so a tiny captioner sees one fixed, regular sentence pattern:

    1 group:  "there is a small red circle ."
    2 groups: "a small red circle is left of two large blue squares ."
    3 groups: "... . the large blue squares are above a large green hexagon with the letter K ."

A group is first named in full (count size colour shape, and its letter); later mentions are
definite ("the large blue squares"). Every caption is lowercase except letters drawn on objects,
and words and punctuation are separated by spaces.
"""

from __future__ import annotations

import random
import re

from shapeworld.scene import COLOURS, LETTERS, RELATIONS, SHAPES, SIZES, ObjectGroup, Scene, scene_relation

NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")
PLURALS = {shape: shape + ("es" if shape.endswith("s") else "s") for shape in SHAPES}
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
FUNCTION_WORDS = (
    "there", "is", "are", "a", "an", "the", "of", "with", "letter", "in", "image", "visible",
    "shows", "marked", "bearing", "written", "on", "it", "has", "and",
)  # fmt: skip
PUNCTUATION = (".", ",")

VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *FUNCTION_WORDS,
            *PUNCTUATION,
            *SHAPES,
            *PLURALS.values(),
            *COLOURS,
            *SIZES,
            *(word for relation in RELATIONS for word in relation.split()),
            *NUMBER_WORDS,
            "no",
            *LETTERS,
        ]
    )
)

_WORD = re.compile(r"\w+|[^\w\s]")


def caption_words(caption: str) -> list[tuple[str, int, int]]:
    """Words of a caption with their character offsets; punctuation is a word of its own.

    This is the one word splitter of the project: word labels, detections and corrections all
    refer to these spans.
    """
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(caption)]


def caption_write(scene: Scene, rng: random.Random | None = None) -> str:
    """A true caption of the scene: the canonical phrasing without `rng`, a random phrasing with it."""
    groups = scene.groups
    mentioned: set[int] = set()
    sentences = []
    if len(groups) == 1 or (rng is not None and len(groups) <= 3 and rng.random() < 0.3):
        sentences.append(_existence_write(scene, 0, rng))
        mentioned.add(0)
    for i in range(len(groups) - 1):
        sentences.append(_relation_write(scene, i, i + 1, mentioned, rng))
    return " ".join(sentences)


def _existence_write(scene: Scene, index: int, rng: random.Random | None) -> str:
    group = scene.groups[index]
    phrase = phrase_write(group, rng=rng)
    be = _be(group.count)
    frames = [
        f"there {be} {phrase} .",
        f"{phrase} {be} in the image .",
        f"{phrase} {be} visible .",
        f"the image shows {phrase} .",
    ]
    return frames[0] if rng is None else rng.choice(frames)


def _relation_write(scene: Scene, i: int, j: int, mentioned: set[int], rng: random.Random | None) -> str:
    """One sentence relating groups i and j; the first mention of a group names it in full."""
    a, b = scene.groups[i], scene.groups[j]
    relation = scene_relation(a, b)
    if relation is None:
        raise ValueError(f"groups {i} and {j} have no clear relation; sample scenes with scene_sample")
    form = 0 if rng is None else rng.randrange(4)
    order = (i, j) if form in (0, 2) else (j, i)
    names = {}
    for k in order:
        names[k] = _mention(scene, k, mentioned, rng)
        mentioned.add(k)
    inverse = INVERSE[relation]
    if form == 0:
        return f"{names[i]} {_be(a.count)} {relation} {names[j]} ."
    if form == 1:
        return f"{names[j]} {_be(b.count)} {inverse} {names[i]} ."
    if form == 2:
        return f"{relation} {names[j]} {_be(a.count)} {names[i]} ."
    return f"{inverse} {names[i]} {_be(b.count)} {names[j]} ."


def _mention(scene: Scene, index: int, mentioned: set[int], rng: random.Random | None) -> str:
    group = scene.groups[index]
    if index not in mentioned:
        return phrase_write(group, rng=rng)
    return phrase_write(group, rng=rng, definite=True, scene=scene)


def phrase_write(
    group: ObjectGroup,
    *,
    rng: random.Random | None = None,
    definite: bool = False,
    scene: Scene | None = None,
) -> str:
    """A noun phrase naming the group: "two large blue squares", or definite "the large blue squares".

    A random definite phrase may leave attributes out, but only when what is left still names
    this one group of `scene`, so the parser can always tell which group is meant.
    """
    noun = group_noun(group.shape, group.count)
    if definite:
        options = [("size", "colour")]
        if rng is not None and scene is not None:
            options += [attrs for attrs in [("colour",), ("size",), ()] if _unique(scene, group, attrs)]
        attrs = options[0] if rng is None else rng.choice(options)
        return " ".join(["the", *(getattr(group, a) for a in attrs), noun])
    count = "a" if group.count == 1 else NUMBER_WORDS[group.count - 1]
    if rng is not None and group.count == 1 and rng.random() < 0.25:
        count = "one"
    phrase = f"{count} {group.size} {group.colour} {noun}"
    if group.letter is None:
        return phrase
    letter_frames = [
        "with the letter {}",
        "marked with the letter {}",
        "bearing the letter {}",
        "with {} written on it",
    ]
    frame = letter_frames[0] if rng is None else rng.choice(letter_frames)
    return f"{phrase} {frame.format(group.letter)}"


def group_noun(shape: str, count: int) -> str:
    """The shape noun in the number the count asks for."""
    return shape if count == 1 else PLURALS[shape]


def _unique(scene: Scene, group: ObjectGroup, attrs: tuple[str, ...]) -> bool:
    same = [
        g for g in scene.groups if g.shape == group.shape and all(getattr(g, a) == getattr(group, a) for a in attrs)
    ]
    return len(same) == 1


def _be(count: int) -> str:
    return "is" if count == 1 else "are"
