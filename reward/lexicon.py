"""Synthetic hard negatives from a user's own free-text captions, with exact word labels.

TLDR trains its token-level reward model on captions that an LLM perturbed with one or two very
small changes in one hallucination category (dog→cat, yellow→blue, one duck→four ducks,
left→right). A user who brings captions without scene ground truth still needs such negatives, so
this module makes them from small English lexicons: find a word of the category, swap it for a
confusable member of the same class, and label the swapped words "bad" and every other word "good".
Because we make the change ourselves the labels are exact, with no alignment guesswork.

`perturber_from_callable` wraps any text→text function (an LLM call the user plugs in) into the same
shape; its labels come from a difflib alignment of the word lists, as in the paper.

Categories: the first four are TLDR's taxonomy names. "size" is an extra lexicon category kept apart
from "visual_attribute" on purpose: size words swap with their opposites (small↔large), not with any
member of a class, and reporting them separately shows how well the reward model catches each kind.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable
from dataclasses import dataclass

from reward.words import response_words

LEXICON_CATEGORIES = ("object_identification", "visual_attribute", "counting", "spatial_relationship", "size")

WordLabel = dict[str, str | int]

# Nouns grouped into classes whose members are easy to confuse with each other: a dog becomes a cat,
# never a car, so the negative stays plausible and hard. Each entry is (singular, plural). Words with
# one form for both numbers (sheep, fish) or two common senses (bat, mouse) are left out on purpose.
# fmt: off
OBJECT_CLASSES: dict[str, tuple[tuple[str, str], ...]] = {
    "animals": (
        ("dog", "dogs"), ("cat", "cats"), ("horse", "horses"), ("cow", "cows"), ("bird", "birds"),
        ("duck", "ducks"), ("rabbit", "rabbits"), ("bear", "bears"), ("lion", "lions"),
        ("tiger", "tigers"), ("elephant", "elephants"), ("giraffe", "giraffes"), ("zebra", "zebras"),
        ("monkey", "monkeys"), ("goat", "goats"), ("pig", "pigs"), ("chicken", "chickens"),
        ("squirrel", "squirrels"), ("fox", "foxes"), ("wolf", "wolves"), ("owl", "owls"),
        ("frog", "frogs"), ("turtle", "turtles"), ("butterfly", "butterflies"), ("goose", "geese"),
        ("donkey", "donkeys"), ("camel", "camels"), ("penguin", "penguins"), ("swan", "swans"),
        ("parrot", "parrots"), ("puppy", "puppies"), ("kitten", "kittens"),
    ),
    "vehicles": (
        ("car", "cars"), ("truck", "trucks"), ("bus", "buses"), ("bicycle", "bicycles"),
        ("motorcycle", "motorcycles"), ("van", "vans"), ("train", "trains"), ("boat", "boats"),
        ("airplane", "airplanes"), ("helicopter", "helicopters"), ("tractor", "tractors"),
        ("scooter", "scooters"), ("taxi", "taxis"), ("ship", "ships"), ("tram", "trams"),
        ("jeep", "jeeps"), ("ambulance", "ambulances"), ("canoe", "canoes"),
    ),
    "furniture": (
        ("chair", "chairs"), ("table", "tables"), ("sofa", "sofas"), ("couch", "couches"),
        ("bed", "beds"), ("desk", "desks"), ("bench", "benches"), ("stool", "stools"),
        ("shelf", "shelves"), ("cabinet", "cabinets"), ("dresser", "dressers"),
        ("bookcase", "bookcases"), ("armchair", "armchairs"), ("wardrobe", "wardrobes"),
        ("ottoman", "ottomans"), ("nightstand", "nightstands"),
    ),
    "food": (
        ("apple", "apples"), ("banana", "bananas"), ("sandwich", "sandwiches"), ("pizza", "pizzas"),
        ("cake", "cakes"), ("donut", "donuts"), ("carrot", "carrots"), ("cookie", "cookies"),
        ("burger", "burgers"), ("tomato", "tomatoes"), ("potato", "potatoes"), ("lemon", "lemons"),
        ("strawberry", "strawberries"), ("egg", "eggs"), ("bagel", "bagels"), ("cupcake", "cupcakes"),
        ("pear", "pears"), ("peach", "peaches"), ("cherry", "cherries"), ("muffin", "muffins"),
        ("pie", "pies"), ("sausage", "sausages"), ("pineapple", "pineapples"),
        ("watermelon", "watermelons"),
    ),
    "people": (
        ("man", "men"), ("woman", "women"), ("boy", "boys"), ("girl", "girls"),
        ("child", "children"), ("baby", "babies"), ("person", "people"), ("lady", "ladies"),
        ("gentleman", "gentlemen"), ("teenager", "teenagers"), ("toddler", "toddlers"),
        ("kid", "kids"), ("player", "players"), ("soldier", "soldiers"), ("chef", "chefs"),
        ("doctor", "doctors"), ("farmer", "farmers"), ("teacher", "teachers"),
        ("student", "students"), ("worker", "workers"), ("tourist", "tourists"),
    ),
    "clothing": (
        ("shirt", "shirts"), ("jacket", "jackets"), ("hat", "hats"), ("dress", "dresses"),
        ("skirt", "skirts"), ("coat", "coats"), ("scarf", "scarves"), ("sweater", "sweaters"),
        ("hoodie", "hoodies"), ("tie", "ties"), ("boot", "boots"), ("shoe", "shoes"),
        ("sock", "socks"), ("glove", "gloves"), ("cap", "caps"), ("vest", "vests"),
        ("uniform", "uniforms"), ("helmet", "helmets"), ("belt", "belts"), ("sandal", "sandals"),
    ),
    "household_objects": (
        ("cup", "cups"), ("mug", "mugs"), ("bowl", "bowls"), ("plate", "plates"),
        ("bottle", "bottles"), ("vase", "vases"), ("lamp", "lamps"), ("clock", "clocks"),
        ("book", "books"), ("phone", "phones"), ("laptop", "laptops"), ("remote", "remotes"),
        ("pillow", "pillows"), ("blanket", "blankets"), ("candle", "candles"), ("spoon", "spoons"),
        ("fork", "forks"), ("knife", "knives"), ("umbrella", "umbrellas"), ("basket", "baskets"),
        ("bucket", "buckets"), ("towel", "towels"), ("mirror", "mirrors"),
        ("television", "televisions"),
    ),
    "nature": (
        ("tree", "trees"), ("flower", "flowers"), ("rock", "rocks"), ("mountain", "mountains"),
        ("river", "rivers"), ("lake", "lakes"), ("cloud", "clouds"), ("bush", "bushes"),
        ("leaf", "leaves"), ("hill", "hills"), ("beach", "beaches"), ("wave", "waves"),
        ("stone", "stones"), ("log", "logs"), ("field", "fields"), ("pond", "ponds"),
        ("island", "islands"), ("forest", "forests"),
    ),
    "sports_equipment": (
        ("ball", "balls"), ("kite", "kites"), ("frisbee", "frisbees"), ("surfboard", "surfboards"),
        ("skateboard", "skateboards"), ("racket", "rackets"), ("ski", "skis"),
        ("snowboard", "snowboards"),
    ),
}

# "orange" is deliberately only a colour: as a fruit too, "an orange cat" could become "an apple cat".
COLOURS = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray",
    "beige", "gold", "silver", "turquoise", "violet", "maroon", "navy", "teal", "cyan", "magenta",
)
# Spellings of one colour: "grey" must never become "gray", which would be no change at all.
_COLOUR_SPELLINGS = {"grey": "gray"}

NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}
_DIGIT_RANGE = range(1, 13)  # years and house numbers ("2023", "221") are not counts

# Each spatial phrase with its opposite. Not symmetric everywhere ("under" → "on top of", "over" →
# "under"): the opposite is what makes the most natural wrong caption.
SPATIAL_OPPOSITES = {
    "left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost",
    "above": "below", "below": "above", "over": "under", "under": "on top of",
    "underneath": "on top of", "beneath": "above", "on top of": "under",
    "in front of": "behind", "behind": "in front of", "ahead of": "behind",
    "inside": "outside", "outside": "inside",
    "near": "far from", "far from": "near", "next to": "far from", "close to": "far from",
    "top": "bottom", "bottom": "top", "upper": "lower", "lower": "upper",
    "front": "back", "back": "front", "into": "out of", "out of": "into",
    "toward": "away from", "towards": "away from", "away from": "toward",
}

# Each size word with the words that contradict it; one is drawn at random.
SIZE_OPPOSITES = {
    "small": ("large", "big", "huge"), "large": ("small", "tiny"), "big": ("small", "little", "tiny"),
    "tiny": ("huge", "large", "big"), "huge": ("tiny", "small"), "little": ("big", "large"),
    "giant": ("tiny", "small"), "enormous": ("tiny", "small"), "massive": ("tiny", "small"),
    "miniature": ("huge", "large"), "tall": ("short",), "short": ("tall", "long"), "long": ("short",),
    "wide": ("narrow",), "narrow": ("wide",), "thick": ("thin",), "thin": ("thick",),
    "smaller": ("larger", "bigger"), "larger": ("smaller",), "bigger": ("smaller",),
    "taller": ("shorter",), "shorter": ("taller", "longer"), "longer": ("shorter",),
}

# fmt: on

# noun form → (class, index in class, is plural)
_NOUN_FORMS = {
    form: (class_name, index, is_plural)
    for class_name, nouns in OBJECT_CLASSES.items()
    for index, forms in enumerate(nouns)
    for is_plural, form in enumerate(forms)
}
_ADJECTIVES = frozenset(COLOURS) | frozenset(_COLOUR_SPELLINGS) | frozenset(SIZE_OPPOSITES)
# "the one on the left" is a pronoun, not a count.
_PRONOUN_ONE_AFTER = frozenset({"the", "this", "that", "each", "every", "any", "no", "another", "which"})
_SPATIAL_PHRASES = sorted((tuple(phrase.split()) for phrase in SPATIAL_OPPOSITES), key=len, reverse=True)
_VERB_AGREEMENT = {"is": "are", "are": "is", "was": "were", "were": "was"}


@dataclass(frozen=True)
class LexiconPerturbation:
    """A hard negative with one label per word of the perturbed caption.

    `words` covers every word and punctuation mark of `caption` (split by `\\w+|[^\\w\\s]`), each as
    {"text", "start", "end", "label"}; "bad" marks exactly the words that carry the new error.
    """

    caption: str
    category: str
    words: list[WordLabel]
    original: str


Perturber = Callable[[str, random.Random], LexiconPerturbation | None]


@dataclass(frozen=True)
class _Word:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Candidate:
    """Words [first, last] of the caption that one replacement may change."""

    first: int
    last: int


@dataclass(frozen=True)
class _Edit:
    """Replace caption[start:end] by text; `bad` edits are the error, the rest keep grammar."""

    start: int
    end: int
    text: str
    bad: bool


def _caption_words(caption: str) -> list[_Word]:
    return [_Word(text, start, end) for text, start, end in response_words(caption)]


def _case_like(template: str, text: str) -> str:
    """Write `text` in the case of `template`, so "Dogs" becomes "Cats" and "DOG" becomes "CAT"."""
    if len(template) > 1 and template.isupper():
        return text.upper()
    if template[:1].isupper():
        return text[:1].upper() + text[1:]
    return text


def _article_for(word: str) -> str:
    """Pick "a" or "an" by the sound the word starts with; spelling alone gets "an uniform" wrong."""
    lower = word.lower()
    if lower.isdigit():
        return "an" if lower.startswith("8") or lower in ("11", "18") else "a"
    if lower.startswith(("uni", "use", "usu", "eu", "one", "once", "ur")):
        return "a"
    if lower.startswith(("hour", "honest", "honour", "honor", "heir")):
        return "an"
    return "an" if lower[:1] in "aeiou" else "a"


def _number_value(word: str) -> int | None:
    lower = word.lower()
    if lower in NUMBER_WORDS:
        return NUMBER_WORDS[lower]
    if lower.isascii() and lower.isdigit() and int(lower) in _DIGIT_RANGE:
        return int(lower)
    return None


def _is_part_of_longer_number(caption: str, word: _Word) -> bool:
    """True for the "1" of "1.5" or "3:30": a fragment, not a count of objects."""
    before = caption[max(word.start - 2, 0) : word.start]
    after = caption[word.end : word.end + 2]
    return (len(before) == 2 and before[0].isdigit() and before[1] in ".,:/") or (
        len(after) == 2 and after[0] in ".,:/" and after[1].isdigit()
    )


def _candidates_find(caption: str, words: list[_Word], category: str) -> list[_Candidate]:
    """Every word (or spatial phrase) of the caption that the category's lexicon can change."""
    lowers = [word.text.lower() for word in words]
    if category == "object_identification":
        return [_Candidate(i, i) for i, lower in enumerate(lowers) if lower in _NOUN_FORMS]
    if category == "visual_attribute":
        return [_Candidate(i, i) for i, lower in enumerate(lowers) if lower in COLOURS or lower in _COLOUR_SPELLINGS]
    if category == "size":
        return [_Candidate(i, i) for i, lower in enumerate(lowers) if lower in SIZE_OPPOSITES]
    if category == "counting":
        return [
            _Candidate(i, i)
            for i, word in enumerate(words)
            if _number_value(word.text) is not None
            and not (lowers[i] == "one" and i > 0 and lowers[i - 1] in _PRONOUN_ONE_AFTER)
            and not _is_part_of_longer_number(caption, word)
        ]
    if category == "spatial_relationship":
        found = []
        i = 0
        while i < len(words):
            # longest phrase first, so "on top of" is one change and not a "top" inside it
            phrase = next((p for p in _SPATIAL_PHRASES if tuple(lowers[i : i + len(p)]) == p), None)
            if phrase is None:
                i += 1
                continue
            found.append(_Candidate(i, i + len(phrase) - 1))
            i += len(phrase)
        return found
    raise ValueError(f"unknown lexicon category {category!r}; use one of {', '.join(LEXICON_CATEGORIES)}")


def _replacement_choose(lower: str, category: str, rng: random.Random) -> str:
    """A different member of the same confusable class, in lower case and the same grammatical number."""
    if category == "object_identification":
        class_name, index, is_plural = _NOUN_FORMS[lower]
        others = [forms for i, forms in enumerate(OBJECT_CLASSES[class_name]) if i != index]
        return rng.choice(others)[is_plural]
    if category == "visual_attribute":
        colour = _COLOUR_SPELLINGS.get(lower, lower)
        return rng.choice([other for other in COLOURS if other != colour])
    if category == "size":
        return rng.choice(SIZE_OPPOSITES[lower])
    if category == "spatial_relationship":
        return SPATIAL_OPPOSITES[lower]
    # counting: a number word stays a word and a digit stays a digit, so the style of the caption holds
    value = _number_value(lower)
    new_value = rng.choice([n for n in _DIGIT_RANGE if n != value])
    if lower.isdigit():
        return str(new_value)
    return next(word for word, n in NUMBER_WORDS.items() if n == new_value)


def _count_agreement_edits(words: list[_Word], number_index: int, old: int, new: int) -> list[_Edit]:
    """Keep "one dog is" ↔ "three dogs are" grammatical when a count crosses one.

    The noun is found after the number, past colour and size words ("two small red dogs"). These
    edits are labelled good: the error lives in the number, and the noun is still the right object.
    """
    if (old == 1) == (new == 1):
        return []
    noun_index = number_index + 1
    while noun_index < len(words) and words[noun_index].text.lower() in _ADJECTIVES:
        noun_index += 1
    if noun_index >= len(words) or words[noun_index].text.lower() not in _NOUN_FORMS:
        return []
    noun = words[noun_index]
    class_name, index, _ = _NOUN_FORMS[noun.text.lower()]
    edits = [_Edit(noun.start, noun.end, _case_like(noun.text, OBJECT_CLASSES[class_name][index][new != 1]), False)]
    if noun_index + 1 < len(words) and words[noun_index + 1].text.lower() in _VERB_AGREEMENT:
        verb = words[noun_index + 1]
        is_singular_verb = verb.text.lower() in ("is", "was")
        if is_singular_verb != (new == 1):
            edits.append(_Edit(verb.start, verb.end, _case_like(verb.text, _VERB_AGREEMENT[verb.text.lower()]), False))
    return edits


def _article_edit(words: list[_Word], first: int, replacement: str) -> _Edit | None:
    """Turn "a apple" into "an apple". Labelled good: the article follows the word, it is no new error."""
    if first == 0 or words[first - 1].text.lower() not in ("a", "an"):
        return None
    article = words[first - 1]
    wanted = _article_for(replacement)
    if article.text.lower() == wanted:
        return None
    return _Edit(article.start, article.end, _case_like(article.text, wanted), False)


def _edits_apply(caption: str, edits: list[_Edit]) -> tuple[str, list[tuple[int, int]]]:
    """The new caption and the character spans, in it, of the bad edits."""
    pieces, bad_spans = [], []
    cursor, length = 0, 0
    for edit in sorted(edits, key=lambda e: e.start):
        pieces.append(caption[cursor : edit.start])
        length += edit.start - cursor
        if edit.bad:
            bad_spans.append((length, length + len(edit.text)))
        pieces.append(edit.text)
        length += len(edit.text)
        cursor = edit.end
    pieces.append(caption[cursor:])
    return "".join(pieces), bad_spans


def _words_label(caption: str, bad_spans: list[tuple[int, int]]) -> list[WordLabel]:
    return [
        {
            "text": word.text,
            "start": word.start,
            "end": word.end,
            "label": "bad" if any(start < word.end and word.start < end for start, end in bad_spans) else "good",
        }
        for word in _caption_words(caption)
    ]


def caption_perturb_lexicon(
    caption: str, rng: random.Random, *, category: str | None = None, n_changes: int = 1
) -> LexiconPerturbation | None:
    """Make a hard negative of `caption` by swapping `n_changes` lexicon words of one category.

    TLDR's negatives carry "1 or 2 very small changes", so `n_changes` is usually 1 or 2; fewer are
    made when the caption has fewer candidates. With `category=None` one is drawn from those the
    caption has words for. Returns None when the caption has nothing of the category to change.
    Grammar kept in step with a change ("a"/"an", a noun's number after a count, "is"/"are") is
    labelled good. All randomness comes from `rng`, so the same seed gives the same negative.
    Matches `Perturber`, so it can stand wherever a plugged-in perturber would.
    """
    if n_changes < 1:
        raise ValueError(f"n_changes must be at least 1, got {n_changes}")
    if category is not None and category not in LEXICON_CATEGORIES:
        raise ValueError(f"unknown lexicon category {category!r}; use one of {', '.join(LEXICON_CATEGORIES)}")
    words = _caption_words(caption)
    if category is None:
        available = [c for c in LEXICON_CATEGORIES if _candidates_find(caption, words, c)]
        if not available:
            return None
        category = rng.choice(available)
    candidates = _candidates_find(caption, words, category)
    if not candidates:
        return None
    chosen = sorted(rng.sample(candidates, min(n_changes, len(candidates))), key=lambda c: c.first)

    bad_edits, grammar_edits = [], []
    for candidate in chosen:
        first, last = words[candidate.first], words[candidate.last]
        original = caption[first.start : last.end]
        lower = " ".join(word.text.lower() for word in words[candidate.first : candidate.last + 1])
        replacement = _replacement_choose(lower, category, rng)
        bad_edits.append(_Edit(first.start, last.end, _case_like(original, replacement), True))
        article = _article_edit(words, candidate.first, replacement)
        if article is not None:
            grammar_edits.append(article)
        if category == "counting":
            grammar_edits += _count_agreement_edits(
                words, candidate.first, _number_value(lower) or 0, _number_value(replacement) or 0
            )
    # a grammar edit never overrides a chosen change (e.g. "one two dogs" with both numbers chosen)
    edits = bad_edits + [g for g in grammar_edits if not any(g.start < b.end and b.start < g.end for b in bad_edits)]
    perturbed, bad_spans = _edits_apply(caption, edits)
    if perturbed == caption:
        return None
    return LexiconPerturbation(perturbed, category, _words_label(perturbed, bad_spans), caption)


def _words_label_aligned(original: str, perturbed: str) -> list[WordLabel]:
    """Label each word of `perturbed` bad when it replaces or adds to the original (TLDR's difflib rule).

    Words are compared in lower case: a change of case alone is no hallucination. Deleted words leave
    nothing in the perturbed caption to mark, so a deletion alone yields no bad word.
    """
    original_words = [word.text.lower() for word in _caption_words(original)]
    perturbed_words = _caption_words(perturbed)
    matcher = difflib.SequenceMatcher(None, original_words, [w.text.lower() for w in perturbed_words], autojunk=False)
    bad = set()
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            bad.update(range(j1, j2))
    return [
        {"text": word.text, "start": word.start, "end": word.end, "label": "bad" if j in bad else "good"}
        for j, word in enumerate(perturbed_words)
    ]


def perturber_from_callable(fn: Callable[[str], str], *, category: str = "unspecified") -> Perturber:
    """Turn any caption→caption function (say, an LLM prompted as in TLDR) into a `Perturber`.

    The function owns its randomness, so the `rng` argument is accepted and ignored. Returns None when
    the function gives back an empty text or one with no changed word: with no bad word it would be a
    positive passed off as a negative.
    """

    def caption_perturb(caption: str, rng: random.Random) -> LexiconPerturbation | None:
        perturbed = fn(caption)
        if not perturbed or not perturbed.strip():
            return None
        words = _words_label_aligned(caption, perturbed)
        if not any(word["label"] == "bad" for word in words):
            return None
        return LexiconPerturbation(perturbed, category, words, caption)

    return caption_perturb
