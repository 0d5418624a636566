"""A short pretraining run learns, saves a loadable captioner, and its data are what the model expects."""

import dataclasses
import os
import random

import numpy as np
import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from shapeworld.grammar import VOCABULARY, caption_words, caption_write
from shapeworld.pretrain import (
    PatchProbe,
    PretrainConfig,
    PromptCoder,
    answer_loss,
    answer_token_weights,
    batches_from_pools,
    captioner_pretrain,
    correction_input,
    cpu_has_native_bf16,
    example_pools,
    lr_factor,
    patch_targets,
    pixels_normalise,
    pools_open,
)
from shapeworld.render import scene_render
from shapeworld.scene import LETTERS, ObjectGroup, Scene, scene_sample
from shapeworld.tiny_vlm import CAPTION_INSTRUCTION, correction_instruction, tiny_vlm_build
from tests.shapeworld.micro import MICRO

MICRO_RUN = PretrainConfig(minutes=0.05, batch_size=16, lr=3e-3, warmup_steps=5, save_reserve_s=0.0, model=MICRO)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("captioner")
    progress = []
    stats = captioner_pretrain(MICRO_RUN, directory, on_progress=lambda f, m: progress.append((f, m)))
    return directory, stats, progress


def test_a_short_run_lowers_the_loss_and_reports_progress(trained):
    _, stats, progress = trained
    assert stats["steps"] > 5
    assert stats["final_loss"] < stats["first_loss"]
    assert stats["seconds"] < 10
    assert progress[-1][0] == 1.0


def test_a_run_trains_on_every_core_by_default(trained):
    _, stats, _ = trained
    assert stats["threads"] == (os.cpu_count() or 1)


def test_a_run_in_bfloat16_autocast_learns_and_saves_float32_weights(tmp_path):
    config = dataclasses.replace(MICRO_RUN, steps=30, minutes=5.0, bf16_autocast=True)
    stats = captioner_pretrain(config, tmp_path)
    assert stats["steps"] == 30 and stats["final_loss"] < stats["first_loss"]
    assert set(stats["probe_accuracy"]) and all(0.0 <= a <= 1.0 for a in stats["probe_accuracy"].values())
    model = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize(
    ("capabilities", "native"),
    [({"avx2": True, "avx512_f": True}, False), ({"avx512_bf16": True}, True), ({"amx_bf16": True}, True)],
)
def test_bfloat16_is_chosen_only_where_the_cpu_multiplies_it_natively(monkeypatch, capabilities, native):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert cpu_has_native_bf16() is native


def test_a_run_records_the_precision_it_chose(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx2": True}, raising=False)
    stats = captioner_pretrain(dataclasses.replace(MICRO_RUN, steps=2, minutes=5.0), tmp_path)
    assert stats["config"]["bf16_autocast"] is False


def test_the_run_saves_a_captioner_that_loads_and_writes_vocabulary_words(trained):
    directory, _, _ = trained
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    processor = AutoProcessor.from_pretrained(directory)
    processor.tokenizer.padding_side = "left"
    images = [scene_render(scene_sample(random.Random(i)), size=MICRO.image_size) for i in range(3)]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": CAPTION_INSTRUCTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(images=images, text=[prompt] * 3, padding=True, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False, bad_words_ids=[[processor.image_token_id]])
    captions = processor.tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert len(captions) == 3
    allowed = set(VOCABULARY) | {"describe", "fix", "caption", "look", "again", "at", "answer", ":", "everything"}
    for caption in captions:
        assert all(word in allowed for word, _, _ in caption_words(caption))


def test_prompt_coder_matches_the_chat_template_with_an_answer():
    _, processor = tiny_vlm_build(MICRO)
    coder = PromptCoder(processor)
    answer = "a large red circle with the letter K is left of two small blue stars ."
    for instruction in (CAPTION_INSTRUCTION, correction_instruction(answer, ["red", "K"])):
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ]
        text = processor.apply_chat_template(messages)
        expected = processor(images=[scene_render(scene_sample(random.Random(0)), size=32)], text=[text])
        ids, answer_start = coder.sequence(instruction, answer)
        assert ids == expected["input_ids"][0]
        assert processor.tokenizer.decode(ids[answer_start:], skip_special_tokens=True) == answer


def test_patch_targets_label_the_patches_under_an_object():
    scene = Scene(groups=(ObjectGroup("square", "blue", "large", 1, "K", ((0.5, 0.5),)),))
    targets = patch_targets(scene, grid=4).reshape(4, 4, -1)
    assert targets[0, 0].tolist() == [0] * 7  # a corner is background
    # group 1, square, blue, large, one object, letter K, no group after it
    assert targets[1, 1].tolist() == [1, 2, 3, 2, 1, 2 + 3, 1]
    assert (targets[1:3, 1:3, 0] == 1).all()


def test_correction_input_flags_the_perturbed_words():
    scene = scene_sample(random.Random(2))
    caption = caption_write(scene)
    config = PretrainConfig(correction_true_flag=0.0, correction_untouched=0.0, correction_whole=0.0)
    shown, flagged = correction_input(scene, caption, random.Random(0), config)
    assert shown != caption and flagged
    assert set(flagged) <= {w for w, _, _ in caption_words(shown)}


def test_a_whole_caption_flag_names_no_word_and_the_prompt_says_everything():
    scene = scene_sample(random.Random(2))
    caption = caption_write(scene)
    config = PretrainConfig(correction_untouched=0.0, correction_whole=1.0)
    shown, flagged = correction_input(scene, caption, random.Random(0), config)
    assert shown != caption and flagged == []
    assert correction_instruction(shown, flagged).endswith("look again at: everything .")


def test_the_data_stream_depends_only_on_the_seed():
    _, processor = tiny_vlm_build(MICRO)
    coder = PromptCoder(processor)
    first, second = (
        next(batches_from_pools(example_pools(coder, MICRO_RUN), MICRO_RUN, processor.tokenizer.pad_token_id))
        for _ in range(2)
    )
    for key in first:
        assert torch.equal(first[key], second[key])


def test_each_example_is_served_example_reuse_times_with_other_batch_mates():
    _, processor = tiny_vlm_build(MICRO)
    config = dataclasses.replace(MICRO_RUN, example_reuse=2)
    pool = next(example_pools(PromptCoder(processor), config))
    batches = list(batches_from_pools(iter([pool]), config, processor.tokenizer.pad_token_id))
    assert len(batches) == 2 * len(pool) // config.batch_size

    def rows(batch):
        columns = (batch["input_ids"], batch["attention_mask"], batch["pixel_values"])
        return frozenset(
            (tuple(ids[mask.bool()].tolist()), pixels.numpy().tobytes())
            for ids, mask, pixels in zip(*columns, strict=True)
        )

    first, second = batches[: len(batches) // 2], batches[len(batches) // 2 :]
    served = [row for batch in batches for row in rows(batch)]
    assert len(set(served)) == len(pool) and len(served) == 2 * len(pool)
    assert set(map(rows, first)) != set(map(rows, second))


def test_learning_rate_warms_up_then_follows_a_cosine_over_time():
    config = PretrainConfig(warmup_steps=10, min_lr_ratio=0.0)
    assert lr_factor(0, 0.0, config) == pytest.approx(0.1)
    assert lr_factor(50, 0.0, config) == pytest.approx(1.0)
    assert lr_factor(50, 0.5, config) == pytest.approx(0.5)
    assert lr_factor(50, 1.0, config) == pytest.approx(0.0)


def test_the_background_process_makes_the_same_examples_as_this_one():
    _, processor = tiny_vlm_build(MICRO)
    coder = PromptCoder(processor)
    expected = next(example_pools(coder, MICRO_RUN))
    with pools_open(coder, MICRO_RUN) as pools:
        made = next(pools)
    assert [e.input_ids for e in made] == [e.input_ids for e in expected]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(made, expected, strict=True))


def test_training_pixels_equal_the_processors():
    _, processor = tiny_vlm_build(MICRO)
    images = [scene_render(scene_sample(random.Random(i)), size=MICRO.image_size) for i in range(3)]
    expected = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    pixels = pixels_normalise(np.stack([np.asarray(image) for image in images]))
    assert torch.allclose(pixels, expected, atol=1e-6)


def test_the_probe_loss_weighs_the_relation_head_as_configured():
    torch.manual_seed(0)
    counts = {"shape": 3, "relation": 4}
    states, targets = torch.randn(2, 5, 8), torch.stack([torch.randint(0, 3, (2, 5)), torch.randint(0, 4, (2, 5))], -1)
    plain = PatchProbe(8, counts)
    weighted = PatchProbe(8, counts, weights={"relation": 4.0})
    weighted.load_state_dict(plain.state_dict() | {"weights": weighted.weights})
    shape_loss = torch.nn.functional.cross_entropy(
        plain.heads["shape"](states).flatten(0, 1), targets[..., 0].flatten()
    )
    relation_loss = torch.nn.functional.cross_entropy(
        plain.heads["relation"](states).flatten(0, 1), targets[..., 1].flatten()
    )
    assert torch.allclose(plain.loss(states, targets), (shape_loss + relation_loss) / 2)
    assert torch.allclose(weighted.loss(states, targets), (shape_loss + 4 * relation_loss) / 2)


def test_the_probe_loss_weighs_patches_that_bear_a_letter():
    counts = {"letter": 5}  # background, no letter, three letters
    states = torch.zeros(1, 4, 8)
    targets = torch.tensor([[[0], [1], [1], [3]]])  # one patch in four shows a letter
    plain, weighted = PatchProbe(8, counts), PatchProbe(8, counts, letter_weight=3.0)
    for probe in (plain, weighted):
        with torch.no_grad():  # the same answer on every patch, a letter least likely
            probe.heads["letter"].weight.zero_()
            probe.heads["letter"].bias.copy_(torch.tensor([2.0, 1.0, 0.0, 0.0, 0.0]))
    per_patch = -torch.log_softmax(torch.tensor([2.0, 1.0, 0.0, 0.0, 0.0]), -1)[targets.flatten()]
    assert torch.allclose(plain.loss(states, targets), per_patch.mean())
    weights = torch.tensor([1.0, 1.0, 1.0, 3.0])
    assert torch.allclose(weighted.loss(states, targets), (per_patch * weights).sum() / weights.sum())


def test_letter_tokens_weigh_more_in_the_caption_loss():
    _, processor = tiny_vlm_build(MICRO)
    tokenizer = processor.tokenizer
    assert answer_token_weights(tokenizer, 1.0) is None
    weights = answer_token_weights(tokenizer, 4.0)
    letter_ids = tokenizer.convert_tokens_to_ids(list(LETTERS))
    assert weights[letter_ids].eq(4.0).all() and weights.sum() == len(tokenizer) + 3 * len(LETTERS)
    word, letter = tokenizer.convert_tokens_to_ids(["circle", "K"])
    labels = torch.tensor([[-100, word, letter]])  # the first position is the prompt: no loss
    logits = torch.zeros(1, 3, len(tokenizer))
    logits[0, 0, word] = 3.0  # the word is easy, the letter is not
    per_token = -torch.log_softmax(logits[0, :2], -1)[[0, 1], [word, letter]]
    assert torch.allclose(answer_loss(logits, labels), per_token.mean())
    assert torch.allclose(answer_loss(logits, labels, weights), (per_token[0] + 4 * per_token[1]) / 5)


def test_relation_directions_weigh_more_in_the_caption_loss_when_asked():
    _, processor = tiny_vlm_build(MICRO)
    tokenizer = processor.tokenizer
    weights = answer_token_weights(tokenizer, 1.0, relation_weight=3.0)
    directions = tokenizer.convert_tokens_to_ids(["left", "right", "above", "below"])
    assert weights[directions].eq(3.0).all() and weights.sum() == len(tokenizer) + 2 * 4
    assert weights[tokenizer.convert_tokens_to_ids(["of", "K", "circle"])].eq(1.0).all()
