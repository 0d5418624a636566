import random
import statistics
from pathlib import Path

import pytest
import torch
from PIL import Image

from shapeworld.grammar import PLURALS, caption_write
from shapeworld.parser import caption_parse
from shapeworld.perturb import caption_perturb_any
from shapeworld.render import scene_render
from shapeworld.scene import COLOURS, SHAPES, ObjectGroup, Scene, scene_sample
from training.verifier import (
    Verifier,
    VerifierConfig,
    VerifierError,
    VerifierNotFound,
    caption_entities,
    claim_from_phrase,
    claim_holds,
    entity_scores,
    held_out_auc,
    roc_auc,
    verifier_baselines,
    verifier_train,
)

# Seconds on two cores: a small encoder, few steps, data made in this process.
MICRO = VerifierConfig(
    channels=16,
    width=64,
    layers=1,
    text_hidden=64,
    batch_size=16,
    max_steps=150,
    eval_scenes=100,
    data_process=False,
    torch_threads=1,
)
# Measured held-out AUC of the micro run: 0.72 to 0.77 over seeds 0-3 (0.74 for seed 0); untrained 0.47 to 0.54.
AUC_BAR = 0.65

SCENE = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 1, None, ((0.2, 0.5),)),
        ObjectGroup("square", "blue", "large", 2, None, ((0.6, 0.3), (0.6, 0.7))),
        ObjectGroup("hexagon", "green", "large", 1, "K", ((0.85, 0.5),)),
    )
)
GARBLED = [
    "",
    "   ",
    ".",
    "circles circles circles",
    "There Is A Red Circle!",
    "a a a a red",
    "no no no circle .",
    "the letter K .",
    "two two three squares squares",
    "ünïcödé ✓ 🟥 circle",
    "red blue green large small circle",
    "there is no circle .",
    "circle" * 50,
    " ".join(["a red circle is left of two blue squares ."] * 40),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[tuple[float, str]]]:
    directory = tmp_path_factory.mktemp("verifier")
    progress: list[tuple[float, str]] = []
    stats = verifier_train(MICRO, directory, on_progress=lambda share, message: progress.append((share, message)))
    return stats, directory, progress


def test_a_short_run_tells_present_from_absent_phrases_on_held_out_scenes(trained):
    stats, _, _ = trained
    assert stats["steps"] == MICRO.max_steps
    assert stats["final_loss"] < stats["first_loss"]
    assert stats["held_out_auc"] > AUC_BAR
    assert stats["caption_entity_auc"] > 0.6


def test_an_untrained_verifier_stays_under_the_bar():
    torch.manual_seed(MICRO.seed)
    assert held_out_auc(Verifier(MICRO), MICRO)["held_out_auc"] < AUC_BAR


def test_progress_is_reported_up_to_done(trained):
    _, _, progress = trained
    shares = [share for share, _ in progress]
    assert shares == sorted(shares) and shares[-1] == 1.0 and len(shares) > 2


def test_saving_and_loading_gives_identical_scores(trained, tmp_path):
    stats, directory, _ = trained
    verifier = Verifier.load(directory)
    assert not verifier.training
    assert held_out_auc(verifier, MICRO)["held_out_auc"] == pytest.approx(stats["held_out_auc"], abs=1e-3)
    verifier.save(tmp_path)
    again = Verifier.load(tmp_path)
    images, captions = _scored_examples(20)
    assert entity_scores(again, images, captions) == entity_scores(verifier, images, captions)


def test_spans_point_at_the_shape_nouns(trained):
    verifier = Verifier.load(trained[1])
    caption = (
        "two large blue squares are right of a small red circle . there is no purple star . "
        "the large green hexagon with the letter K is right of the squares ."
    )
    [scores] = entity_scores(verifier, [scene_render(SCENE)], [caption])
    assert [caption[start:end] for start, end, _ in scores] == ["squares", "circle", "hexagon", "squares"]
    assert all(0.0 <= value <= 1.0 for _, _, value in scores)


def test_a_phrase_is_scored_whole_not_by_its_noun_alone(trained):
    """The same noun in another colour: a verifier that scored the noun alone would score both alike.

    Averaged over scenes: the micro model tells present from absent phrases at an AUC of about 0.75,
    so a single pair of phrases can come out either way (and did, on another CPU's arithmetic).
    """
    verifier = Verifier.load(trained[1])
    rng = random.Random(3)
    images, present_captions, recoloured_captions = [], [], []
    while len(images) < 40:
        scene = scene_sample(rng)
        group = next((group for group in scene.groups if group.count == 1), None)
        if group is None:
            continue
        taken = {other.colour for other in scene.groups if other.shape == group.shape}
        colour = rng.choice([colour for colour in COLOURS if colour not in taken])
        images.append(scene_render(scene))
        present_captions.append(f"there is a {group.size} {group.colour} {group.shape} .")
        recoloured_captions.append(f"there is a {group.size} {colour} {group.shape} .")
    present = [row[0][2] for row in entity_scores(verifier, images, present_captions)]
    recoloured = [row[0][2] for row in entity_scores(verifier, images, recoloured_captions)]
    assert statistics.fmean(present) > statistics.fmean(recoloured)


def test_correct_entities_score_above_hallucinated_ones_on_average(trained):
    verifier = Verifier.load(trained[1])
    scenes, images, captions = [], [], []
    rng = random.Random(7)
    for _ in range(60):
        scene = scene_sample(rng)
        perturbation = caption_perturb_any(scene, caption_write(scene, rng), rng)
        scenes.append(scene)
        images.append(scene_render(scene))
        captions.append(caption_write(scene) if perturbation is None else perturbation.caption)
    correct, hallucinated = verifier_baselines(verifier, scenes, images, captions)
    assert correct > hallucinated


def test_baselines_of_captions_without_hallucinations_leave_that_side_empty(trained):
    verifier = Verifier.load(trained[1])
    correct, hallucinated = verifier_baselines(verifier, [SCENE], [scene_render(SCENE)], [caption_write(SCENE)])
    assert 0.0 <= correct <= 1.0 and hallucinated != hallucinated  # NaN: no hallucinated entity to average


def test_garbled_captions_and_odd_images_never_crash(trained):
    verifier = Verifier.load(trained[1])
    images = [
        Image.new("RGBA", (64, 64), (0, 0, 0, 0)),
        Image.new("L", (31, 17)),
        scene_render(SCENE, size=128),
        Image.new("RGB", (1, 1)),
    ]
    images = [images[k % len(images)] for k in range(len(GARBLED))]
    scored = entity_scores(verifier, images, GARBLED)
    assert len(scored) == len(GARBLED)
    nouns = {*SHAPES, *PLURALS.values()}
    for caption, words in zip(GARBLED, scored, strict=True):
        assert all(caption[start:end] in nouns and 0.0 <= value <= 1.0 for start, end, value in words)
    nothing_to_verify = ["", "   ", ".", "a a a a red", "the letter K .", "there is no circle .", "circle" * 50]
    assert all(scored[GARBLED.index(caption)] == [] for caption in nothing_to_verify)
    assert len(scored[GARBLED.index("circles circles circles")]) == 3


def test_one_image_per_caption_is_required(trained):
    verifier = Verifier.load(trained[1])
    with pytest.raises(ValueError, match="1 images but 2 captions"):
        entity_scores(verifier, [scene_render(SCENE)], ["a red circle .", "a blue square ."])


def test_a_missing_directory_is_named_in_the_error(tmp_path):
    missing = tmp_path / "no-such-verifier"
    with pytest.raises(VerifierNotFound, match="no-such-verifier"):
        Verifier.load(missing)


def test_a_corrupt_verifier_is_named_in_the_error(trained, tmp_path):
    _, directory, _ = trained
    for name in ("verifier.json", "verifier.safetensors"):
        (tmp_path / name).write_bytes((directory / name).read_bytes())
    (tmp_path / "verifier.safetensors").write_bytes(b"not weights")
    with pytest.raises(VerifierError, match=str(tmp_path)):
        Verifier.load(tmp_path)
    (tmp_path / "verifier.json").write_text("{", encoding="utf-8")
    with pytest.raises(VerifierError, match=str(tmp_path)):
        Verifier.load(tmp_path)


def test_claims_of_true_captions_hold_and_swapped_shapes_do_not():
    for seed in range(200):
        scene = scene_sample(random.Random(seed))
        caption = caption_write(scene, random.Random(seed))
        entities = caption_entities(caption)
        assert entities and all(claim_holds(claim, scene) for _, _, claim in entities)
    parse = caption_parse("there is a small red triangle .")
    assert not claim_holds(claim_from_phrase(parse.phrases[0]), SCENE)


def test_roc_auc_counts_ties_half():
    assert roc_auc([1.0, 2.0], [0.0, 0.5]) == 1.0
    assert roc_auc([0.0], [1.0]) == 0.0
    assert roc_auc([1.0, 1.0], [1.0, 1.0]) == 0.5


def _scored_examples(n: int) -> tuple[list[Image.Image], list[str]]:
    rng = random.Random(3)
    scenes = [scene_sample(rng) for _ in range(n)]
    return [scene_render(s) for s in scenes], [caption_write(s, rng) for s in scenes]
