"""The token reward model: LoRA where the paper puts it, a head that learns, save and load that agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_vlms import ARCHITECTURES, tiny_vlm_model

from reward.model import (
    MANIFEST,
    RewardConfig,
    RewardModelError,
    TokenRewardModel,
    likelihood_features,
    lora_targets,
    reward_loss,
)
from reward.tokens import encode_responses, token_labels_from_words
from reward.vlm import CAPTION_PROMPT, ModelNotFound, vlm_load

CAPTIONS = ["a red circle is left of a blue square.", "there are two stars.", "a large green triangle."]
BAD_SPANS = [[(6, 12)], [], [(8, 13), (14, 22)]]

VISION = ("vision_tower", "vision_model", "visual.blocks", "visual.patch_embed")
PROJECTOR = ("multi_modal_projector", "connector", "visual.merger")
DECODER = ("language_model", "text_model")


def _lora_names(model: TokenRewardModel) -> list[str]:
    return [name for name, _ in model.named_parameters() if "lora_" in name]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_lora_goes_into_projector_and_decoder_never_the_vision_encoder(architecture: str) -> None:
    model = TokenRewardModel.build(tiny_vlm_model(architecture), RewardConfig(), base_model="tiny")
    names = _lora_names(model)
    assert not [n for n in names if any(f".{part}." in n for part in VISION)]
    assert [n for n in names if any(f".{part}." in n for part in PROJECTOR)]
    assert [n for n in names if any(f".{part}." in n for part in DECODER)]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(names) | {"head.weight", "head.bias"}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_projector_can_stay_frozen(architecture: str) -> None:
    targets = lora_targets(tiny_vlm_model(architecture), train_projector=False)
    assert targets and not [t for t in targets if any(f".{part}." in t for part in PROJECTOR)]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_vision_encoder_gets_lora_only_when_asked(architecture: str) -> None:
    vlm = tiny_vlm_model(architecture)
    frozen, trained = lora_targets(vlm), lora_targets(vlm, train_vision=True)
    vision = [t for t in trained if any(f".{part}." in t for part in VISION)]
    assert vision and not [t for t in frozen if t in vision]
    assert sorted(frozen + vision) == sorted(trained)


def test_loss_reads_response_tokens_only() -> None:
    logits = torch.tensor([[5.0, -5.0, 2.0, -1.0, 0.0]])
    bad = torch.tensor([[0.0, 0.0, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[False, False, True, True, False]])
    loss = reward_loss(logits, bad, mask)
    changed = logits.clone()
    changed[0, [0, 1, 4]] = torch.tensor([-9.0, 9.0, 3.0])
    assert torch.allclose(loss, reward_loss(changed, bad, mask))
    expected = (torch.nn.functional.softplus(torch.tensor(-2.0)) + torch.nn.functional.softplus(torch.tensor(-1.0))) / 2
    assert torch.allclose(loss, expected)


def test_naive_loss_reads_the_last_response_token_against_the_whole_response() -> None:
    logits = torch.tensor([[0.0, 7.0, -3.0, 0.0], [0.0, 4.0, 1.0, 9.0]])
    bad = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[False, True, True, False], [True, True, True, False]])
    loss = reward_loss(logits, bad, mask, objective="naive")
    # row 0 is bad as a whole: its last token (logit -3) should say "bad"; row 1 good, last logit 1
    f = torch.nn.functional.softplus
    assert torch.allclose(loss, (f(torch.tensor(-3.0)) + f(torch.tensor(-1.0))) / 2)


def test_naive_loss_leaves_out_an_empty_caption() -> None:
    logits = torch.tensor([[0.0, 7.0, -3.0], [5.0, 5.0, 5.0]])
    bad = torch.zeros(2, 3)
    mask = torch.tensor([[False, True, True], [False, False, False]])
    loss = reward_loss(logits, bad, mask, objective="naive")
    assert torch.allclose(loss, torch.nn.functional.softplus(torch.tensor(3.0)))


def test_bad_tokens_weigh_bad_weight() -> None:
    logits, bad, mask = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool)
    assert torch.allclose(reward_loss(logits, bad, mask, bad_weight=3.0), reward_loss(logits, bad, mask) * 2)


def _batch(processor, images: list[Image.Image], *, read_twice: bool = False):
    encoding = encode_responses(processor, images, CAPTIONS, instruction=CAPTION_PROMPT, read_twice=read_twice)
    labels = [token_labels_from_words(o, spans) for o, spans in zip(encoding.offsets, BAD_SPANS, strict=True)]
    return encoding, encoding.token_values([[float(b) for b in row] for row in labels])


def test_one_step_lowers_the_loss_on_a_fixed_batch(tiny_vlm_dir: Path, scene_images: list[Image.Image]) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(vlm, RewardConfig(), base_model=str(tiny_vlm_dir))
    encoding, token_bad = _batch(processor, scene_images, read_twice=True)
    inputs, mask, first = encoding.model_inputs, encoding.response_mask, encoding.first_reading_mask
    logits = model(inputs, mask, first)
    assert logits.shape == encoding.response_mask.shape

    def loss() -> torch.Tensor:
        return reward_loss(model(inputs, mask, first), token_bad, mask)

    model.eval()
    with torch.no_grad():
        before = loss()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss().backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        assert loss() < before


def test_saved_model_loads_with_identical_scores(
    tiny_vlm_dir: Path, scene_images: list[Image.Image], tmp_path: Path
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_r=4, objective="naive"), base_model=str(tiny_vlm_dir))
    _perturbed(model)
    model.eval()
    encoding, _ = _batch(processor, scene_images)
    with torch.no_grad():
        expected = model(encoding.model_inputs)
    model.save(tmp_path / "tldr", metrics={"A_R": 0.5})
    loaded, loaded_processor = TokenRewardModel.load(tmp_path / "tldr")
    loaded.eval()
    encoding, _ = _batch(loaded_processor, scene_images)
    with torch.no_grad():
        assert torch.allclose(loaded(encoding.model_inputs), expected, atol=1e-6)
    manifest = json.loads((tmp_path / "tldr" / MANIFEST).read_text())
    assert manifest["base_model"] == str(tiny_vlm_dir) and manifest["metrics"] == {"A_R": 0.5}
    assert manifest["config"]["objective"] == "naive" and manifest["threshold"] == 0.5
    assert loaded.config == model.config and not any(p.requires_grad for p in loaded.vlm.parameters())


def test_missing_reward_model_names_its_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=f"no reward model at {tmp_path / 'nothing'}"):
        TokenRewardModel.load(tmp_path / "nothing")


def test_garbled_manifest_names_the_file(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(RewardModelError, match=str(tmp_path / MANIFEST)):
        TokenRewardModel.load(tmp_path)


def test_manifest_without_base_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text(json.dumps({"format_version": 1, "config": {}}))
    with pytest.raises(RewardModelError, match="base_model"):
        TokenRewardModel.load(tmp_path)


def _perturbed(model: TokenRewardModel) -> None:
    """Move LoRA and head away from their initial values, so equalities between two models mean something."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.1)


def test_likelihood_features_are_the_lm_log_probabilities_of_the_tokens_read(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    vlm.eval()
    encoding, _ = _batch(processor, scene_images)
    ids, mask = encoding.model_inputs["input_ids"], encoding.response_mask
    with torch.no_grad():
        hidden = vlm.model(**encoding.model_inputs).last_hidden_state
        features = likelihood_features(hidden, ids, mask, vlm.get_output_embeddings(), count=3)
        log_probs = torch.log_softmax(vlm(**encoding.model_inputs).logits.float(), dim=-1)
    for row, position in mask.nonzero().tolist():
        predicted_here = log_probs[row, position - 1]
        best, runner_up = predicted_here.topk(2).values
        expected = torch.stack([predicted_here[ids[row, position]], best, runner_up])
        assert torch.allclose(features[row, position], expected, atol=1e-4)
    assert not features[~mask].any()


def test_a_head_reading_likelihood_starts_as_the_likelihood_detector(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    """Before training, the logit of "good" is log P(token) - max log P / 2 plus terms that do not depend on them."""
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    config = RewardConfig(reads_likelihood=True, reads_twice=False)
    model = TokenRewardModel.build(vlm, config, base_model=str(tiny_vlm_dir)).eval()
    encoding, _ = _batch(processor, scene_images)
    with torch.no_grad():
        logits = model(encoding.model_inputs, encoding.response_mask)
        hidden = model.backbone(**encoding.model_inputs).last_hidden_state
        features = likelihood_features(
            hidden, encoding.model_inputs["input_ids"], encoding.response_mask, vlm.get_output_embeddings()
        )
        from_hidden = hidden @ model.head.weight[0, :-2] + model.head.bias
    mask = encoding.response_mask
    assert torch.allclose(logits[mask] - from_hidden[mask], features[mask, 0] - features[mask, 1] / 2, atol=1e-4)


def test_the_likelihood_the_head_reads_is_the_base_models_whatever_the_lora(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(
        vlm, RewardConfig(reads_likelihood=True, reads_twice=False), base_model=str(tiny_vlm_dir)
    )
    _perturbed(model)
    model.eval()
    base, _ = vlm_load(str(tiny_vlm_dir))
    encoding, _ = _batch(processor, scene_images)
    inputs, mask = encoding.model_inputs, encoding.response_mask
    with torch.no_grad():
        base_hidden = base.eval().model(**inputs).last_hidden_state
        expected = likelihood_features(base_hidden, inputs["input_ids"], mask, base.get_output_embeddings())
        read = model.base_likelihood(inputs, mask)
        adapted_hidden = model.backbone(**inputs).last_hidden_state
    assert not torch.allclose(adapted_hidden, base_hidden, atol=1e-3)  # the LoRA does change the states
    assert torch.allclose(read, expected, atol=1e-5)


def _saved_and_loaded_scores(
    model: TokenRewardModel, processor, images: list[Image.Image], directory: Path
) -> tuple[TokenRewardModel, torch.Tensor, torch.Tensor]:
    """Perturb `model`, save it, load it: (the loaded model, its response logits, the original's)."""
    _perturbed(model)
    model.eval()
    encoding, _ = _batch(processor, images, read_twice=True)
    inputs, mask, first = encoding.model_inputs, encoding.response_mask, encoding.first_reading_mask
    with torch.no_grad():
        expected = model(inputs, mask, first)
    model.save(directory)
    loaded, _ = TokenRewardModel.load(directory)
    with torch.no_grad():
        scores = loaded.eval()(inputs, mask, first)
    return loaded, scores[mask], expected[mask]


def test_tldr_as_built_by_default_loads_with_identical_scores(
    tiny_vlm_dir: Path, scene_images: list[Image.Image], tmp_path: Path
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_r=4), base_model=str(tiny_vlm_dir))
    loaded, scores, expected = _saved_and_loaded_scores(model, processor, scene_images, tmp_path / "tldr")
    assert loaded.config.reads_likelihood and loaded.config.reads_twice
    assert torch.allclose(scores, expected, atol=1e-6)


def test_a_manifest_from_before_the_likelihood_input_loads_as_a_head_on_hidden_states_read_once(
    tiny_vlm_dir: Path, tmp_path: Path
) -> None:
    vlm, _ = vlm_load(str(tiny_vlm_dir))
    old_style = RewardConfig(lora_r=4, reads_likelihood=False, reads_twice=False)
    TokenRewardModel.build(vlm, old_style, base_model=str(tiny_vlm_dir)).save(tmp_path / "tldr")
    manifest = json.loads((tmp_path / "tldr" / MANIFEST).read_text())
    del manifest["config"]["reads_likelihood"]
    del manifest["config"]["reads_twice"]
    (tmp_path / "tldr" / MANIFEST).write_text(json.dumps(manifest))
    loaded, _ = TokenRewardModel.load(tmp_path / "tldr")
    assert not loaded.config.reads_likelihood and not loaded.config.reads_twice


def test_a_head_reading_the_runner_up_too_loads_with_its_scores_and_a_manifest_without_the_field_as_two(
    tiny_vlm_dir: Path, scene_images: list[Image.Image], tmp_path: Path
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_r=4, likelihood_inputs=3), base_model=str(tiny_vlm_dir))
    loaded, scores, expected = _saved_and_loaded_scores(model, processor, scene_images, tmp_path / "tldr")
    assert loaded.config.likelihood_inputs == 3 and loaded.head.in_features == model.head.in_features
    assert torch.allclose(scores, expected, atol=1e-6)
    vlm, _ = vlm_load(str(tiny_vlm_dir))
    TokenRewardModel.build(vlm, RewardConfig(lora_r=4), base_model=str(tiny_vlm_dir)).save(tmp_path / "old")
    manifest = json.loads((tmp_path / "old" / MANIFEST).read_text())
    del manifest["config"]["likelihood_inputs"]
    (tmp_path / "old" / MANIFEST).write_text(json.dumps(manifest))
    assert TokenRewardModel.load(tmp_path / "old")[0].config.likelihood_inputs == 2


def test_likelihood_inputs_other_than_two_or_three_are_refused() -> None:
    with pytest.raises(ValueError, match="2 or 3"):
        RewardConfig(likelihood_inputs=4)


def test_tldr_reads_the_likelihood_and_twice_by_default_and_the_naive_baseline_does_neither() -> None:
    assert RewardConfig().reads_likelihood is True and RewardConfig().reads_twice is True
    naive = RewardConfig(objective="naive")
    assert naive.reads_likelihood is False and naive.reads_twice is False
    assert RewardConfig(reads_likelihood=False).reads_likelihood is False
    assert RewardConfig(reads_twice=False).reads_twice is False
    assert RewardConfig().likelihood_inputs == 2


def test_read_twice_a_word_is_judged_by_the_words_after_it(tiny_vlm_dir: Path, scene_images: list[Image.Image]) -> None:
    """Read once, "left" scores the same whatever follows it; read twice, what follows can change its score."""
    captions = ["a red circle is left of a blue square .", "a red circle is left of two green stars ."]
    images = [scene_images[0]] * 2
    left = slice(0, 5)  # "a red circle is left": the words before the captions differ
    logits = {}
    for read_twice in (False, True):
        vlm, processor = vlm_load(str(tiny_vlm_dir))
        torch.manual_seed(0)
        model = TokenRewardModel.build(
            vlm, RewardConfig(lora_r=4, reads_twice=read_twice), base_model=str(tiny_vlm_dir)
        )
        _perturbed(model)
        encoding = encode_responses(processor, images, captions, instruction=CAPTION_PROMPT, read_twice=read_twice)
        with torch.no_grad():
            scores = model.eval()(encoding.model_inputs, encoding.response_mask, encoding.first_reading_mask)
        logits[read_twice] = [row[left] for row in encoding.response_values(scores)]
    assert torch.allclose(torch.tensor(logits[False][0]), torch.tensor(logits[False][1]), atol=1e-5)
    assert (torch.tensor(logits[True][0]) - torch.tensor(logits[True][1])).abs().min() > 1e-4


def test_read_twice_the_head_reads_the_base_likelihood_of_the_first_reading(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    """The likelihood of token k comes from where the captioner predicted it, not from its copy."""
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_r=4), base_model=str(tiny_vlm_dir))
    _perturbed(model)
    with torch.no_grad():
        model.head.weight[0, :-2] = 0.0  # the logit is now the likelihood inputs alone, plus the bias
    once, _ = _batch(processor, scene_images)
    twice, _ = _batch(processor, scene_images, read_twice=True)
    base, _ = vlm_load(str(tiny_vlm_dir))
    with torch.no_grad():
        logits = model.eval()(twice.model_inputs, twice.response_mask, twice.first_reading_mask)
        hidden = base.eval().model(**once.model_inputs).last_hidden_state
        features = likelihood_features(
            hidden, once.model_inputs["input_ids"], once.response_mask, base.get_output_embeddings()
        )
    expected = features[once.response_mask] @ model.head.weight[0, -2:] + model.head.bias
    assert torch.allclose(logits[twice.response_mask], expected, atol=1e-4)


def test_a_model_that_reads_twice_refuses_a_response_read_once(
    tiny_vlm_dir: Path, scene_images: list[Image.Image]
) -> None:
    vlm, processor = vlm_load(str(tiny_vlm_dir))
    model = TokenRewardModel.build(vlm, RewardConfig(lora_r=4), base_model=str(tiny_vlm_dir))
    encoding, _ = _batch(processor, scene_images)
    with pytest.raises(ValueError, match="read_twice=True"):
        model(encoding.model_inputs, encoding.response_mask)
