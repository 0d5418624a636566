import random
import re

import pytest

from reward.lexicon import (
    COLOURS,
    LEXICON_CATEGORIES,
    NUMBER_WORDS,
    OBJECT_CLASSES,
    SIZE_OPPOSITES,
    LexiconPerturbation,
    caption_perturb_lexicon,
    perturber_from_callable,
)

WORD = re.compile(r"\w+|[^\w\s]")
SEEDS = range(30)
ANIMALS_SINGULAR = {singular for singular, _ in OBJECT_CLASSES["animals"]}
ANIMALS_PLURAL = {plural for _, plural in OBJECT_CLASSES["animals"]}


def words_of(caption: str) -> list[str]:
    return WORD.findall(caption)


def bad_words(result: LexiconPerturbation) -> list[str]:
    return [word["text"] for word in result.words if word["label"] == "bad"]


def label_of(result: LexiconPerturbation, index: int) -> str:
    return result.words[index]["label"]


def perturb(caption: str, seed: int, **kwargs) -> LexiconPerturbation:
    result = caption_perturb_lexicon(caption, random.Random(seed), **kwargs)
    assert result is not None
    assert result.caption != caption
    assert result.original == caption
    return result


def assert_only_changed_at(before: str, after: str, positions: set[int]) -> None:
    old, new = words_of(before), words_of(after)
    assert len(old) == len(new)
    changed = {i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b}
    assert changed == positions


@pytest.mark.parametrize("seed", SEEDS)
def test_dog_becomes_another_animal_and_only_it_is_bad(seed):
    result = perturb("The dog sleeps on the grass.", seed, category="object_identification")
    assert_only_changed_at(result.original, result.caption, {1})
    assert words_of(result.caption)[1] in ANIMALS_SINGULAR - {"dog"}
    assert bad_words(result) == [words_of(result.caption)[1]]
    assert result.category == "object_identification"


@pytest.mark.parametrize("seed", SEEDS)
def test_plural_and_capitalised_noun_stays_plural_and_capitalised(seed):
    result = perturb("Dogs chase a ball.", seed, category="object_identification", n_changes=1)
    first = words_of(result.caption)[0]
    if first != "Dogs":  # the ball may have been chosen instead
        assert first[0].isupper()
        assert first.lower() in ANIMALS_PLURAL
        assert bad_words(result) == [first]


@pytest.mark.parametrize("seed", SEEDS)
def test_article_follows_a_changed_noun_but_stays_good(seed):
    result = perturb("I see a dog.", seed, category="object_identification")
    article, animal = words_of(result.caption)[2:4]
    assert article == ("an" if animal[0] in "aeiou" else "a")
    assert label_of(result, 2) == "good"
    assert bad_words(result) == [animal]


def test_a_dog_can_become_a_cat():
    outputs = {perturb("a dog", seed, category="object_identification").caption for seed in range(200)}
    assert "a cat" in outputs
    assert "an elephant" in outputs
    assert not any(output.startswith("a e") or output.startswith("an c") for output in outputs)


@pytest.mark.parametrize("seed", SEEDS)
def test_two_dogs_get_a_different_capitalised_count_and_only_the_count_is_bad(seed):
    result = perturb("Two dogs play in the park.", seed, category="counting")
    count, noun = words_of(result.caption)[:2]
    assert count[0].isupper()
    assert count.lower() in NUMBER_WORDS
    assert count != "Two"
    assert noun == ("dog" if count == "One" else "dogs")
    assert bad_words(result) == [count]
    assert label_of(result, 1) == "good"


@pytest.mark.parametrize("seed", SEEDS)
def test_one_dog_is_becomes_n_dogs_are(seed):
    result = perturb("one small dog is asleep", seed, category="counting")
    count, size, noun, verb = words_of(result.caption)[:4]
    assert count != "one"
    assert (size, noun, verb) == ("small", "dogs", "are")
    assert bad_words(result) == [count]


@pytest.mark.parametrize("seed", SEEDS)
def test_digits_stay_digits(seed):
    result = perturb("There are 3 cats.", seed, category="counting")
    digit = words_of(result.caption)[2]
    assert digit.isdigit()
    assert 1 <= int(digit) <= 12
    assert digit != "3"
    assert words_of(result.caption)[3] == ("cat" if digit == "1" else "cats")
    assert bad_words(result) == [digit]


def test_years_decimals_and_pronoun_one_are_not_counts():
    for caption in ("A photo from 2023.", "It weighs 1.5 kg.", "The one on the bench."):
        assert caption_perturb_lexicon(caption, random.Random(0), category="counting") is None


@pytest.mark.parametrize("seed", SEEDS)
def test_colour_becomes_another_colour(seed):
    result = perturb("The red car parked.", seed, category="visual_attribute")
    assert_only_changed_at(result.original, result.caption, {1})
    colour = words_of(result.caption)[1]
    assert colour in COLOURS
    assert colour != "red"
    assert bad_words(result) == [colour]


def test_grey_never_becomes_gray():
    for seed in range(100):
        assert "gray" not in perturb("a grey cat", seed, category="visual_attribute").caption


def test_in_front_of_becomes_behind():
    result = perturb("The cat is in front of the sofa.", 0, category="spatial_relationship")
    assert result.caption == "The cat is behind the sofa."
    assert bad_words(result) == ["behind"]


def test_behind_becomes_in_front_of_with_all_three_words_bad():
    result = perturb("Behind the car stands a man.", 0, category="spatial_relationship")
    assert result.caption == "In front of the car stands a man."
    assert bad_words(result) == ["In", "front", "of"]


def test_on_top_of_is_one_phrase_not_a_top():
    result = perturb("A cat on top of the table.", 0, category="spatial_relationship")
    assert result.caption == "A cat under the table."
    assert bad_words(result) == ["under"]


def test_inside_of_changes_only_inside():
    result = perturb("The cat is inside of the box.", 0, category="spatial_relationship")
    assert result.caption == "The cat is outside of the box."
    assert bad_words(result) == ["outside"]


def test_left_becomes_right_keeping_capitals():
    result = perturb("LEFT of the tree", 0, category="spatial_relationship")
    assert result.caption == "RIGHT of the tree"


@pytest.mark.parametrize("seed", SEEDS)
def test_size_becomes_an_opposite_size(seed):
    result = perturb("An enormous owl sits.", seed, category="size")
    article, size = words_of(result.caption)[:2]
    assert size.lower() in SIZE_OPPOSITES["enormous"]
    assert article == "A"
    assert bad_words(result) == [size]


@pytest.mark.parametrize("seed", SEEDS)
def test_two_changes_mark_exactly_two_words_bad(seed):
    result = perturb("The red car next to the blue bus.", seed, category="visual_attribute", n_changes=2)
    assert_only_changed_at(result.original, result.caption, {1, 6})
    assert bad_words(result) == [words_of(result.caption)[1], words_of(result.caption)[6]]


def test_nothing_to_change_gives_none():
    rng = random.Random(0)
    assert caption_perturb_lexicon("A dog.", rng, category="visual_attribute") is None
    assert caption_perturb_lexicon("A dog.", rng, category="counting") is None
    assert caption_perturb_lexicon("Hello, world!", rng) is None
    assert caption_perturb_lexicon("", rng) is None


def test_unknown_category_and_zero_changes_are_refused():
    with pytest.raises(ValueError, match="colour"):
        caption_perturb_lexicon("a red dog", random.Random(0), category="colour")
    with pytest.raises(ValueError, match="n_changes"):
        caption_perturb_lexicon("a red dog", random.Random(0), n_changes=0)


def test_same_seed_gives_same_negative():
    caption = "Two small dogs sit to the left of a red car near a tall tree."
    for seed in SEEDS:
        assert caption_perturb_lexicon(caption, random.Random(seed)) == caption_perturb_lexicon(
            caption, random.Random(seed)
        )
    outputs = {caption_perturb_lexicon(caption, random.Random(seed)).caption for seed in SEEDS}
    assert len(outputs) > 5


def test_any_category_draws_each_category_the_caption_has():
    caption = "Two small dogs sit to the left of a red car."
    categories = {caption_perturb_lexicon(caption, random.Random(seed)).category for seed in range(100)}
    assert categories == set(LEXICON_CATEGORIES)


@pytest.mark.parametrize(
    "caption",
    [
        "Two small dogs sit to the left of a red car near a tall tree.",
        "Café — un chien 🐕 près du lac!! A dog, a cat… (left) «3 birds»",
        "“Two” GREY dogs—under the table; 12 cups?!",
        "日本の犬 and one cat",
    ],
)
def test_word_offsets_slice_the_perturbed_caption(caption):
    for seed in SEEDS:
        for category in (*LEXICON_CATEGORIES, None):
            result = caption_perturb_lexicon(caption, random.Random(seed), category=category, n_changes=2)
            if result is None:
                continue
            assert [w["text"] for w in result.words] == words_of(result.caption)
            for word in result.words:
                assert result.caption[word["start"] : word["end"]] == word["text"]
                assert word["label"] in ("good", "bad")
            assert bad_words(result)


def test_plugged_in_perturber_labels_the_replaced_word_bad():
    perturber = perturber_from_callable(lambda caption: caption.replace("dog", "cat"), category="llm")
    result = perturber("A brown dog runs.", random.Random(0))
    assert result.caption == "A brown cat runs."
    assert result.category == "llm"
    assert bad_words(result) == ["cat"]
    assert [w["text"] for w in result.words] == words_of(result.caption)


def test_plugged_in_perturber_labels_inserted_words_bad():
    perturber = perturber_from_callable(lambda caption: caption.replace("runs", "never runs fast"))
    result = perturber("A brown dog runs.", random.Random(0))
    assert bad_words(result) == ["never", "fast"]


def test_plugged_in_perturber_gives_none_without_a_change():
    caption = "A brown dog runs."
    assert perturber_from_callable(lambda c: c)(caption, random.Random(0)) is None
    assert perturber_from_callable(lambda c: "")(caption, random.Random(0)) is None
    assert perturber_from_callable(lambda c: "   ")(caption, random.Random(0)) is None


def test_noun_lexicon_has_no_word_in_two_classes():
    forms = [form for nouns in OBJECT_CLASSES.values() for pair in nouns for form in pair]
    assert len(forms) == len(set(forms))
    assert len(forms) // 2 >= 150
    assert not set(forms) & set(COLOURS)
