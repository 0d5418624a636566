"""A simulated annotator: the correction a careful person would submit for a caption, from the ground truth.

Corrections become word labels by aligning the original words with the corrected ones
(`reward.alignment.word_labels_from_correction`): every original word the correction replaces or
deletes is labelled bad. So the correction must be the smallest edit that makes the caption true:
an annotator who rewrote a sentence to fix one colour would teach the reward model that the
sentence's true words were wrong.

The parser's verdicts never cross a sentence end, so each sentence is corrected on its own:
- a sentence the parser finds true is kept as it is;
- otherwise its wrong words are replaced by the true values of the group each phrase is about
  (colour, size, count with the noun's and the verb's agreement, shape, letter, relation). Every
  reading of which group a phrase means is tried (the group the parser matched first, then any
  group sharing the phrase's shape, a colour or a letter, or any group at all for a definite "the
  ..." that points back at one), and the reading whose edit changes the fewest original words and
  leaves the sentence true wins; a false "there is no ..." becomes the count that is there;
- a sentence no such edit makes true (an object that is not there, words outside the grammar) is
  deleted, and a caption left empty gets the first sentence of the scene's true caption.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from shapeworld.grammar import NUMBER_WORDS, VOCABULARY, caption_words, caption_write, group_noun
from shapeworld.parser import RELATION_WORDS, CaptionParse, caption_label, caption_parse, phrase_matches
from shapeworld.perturb import verb_of
from shapeworld.scene import ObjectGroup, Scene, relation_holds

SENTENCE_ENDS = (".", "!", "?")
# Words that may stand between a phrase and the letter drawn on it ("marked with the letter K") ...
_LETTER_FRAME = frozenset({"marked", "with", "the", "letter", "bearing"})
# ... and after it ("with K written on it"); a letter claim about a group without one goes with them.
_LETTER_FRAME_TAIL = ("written", "on", "it")
# The same axis first: "left" -> "right" is one word, "left of" -> "above" two.
_RELATION_PREFERENCE = {
    "left of": ("right of", "above", "below"),
    "right of": ("left of", "above", "below"),
    "above": ("below", "left of", "right of"),
    "below": ("above", "left of", "right of"),
}
# Readings of a sentence tried at most; a longer garbled sentence gets only the parser's reading.
_MOST_READINGS = 256


@dataclass
class _Edit:
    """Word-level changes to one sentence, by word index."""

    replace: dict[int, str] = field(default_factory=dict)
    delete: set[int] = field(default_factory=set)
    insert_after: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def cost(self) -> tuple[int, int]:
        """Original words changed (what the alignment labels bad), then words added."""
        return len(self.replace.keys() | self.delete), sum(len(words) for words in self.insert_after.values())


def caption_correct(scene: Scene, caption: str) -> str:
    """What a careful annotator submits when fixing `caption` against `scene`: the smallest true edit.

    A true caption comes back unchanged; see the module docstring for the rules.
    """
    words = caption_words(caption)
    kept: list[tuple[str, str]] = []  # (whitespace before, corrected sentence)
    previous_end = words[0][1] if words else 0
    for first, last in _sentence_spans(words):
        start, end = words[first][1], words[last][2]
        corrected = _sentence_correct(scene, caption[start:end])
        if corrected is not None:
            kept.append((caption[previous_end:start], corrected))
        previous_end = end
    if not kept:
        return _true_sentence(scene)
    body = kept[0][1] + "".join(gap + sentence for gap, sentence in kept[1:])
    return caption[: words[0][1]] + body + caption[words[-1][2] :]


def _sentence_correct(scene: Scene, sentence: str) -> str | None:
    """The smallest edit that makes one sentence true, or None where only deleting it does."""
    if _is_true(scene, sentence):
        return sentence
    sentence = _case_normalise(scene, sentence)
    parse = caption_parse(sentence)
    if any(w.label == "unparsed" for w in caption_label(scene, sentence)):
        return None  # words the grammar cannot place: no replacement says what was meant
    edits = [edit for reading in _readings(scene, parse) if (edit := _edit_for(parse, reading)) is not None]
    for edit in sorted(edits, key=lambda e: e.cost):  # stable: the parser's own reading wins a tie
        corrected = _edit_apply(sentence, parse, edit)
        if _is_true(scene, corrected):
            return corrected
    return None


def _is_true(scene: Scene, text: str) -> bool:
    return all(w.label in ("true", "neutral") for w in caption_label(scene, text))


def _sentence_spans(words: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """(first, last) word index of every sentence; the parser's split, a last unfinished one included."""
    spans, first = [], 0
    for i, (text, _, _) in enumerate(words):
        if text in SENTENCE_ENDS:
            spans.append((first, i))
            first = i + 1
    if first < len(words):
        spans.append((first, len(words) - 1))
    return spans


def _true_sentence(scene: Scene) -> str:
    caption = caption_write(scene)
    end = next(end for text, _, end in caption_words(caption) if text in SENTENCE_ENDS)
    return caption[:end]


def _case_normalise(scene: Scene, sentence: str) -> str:
    """Lower-case words the parser cannot place but knows in lower case ("There", "A" opening a sentence).

    The alignment compares words case-insensitively, so this changes no label.
    """
    labels = caption_label(scene, sentence)
    pieces, previous_end = [], 0
    for word in labels:
        lower = word.text.lower()
        fix = word.label == "unparsed" and lower != word.text and lower in VOCABULARY
        pieces += [sentence[previous_end : word.start], lower if fix else word.text]
        previous_end = word.end
    return "".join(pieces) + sentence[previous_end:]


# ----------------------------------------------------------------------------- readings


Reading = tuple[ObjectGroup | None, ...]  # per phrase: the group it is about; None: a true "no ..." phrase


def _readings(scene: Scene, parse: CaptionParse) -> Iterator[Reading]:
    """Every assignment of phrases to groups worth an edit, the parser's own matching first."""
    matches = phrase_matches(scene, parse)
    options = [_phrase_options(scene, parse, k, matches[k][0]) for k in range(len(parse.phrases))]
    if math.prod(len(o) for o in options) > _MOST_READINGS:
        options = [o[:1] for o in options]
    return itertools.product(*options)


def _phrase_options(scene: Scene, parse: CaptionParse, k: int, matched: ObjectGroup) -> list[ObjectGroup | None]:
    """Groups phrase k may be about.

    A definite phrase ("the small star") points back at a group the caption already named, so it
    may be about any group; any other phrase only about a group it names by its shape, a colour or
    a letter: one sharing none of them names an object that is not there. A negated phrase ("there
    is no red circle") stays as it is when true, else it is about a group it wrongly denies.
    """
    phrase = parse.phrases[k]
    if phrase.negated:
        denied = [
            g
            for g in scene.groups
            if g.shape == phrase.shape
            and all(c == g.colour for _, c in phrase.colours)
            and all(s == g.size for _, s in phrase.sizes)
        ]
        return denied or [None]
    letters = {parse.words[i][0] for i, owner in parse.letters if owner == k}
    ordered = [matched, *(g for g in scene.groups if g is not matched)]
    return [
        g
        for g in ordered
        if phrase.determiner == "the"
        or g.shape == phrase.shape
        or any(c == g.colour for _, c in phrase.colours)
        or g.letter in letters
    ]


# ----------------------------------------------------------------------------- edits


def _edit_for(parse: CaptionParse, reading: Reading) -> _Edit | None:
    """The word changes that make the sentence say what `reading` means; None where words cannot."""
    edit = _Edit()
    for k, group in enumerate(reading):
        if group is not None:
            _phrase_fix(parse, k, group, edit)
    for i, k in parse.letters:
        if reading[k] is not None and not _letter_fix(parse, i, k, reading[k], edit):
            return None
    for i, k in parse.no_letters:
        if reading[k] is not None and reading[k].letter is not None:
            edit.replace[i] = "the"  # "has no letter" -> "has the letter K"
            edit.insert_after[i + 1] = (reading[k].letter,)
    for i, subject, obj in parse.relations:
        if parse.phrases[subject].negated or parse.phrases[obj].negated:
            continue  # the parser does not judge relations of what is said not to be there
        if not _relation_fix(parse, i, reading[subject], reading[obj], edit):
            return None
    return edit


def _phrase_fix(parse: CaptionParse, k: int, group: ObjectGroup, edit: _Edit) -> None:
    """Make phrase k describe `group`: attributes, count, the noun, and its verb's number."""
    phrase = parse.phrases[k]
    texts = [text for text, _, _ in parse.words]
    number = "a" if group.count == 1 else NUMBER_WORDS[group.count - 1]
    if phrase.negated:
        edit.replace[phrase.start] = number  # "there are no red circles" -> "there are two red circles"
    _words_fix([(i, c == group.colour) for i, c in phrase.colours], group.colour, edit)
    _words_fix([(i, s == group.size) for i, s in phrase.sizes], group.size, edit)
    # "a" is the grammar's own word for one; after "the" it cannot stand, "one" can
    count_word = "a" if group.count == 1 and phrase.determiner is None else NUMBER_WORDS[group.count - 1]
    _words_fix([(i, n == group.count) for i, n in phrase.counts], count_word, edit)
    if not phrase.counts and phrase.determiner in ("a", "an") and group.count != 1:
        edit.replace[phrase.start] = number
    noun = group_noun(group.shape, group.count)
    if texts[phrase.noun] != noun:
        edit.replace[phrase.noun] = noun
    verb = verb_of(parse, k)
    be = "is" if group.count == 1 else "are"
    if verb is not None and texts[verb] != be:
        edit.replace[verb] = be


def _words_fix(words: list[tuple[int, bool]], value: str, edit: _Edit) -> None:
    """Replace the first wrong word (index, is right) by `value`; delete wrong ones beyond ("red red circle")."""
    has_value = any(right for _, right in words)
    for i, right in words:
        if right:
            continue
        if has_value:
            edit.delete.add(i)
        else:
            edit.replace[i] = value
            has_value = True


def _letter_fix(parse: CaptionParse, i: int, k: int, group: ObjectGroup, edit: _Edit) -> bool:
    """The right letter, or, for a group without one, the claim deleted with the words that frame it."""
    if parse.words[i][0] == group.letter:
        return True
    if group.letter is not None:
        edit.replace[i] = group.letter
        return True
    texts = [text for text, _, _ in parse.words]
    between = range(parse.phrases[k].end, i)
    if not all(texts[j] in _LETTER_FRAME for j in between):
        return False
    tail = range(i + 1, i + 1 + len(_LETTER_FRAME_TAIL))
    has_tail = tuple(texts[j] for j in tail if j < len(texts)) == _LETTER_FRAME_TAIL
    edit.delete |= {*between, i, *(tail if has_tail else ())}
    return True


def _relation_fix(
    parse: CaptionParse, i: int, subject: ObjectGroup | None, obj: ObjectGroup | None, edit: _Edit
) -> bool:
    """The relation that holds between the two groups, changing as few words as possible."""
    if subject is None or obj is None or subject is obj:
        return False
    relation = RELATION_WORDS[parse.words[i][0]]
    if relation_holds(relation, subject, obj):
        return True
    holding = [r for r in _RELATION_PREFERENCE[relation] if relation_holds(r, subject, obj)]
    if not holding:
        return False
    first, *rest = holding[0].split()
    edit.replace[i] = first
    has_of = i + 1 < len(parse.words) and parse.words[i + 1][0] == "of"
    if rest and not has_of:
        edit.insert_after[i] = tuple(rest)
    elif not rest and has_of:
        edit.delete.add(i + 1)
    return True


def _edit_apply(sentence: str, parse: CaptionParse, edit: _Edit) -> str:
    """The edited sentence; a deleted word takes the space before it with it."""
    pieces: list[str] = []
    previous_end = 0
    for i, (text, start, end) in enumerate(parse.words):
        gap = sentence[previous_end:start] if pieces else sentence[: parse.words[0][1]]
        previous_end = end
        if i in edit.delete:
            continue
        pieces += [gap, edit.replace.get(i, text)]
        pieces += [f" {extra}" for extra in edit.insert_after.get(i, ())]
    pieces.append(sentence[previous_end:])
    return "".join(pieces)
