import json
import random

from PIL import Image

from reward.data import (
    captions_jsonl_read,
    correction_example,
    image_side_negative,
    labelled_jsonl_read,
    reflected_negative,
    scene_altered,
    scene_examples,
    shapeworld_dir_read,
)
from shapeworld.dataset import dataset_write
from shapeworld.grammar import caption_words, caption_write
from shapeworld.parser import caption_label
from shapeworld.render import scene_render
from shapeworld.scene import LETTER_SHAPES, Scene, scene_sample


def _bad_words(example) -> list[str]:
    return [example.caption[s:e] for s, e in example.bad_spans]


def test_scene_examples_pair_a_true_caption_with_hard_negatives_labelled_by_the_parser():
    rng = random.Random(0)
    for _ in range(50):
        scene = scene_sample(rng)
        examples = scene_examples(scene, scene_render(scene), rng, negatives=2)
        assert examples[0].category == "true" and examples[0].is_good
        for negative in examples[1:]:
            assert negative.bad_spans, negative.caption
            labels = {(w.start, w.end): w.label for w in caption_label(scene, negative.caption)}
            assert all(labels[span] in ("hallucinated", "unparsed") for span in negative.bad_spans)
            words = {(s, e) for _, s, e in caption_words(negative.caption)}
            assert set(negative.bad_spans) <= words


def test_an_altered_scene_changes_one_colour_or_shape_and_nothing_else():
    rng = random.Random(1)
    for _ in range(200):
        scene = scene_sample(rng)
        altered = scene_altered(scene, rng)
        changes = [
            (a, b)
            for a, b in zip(scene.groups, altered.groups, strict=True)
            if (a.shape, a.colour) != (b.shape, b.colour)
        ]
        assert len(changes) == 1
        before, after = changes[0]
        assert (before.shape == after.shape) != (before.colour == after.colour)
        assert (before.size, before.count, before.letter, before.positions) == (
            after.size,
            after.count,
            after.letter,
            after.positions,
        )
        assert after.letter is None or after.shape in LETTER_SHAPES
        assert len({(g.shape, g.colour, g.size) for g in altered.groups}) == len(altered.groups)


def test_an_image_side_negative_keeps_the_true_caption_and_flags_what_the_image_contradicts():
    rng = random.Random(2)
    for _ in range(50):
        scene = scene_sample(rng)
        caption = caption_write(scene)
        negative = image_side_negative(scene, caption, rng, 64)
        assert negative.caption == caption and negative.category == "image_side"
        assert negative.image.size == (64, 64) and negative.image.tobytes() != scene_render(scene).tobytes()
        assert negative.bad_spans
        assert {caption[s:e] for s, e in negative.bad_spans} <= {
            word for g in scene.groups for word in (g.colour, g.shape, g.shape + "s", g.shape + "es")
        } | {"left", "right", "above", "below"}


def test_a_reflected_negative_keeps_the_true_caption_and_flags_only_relation_words():
    rng = random.Random(5)
    made = 0
    for index in range(60):
        scene = scene_sample(rng)
        caption = caption_write(scene, rng if index % 2 else None)
        negative = reflected_negative(scene, caption, rng, 64)
        if len(scene.groups) == 1:
            assert negative is None
            continue
        made += 1
        assert negative.caption == caption and negative.category == "reflected"
        assert negative.image.tobytes() != scene_render(scene).tobytes()
        assert _bad_words(negative) and set(_bad_words(negative)) <= {"left", "right", "above", "below"}
    assert made > 20


def test_a_caption_without_a_relation_has_no_reflected_negative():
    scene = Scene(groups=(scene_sample(random.Random(0)).groups[0],))
    assert reflected_negative(scene, caption_write(scene), random.Random(0), 64) is None


def test_a_correction_marks_replaced_and_deleted_words_of_the_original_bad():
    image = Image.new("RGB", (8, 8))
    example = correction_example(image, "a small red circle is left of a blue star .", "a small red circle .")
    assert _bad_words(example) == ["is", "left", "of", "a", "blue", "star"]
    example = correction_example(image, "there is a green square .", "there is a red square .")
    assert _bad_words(example) == ["green"]


def test_labelled_jsonl_reports_bad_lines_by_number_and_keeps_the_rest(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    good = {"image": "a.png", "caption": "a red circle .", "words": [{"start": 2, "end": 5, "label": "bad"}]}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "words": [{"start": 2, "end": 99, "label": "bad"}]}),
        json.dumps({**good, "image": "missing.png"}),
        json.dumps({**good, "image": "broken.png"}),
        json.dumps({"image": "a.png", "words": []}),
        "",
        json.dumps({**good, "words": [{"start": 0, "end": 1, "label": "maybe"}]}),
        json.dumps({**good, "caption": "a blue circle .", "words": [{"start": 2, "end": 6, "label": "bad"}]}),
    ]
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(lines) + "\n")
    examples, problems = labelled_jsonl_read(path)
    assert [e.caption for e in examples] == ["a red circle .", "a blue circle ."]
    assert _bad_words(examples[0]) == ["red"] and _bad_words(examples[1]) == ["blue"]
    reasons = {p.line: p.reason for p in problems}
    assert set(reasons) == {2, 3, 4, 5, 6, 8}
    assert "JSON" in reasons[2]
    assert "outside the caption" in reasons[3]
    assert "missing.png" in reasons[4]
    assert "broken.png" in reasons[5]
    assert "caption" in reasons[6]
    assert "maybe" in reasons[8]


def test_a_shapeworld_folder_gives_every_caption_and_perturbation_with_exact_labels(tmp_path):
    dataset_write(tmp_path, n=5, seed=3)
    examples = shapeworld_dir_read(tmp_path)
    records = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert len(examples) == sum(1 + len(r["perturbations"]) for r in records)
    assert all(e.is_good for e in examples if e.category == "true")
    assert all(e.bad_spans for e in examples if e.category != "true")


def test_free_text_captions_get_a_lexicon_negative_with_the_swapped_word_bad(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "dog.png")
    path = tmp_path / "captions.jsonl"
    path.write_text(
        json.dumps({"image": "dog.png", "caption": "A brown dog sits left of a red car."})
        + "\n"
        + json.dumps({"image": "dog.png"})
        + "\n"
    )
    examples, problems = captions_jsonl_read(path, random.Random(0))
    assert [p.line for p in problems] == [2]
    true, negative = examples
    assert true.is_good and true.caption == "A brown dog sits left of a red car."
    assert negative.bad_spans and negative.caption != true.caption
    original_words = [w for w, _, _ in caption_words(true.caption)]
    changed = [w for w, _, _ in caption_words(negative.caption) if w not in original_words]
    assert sorted(_bad_words(negative)) == sorted(changed)
