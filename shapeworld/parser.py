"""Labelling every word of any caption as true or hallucinated against a scene's ground truth.

The parser is semantic, not aligned to a reference caption, so it judges what a model wrote in
any phrasing, and stays honest on broken text:

1. Words are split by `caption_words`; sentences end at ".".
2. Noun phrases are chunked: an optional determiner (a, an, the, no), then count, size and colour
   words, then a shape noun. A letter word attaches to the nearest phrase before it in its
   sentence; "has no letter" attaches to the phrase before it too.
3. Each phrase is matched to the group with which the most of its words agree (shape, colour
   and size words, letter and count claims): the reading under which the fewest words are wrong,
   which is what a person fixing the caption changes. "a large red triangle" where there is a
   large red square and a small blue triangle is about the square, so only "triangle" is wrong,
   as in a one-word correction; reading it by its noun would call "large", "red" and any relation
   it stands in wrong as well. On a tie the shape noun decides, then colour, size, letter and
   count: "a small red star" where there is a small blue star and a small red circle is about
   the star, so "red" is the hallucinated word.
4. Each content word is then true iff it agrees with the matched group:
   - size, colour: equal to the group's;
   - a number word ("two"): equal to the group's count;
   - the shape noun: same shape, and, when the phrase has no number word, the count its
     determiner or grammatical number claims ("a"/"an" or a singular noun: one; a plural: two
     or more). "a", "an" and "the" themselves are neutral;
   - a letter: the group bears that letter; "no" in "has no letter": it bears none;
   - a relation word (left, right, above, below): `relation_holds` between the groups of the
     nearest phrase before it and the first after it ("a is left of b"), or, when the sentence
     starts with the relation, of the second and first phrases after it ("left of b is a").
     "of" is neutral.
   - a negated phrase ("there is no blue star"): "no" is hallucinated iff some group has the
     phrase's shape and all its colour and size words; its other words are then true, since
     they describe something that is there.
5. Function words and punctuation are "neutral". A content word that attaches to nothing (an
   adjective without a noun, a relation without two phrases, a letter without a phrase) and any
   word outside the vocabulary is "unparsed": never true. Metrics count unparsed words as not true.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapeworld.grammar import FUNCTION_WORDS, NUMBER_WORDS, PLURALS, PUNCTUATION, caption_words
from shapeworld.scene import COLOURS, SHAPES, SIZES, ObjectGroup, Scene, relation_holds

LABELS = ("true", "hallucinated", "neutral", "unparsed")
CONTENT_KINDS = ("shape", "colour", "size", "count", "relation", "letter")
RELATION_WORDS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
_SINGULAR = {plural: shape for shape, plural in PLURALS.items()}
_DETERMINERS = ("a", "an", "the", "no")


@dataclass(frozen=True)
class WordLabel:
    """One word of a caption, its character span and its verdict (one of `LABELS`)."""

    text: str
    start: int
    end: int
    label: str


@dataclass(frozen=True)
class NounPhrase:
    """A chunked noun phrase; every index is a word index into the caption's words."""

    start: int
    noun: int
    shape: str
    plural: bool
    determiner: str | None
    counts: tuple[tuple[int, int], ...]  # (word index, number claimed)
    sizes: tuple[tuple[int, str], ...]
    colours: tuple[tuple[int, str], ...]
    sentence: int

    @property
    def end(self) -> int:
        """One past the noun."""
        return self.noun + 1

    @property
    def negated(self) -> bool:
        return self.determiner == "no"


@dataclass(frozen=True)
class CaptionParse:
    """The structure of a caption, independent of any scene."""

    words: tuple[tuple[str, int, int], ...]
    phrases: tuple[NounPhrase, ...]
    letters: tuple[tuple[int, int], ...]  # (word index of a letter, index of its phrase)
    no_letters: tuple[tuple[int, int], ...]  # (word index of "no" in "has no letter", phrase index)
    relations: tuple[tuple[int, int, int], ...]  # (word index, subject phrase, object phrase)


def word_kind(word: str) -> str:
    """What a word talks about: a content kind of `CONTENT_KINDS`, "function", or "unknown".

    "no" counts as a count word (it claims zero); single capitals are letters drawn on objects.
    """
    if len(word) == 1 and "A" <= word <= "Z":
        return "letter"
    if word in SHAPES or word in _SINGULAR:
        return "shape"
    if word in COLOURS:
        return "colour"
    if word in SIZES:
        return "size"
    if word in NUMBER_WORDS or word == "no":
        return "count"
    if word in RELATION_WORDS:
        return "relation"
    if word in FUNCTION_WORDS or word in PUNCTUATION:
        return "function"
    return "unknown"


def caption_parse(caption: str) -> CaptionParse:
    """Chunk a caption into noun phrases and attach letters and relations to them."""
    words = tuple(caption_words(caption))
    texts = [w for w, _, _ in words]
    sentence_of = _sentences(texts)
    phrases = _phrases_chunk(texts, sentence_of)
    letters, no_letters, relations = [], [], []
    for i, text in enumerate(texts):
        kind = word_kind(text)
        if kind == "letter":
            owner = _phrase_before(phrases, i, sentence_of[i])
            if owner is not None:
                letters.append((i, owner))
        elif text == "no" and not any(p.start == i and p.negated for p in phrases):
            owner = _phrase_before(phrases, i, sentence_of[i])
            if owner is not None and i + 1 < len(texts) and texts[i + 1] == "letter":
                no_letters.append((i, owner))
        elif kind == "relation":
            pair = _relation_pair(phrases, i, sentence_of[i])
            if pair is not None:
                relations.append((i, *pair))
    return CaptionParse(words, tuple(phrases), tuple(letters), tuple(no_letters), tuple(relations))


def _sentences(texts: list[str]) -> list[int]:
    sentence_of, current = [], 0
    for text in texts:
        sentence_of.append(current)
        if text in (".", "!", "?"):
            current += 1
    return sentence_of


def _phrases_chunk(texts: list[str], sentence_of: list[int]) -> list[NounPhrase]:
    phrases = []
    i = 0
    while i < len(texts):
        j = i
        determiner = texts[j] if texts[j] in _DETERMINERS else None
        if determiner is not None:
            j += 1
        counts, sizes, colours = [], [], []
        while j < len(texts) and word_kind(texts[j]) in ("count", "size", "colour") and texts[j] != "no":
            kind = word_kind(texts[j])
            if kind == "count":
                counts.append((j, NUMBER_WORDS.index(texts[j]) + 1))
            elif kind == "size":
                sizes.append((j, texts[j]))
            else:
                colours.append((j, texts[j]))
            j += 1
        if j < len(texts) and word_kind(texts[j]) == "shape":
            plural = texts[j] in _SINGULAR
            shape = _SINGULAR.get(texts[j], texts[j])
            phrases.append(
                NounPhrase(
                    i,
                    j,
                    shape,
                    plural,
                    determiner,
                    tuple(counts),
                    tuple(sizes),
                    tuple(colours),
                    sentence_of[j],
                )
            )
            i = j + 1
        else:
            i = max(j, i + 1) if determiner is None else i + 1
    return phrases


def _phrase_before(phrases: list[NounPhrase], index: int, sentence: int) -> int | None:
    before = [k for k, p in enumerate(phrases) if p.end <= index and p.sentence == sentence]
    return before[-1] if before else None


def _relation_pair(phrases: list[NounPhrase], index: int, sentence: int) -> tuple[int, int] | None:
    """(subject, object) phrases of a relation word: "a is left of b", or fronted "left of b is a"."""
    before = [k for k, p in enumerate(phrases) if p.end <= index and p.sentence == sentence]
    after = [k for k, p in enumerate(phrases) if p.start > index and p.sentence == sentence]
    if before and after:
        return before[-1], after[0]
    if not before and len(after) >= 2:
        return after[1], after[0]
    return None


def caption_label(scene: Scene, caption: str) -> list[WordLabel]:
    """Label every word of the caption: "true", "hallucinated", "neutral" or "unparsed"."""
    parse = caption_parse(caption)
    labels: dict[int, str] = {}
    matches = phrase_matches(scene, parse)
    for k, phrase in enumerate(parse.phrases):
        labels.update(_phrase_labels(scene, phrase, matches[k][0]))
    for i, k in parse.letters:
        labels[i] = _verdict(matches[k][0].letter == parse.words[i][0])
    for i, k in parse.no_letters:
        labels[i] = _verdict(matches[k][0].letter is None)
    for i, subject, obj in parse.relations:
        if parse.phrases[subject].negated or parse.phrases[obj].negated:
            continue
        relation = RELATION_WORDS[parse.words[i][0]]
        holds = any(relation_holds(relation, a, b) for a in matches[subject] for b in matches[obj] if a is not b)
        labels[i] = _verdict(holds)
    result = []
    for i, (text, start, end) in enumerate(parse.words):
        kind = word_kind(text)
        if i in labels:
            label = labels[i]
        elif kind == "function":
            label = "neutral"
        else:
            label = "unparsed"
        result.append(WordLabel(text, start, end, label))
    return result


def phrase_matches(scene: Scene, parse: CaptionParse) -> list[list[ObjectGroup]]:
    """For each phrase, the groups that fit it best (several only when the phrase is ambiguous)."""
    claims: dict[int, list[str | None]] = {}
    for i, k in parse.letters:
        claims.setdefault(k, []).append(parse.words[i][0])
    for _, k in parse.no_letters:
        claims.setdefault(k, []).append(None)
    matches = []
    for k, phrase in enumerate(parse.phrases):
        keys = [(_fit(phrase, g, claims.get(k, [])), g) for g in scene.groups]
        best = max(key for key, _ in keys)
        matches.append([g for key, g in keys if key == best])
    return matches


def _fit(phrase: NounPhrase, group: ObjectGroup, letters: list[str | None]) -> tuple[int, ...]:
    """How well a phrase fits a group: words that agree in all, then each kind in order of precedence."""
    agreements = (
        int(phrase.shape == group.shape),
        sum(c == group.colour for _, c in phrase.colours),
        sum(s == group.size for _, s in phrase.sizes),
        sum(letter == group.letter for letter in letters),
        int(_count_agrees(phrase, group)),
    )
    return sum(agreements), *agreements


def _count_agrees(phrase: NounPhrase, group: ObjectGroup) -> bool:
    """The count a phrase claims: its number words, else "a"/"an", else the noun's number."""
    if phrase.counts:
        return all(n == group.count for _, n in phrase.counts)
    if phrase.determiner in ("a", "an"):
        return group.count == 1
    return (group.count >= 2) if phrase.plural else (group.count == 1)


def _phrase_labels(scene: Scene, phrase: NounPhrase, group: ObjectGroup) -> dict[int, str]:
    if phrase.negated:
        present = any(
            g.shape == phrase.shape
            and all(c == g.colour for _, c in phrase.colours)
            and all(s == g.size for _, s in phrase.sizes)
            for g in scene.groups
        )
        words = {i: "true" for i, _ in (*phrase.counts, *phrase.sizes, *phrase.colours)}
        return {**words, phrase.noun: "true", phrase.start: _verdict(not present)}
    labels = {i: _verdict(n == group.count) for i, n in phrase.counts}
    labels |= {i: _verdict(s == group.size) for i, s in phrase.sizes}
    labels |= {i: _verdict(c == group.colour) for i, c in phrase.colours}
    noun_true = phrase.shape == group.shape and (bool(phrase.counts) or _count_agrees(phrase, group))
    labels[phrase.noun] = _verdict(noun_true)
    return labels


def _verdict(holds: bool) -> str:
    return "true" if holds else "hallucinated"


def object_recall(scene: Scene, caption: str) -> float:
    """Share of the scene's groups the caption names with the right shape (catches captions that say less)."""
    parse = caption_parse(caption)
    matches = phrase_matches(scene, parse)
    named = {
        id(matches[k][0])
        for k, phrase in enumerate(parse.phrases)
        if not phrase.negated and matches[k][0].shape == phrase.shape
    }
    return sum(id(g) in named for g in scene.groups) / len(scene.groups)
