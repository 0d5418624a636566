"""FiSAO's vision-encoder verifier for the built-in world: a small image-text encoder trained here.

FiSAO (§3.1, §3.3) rewards each object token of a caption by the dot product of that token's text
feature with the image feature of a CLIP-style encoder. The built-in world has no pretrained CLIP,
so this module trains a tiny dual encoder on shapeworld scenes:

- the image encoder, a conv stem and a transformer layer or two, gives a feature for every
  8x8-pixel patch (a 64-pixel image has 64 of them);
- the text encoder embeds an entity phrase, the shape noun with its count, size and colour words
  ("three small red circles"), as a bag of words: the order of these words carries no meaning;
- the score of a phrase is the dot product of its feature with the best-matching patch feature
  (token-wise max similarity, as FILIP does), scaled and shifted into a logit of "present".

Why patches and not one pooled image vector: a scene holds up to four groups, and a phrase is true
when one of them has all its attributes at once. A single vector must superpose every group, which
blurs which colour goes with which shape ("red circle" beside "blue square" looks like "blue
circle"); a patch feature describes one place, so the max finds the one object that fits. Counts
are not local, so the transformer layers let every patch see the whole image before the max.

Why a sigmoid loss on every phrase-image pair and not CLIP's InfoNCE: the world's ground truth says
exactly whether any phrase holds in any image of the batch, and a phrase as plain as "a circle" is
true in many of them. InfoNCE would push those true pairs apart as negatives, and its scores are
only relative within one softmax, while Eq. 7-8 compare every score with two fixed baselines. A
binary loss on the exact labels (SigLIP's loss, with exact targets) gives an absolute P(present).
Both separate equally well (held-out AUC 0.890 against 0.896 for InfoNCE over images plus a softmax
over each true phrase and its hard negatives, 400 steps of 32 scenes), so the calibrated one wins.
Hard negatives, made by changing one attribute of a true phrase (a shape, colour, size or count the
scene lacks), teach the binding that random pairs never test; a scene's own phrases weigh as much
in the loss as all other pairs together (AUC 0.83 after 300 steps of 16 scenes, against 0.76 with
only own pairs; a plain mean over all pairs learns a little slower).

Measured on 2 busy CPU cores: a 2-minute run (the default config) reaches a held-out AUC of about
0.93 for present vs absent phrases. Shapes are the hardest part (a small hexagon is a small circle
give or take a few pixels); colours and sizes are nearly perfect.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from shapeworld.background import background_iterate, torch_threads, training_threads
from shapeworld.grammar import NUMBER_WORDS, caption_write
from shapeworld.parser import NounPhrase, caption_label, caption_parse
from shapeworld.perturb import caption_perturb_any
from shapeworld.render import scene_render
from shapeworld.scene import COLOURS, SHAPES, SIZES, Scene, WorldConfig, scene_sample

WEIGHTS_FILE = "verifier.safetensors"
MANIFEST_FILE = "verifier.json"
FORMAT_VERSION = 1
PLURAL = "<plural>"  # the noun's grammatical number, a word of its own so a shape is one embedding
PHRASE_VOCABULARY: tuple[str, ...] = ("a", *NUMBER_WORDS, *SIZES, *COLOURS, *SHAPES, PLURAL)
# Most claims a phrase can make about its count; scenes hold at most `WorldConfig.max_count` per group.
_MOST_CLAIMED = 5

ProgressCallback = Callable[[float, str], None]


class VerifierError(ValueError):
    """A verifier directory that cannot be used; the message names it and what is wrong."""


class VerifierNotFound(FileNotFoundError):
    """No verifier where one was expected; the message says how to make one."""


@dataclass
class VerifierConfig:
    """The encoder's sizes and the training run; the run ends at `minutes` or `max_steps`, whichever is first."""

    image_size: int = 64
    patch_size: int = 8
    channels: int = 32  # of the first conv layer; doubled at each halving of the resolution, up to `width`
    width: int = 64  # feature size of patches and phrases
    layers: int = 2
    heads: int = 4
    text_hidden: int = 128
    batch_size: int = 32  # scenes per step
    claims_per_scene: int = 4  # true phrases per scene, and as many false ones
    lr: float = 3e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 30
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    minutes: float = 2.0
    max_steps: int | None = None
    # Seconds of the budget kept for the held-out evaluation and saving, so the whole call ends on time.
    eval_reserve_s: float = 5.0
    seed: int = 0
    eval_scenes: int = 300
    # Scenes are drawn and rendered in a background process (same data either way); see `shapeworld.background`.
    data_process: bool = True
    torch_threads: int | None = None


# ----------------------------------------------------------------------------- entity claims


@dataclass(frozen=True)
class EntityClaim:
    """What one noun phrase says is in the image: a shape, and optionally its count, size and colour."""

    shape: str
    plural: bool
    counts: tuple[int, ...] = ()  # from number words
    article: bool = False  # "a"/"an": one
    sizes: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()


def claim_from_phrase(phrase: NounPhrase) -> EntityClaim:
    """The claim of a parsed noun phrase (garbled ones may repeat a kind: "red blue circle")."""
    return EntityClaim(
        shape=phrase.shape,
        plural=phrase.plural,
        counts=tuple(n for _, n in phrase.counts),
        article=phrase.determiner in ("a", "an"),
        sizes=tuple(s for _, s in phrase.sizes),
        colours=tuple(c for _, c in phrase.colours),
    )


def claim_words(claim: EntityClaim) -> list[str]:
    """The bag of words the text encoder reads."""
    words = [NUMBER_WORDS[n - 1] for n in claim.counts]
    if claim.article:
        words.append("a")
    words += [*claim.sizes, *claim.colours, claim.shape]
    if claim.plural:
        words.append(PLURAL)
    return words


def claim_holds(claim: EntityClaim, scene: Scene) -> bool:
    """Whether some group of the scene is what the claim says, with the parser's reading of counts."""
    for group in scene.groups:
        if group.shape != claim.shape:
            continue
        if any(c != group.colour for c in claim.colours) or any(s != group.size for s in claim.sizes):
            continue
        if claim.counts:
            count_agrees = all(n == group.count for n in claim.counts)
        elif claim.article:
            count_agrees = group.count == 1
        else:
            count_agrees = (group.count >= 2) if claim.plural else (group.count == 1)
        if count_agrees:
            return True
    return False


def claim_sample_true(scene: Scene, rng: random.Random) -> EntityClaim:
    """A true phrase about a random group, in one of the grammar's forms, attributes left out at random."""
    group = rng.choice(scene.groups)
    form = rng.random()
    counts = (group.count,) if form < 0.4 or (form < 0.6 and group.count > 1) else ()
    return EntityClaim(
        shape=group.shape,
        plural=group.count > 1,
        counts=counts,
        article=not counts and group.count == 1 and form < 0.8,
        sizes=(group.size,) if rng.random() < 0.6 else (),
        colours=(group.colour,) if rng.random() < 0.75 else (),
    )


def claim_sample_false(scene: Scene, rng: random.Random, tries: int = 20) -> EntityClaim | None:
    """A hard negative: a true phrase with one attribute changed (or added) so that no group fits it."""
    for _ in range(tries):
        claim = claim_sample_true(scene, rng)
        kind = rng.choice(("shape", "shape", "colour", "colour", "size", "count"))
        if kind == "shape":
            claim = _claim_replace(claim, shape=rng.choice(SHAPES))
        elif kind == "colour":
            claim = _claim_replace(claim, colours=(rng.choice(COLOURS),))
        elif kind == "size":
            claim = _claim_replace(claim, sizes=(rng.choice(SIZES),))
        else:
            count = rng.randint(1, _MOST_CLAIMED)
            claim = _claim_replace(claim, counts=(count,), article=False, plural=count > 1)
        if not claim_holds(claim, scene):
            return claim
    return None


def _claim_replace(claim: EntityClaim, **changes: object) -> EntityClaim:
    return EntityClaim(**{**asdict(claim), **changes})


# ----------------------------------------------------------------------------- the model


class ImageEncoder(nn.Module):
    """[B, 3, S, S] pixels -> [B, P, D] unit-length patch features (P = (S / patch_size)²).

    The conv stem halves the resolution down to one feature per patch, with one more conv at the
    middle resolution. Batch norm is what makes shapes learnable in minutes: a linear probe of each
    patch's shape reaches 89% after 300 steps with it, and 21% (chance) to 71% without it, by depth.
    """

    def __init__(self, config: VerifierConfig) -> None:
        super().__init__()
        halvings = int(math.log2(config.patch_size))
        c = config.channels
        convs = _conv_block(3, c, stride=2)
        for k in range(1, halvings):
            out = config.width if k == halvings - 1 else min(2 * c, config.width)
            convs += _conv_block(c, out, stride=2)
            if k < halvings - 1:
                convs += _conv_block(out, out, stride=1)
            c = out
        self.stem = nn.Sequential(*convs, nn.Conv2d(c, config.width, 1))  # [B, D, S/p, S/p]
        patches = (config.image_size // config.patch_size) ** 2
        self.position = nn.Parameter(torch.randn(patches, config.width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            config.width,
            config.heads,
            2 * config.width,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False) if config.layers else None
        self.norm = nn.LayerNorm(config.width)
        self.out = nn.Linear(config.width, config.width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        grid = self.stem(pixels)  # [B, D, S/p, S/p]
        tokens = grid.flatten(2).transpose(1, 2) + self.position  # [B, P, D]
        if self.blocks is not None:
            tokens = self.blocks(tokens)
        tokens = self.out(self.norm(tokens))
        return nn.functional.normalize(tokens, dim=-1)


def _conv_block(channels_in: int, channels_out: int, *, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.GELU(),
    ]


class PhraseEncoder(nn.Module):
    """Bags of phrase words -> [N, D] unit-length phrase features."""

    def __init__(self, vocabulary_size: int, config: VerifierConfig) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocabulary_size, config.text_hidden, mode="sum")
        self.mlp = nn.Sequential(
            nn.LayerNorm(config.text_hidden),
            nn.Linear(config.text_hidden, config.text_hidden),
            nn.GELU(),
            nn.Linear(config.text_hidden, config.width),
        )

    def forward(self, word_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.mlp(self.embed(word_ids, offsets)), dim=-1)


class Verifier(nn.Module):
    """The dual encoder; `pair_logits` is its verdict: a logit of "the phrase is in the image"."""

    def __init__(self, config: VerifierConfig, vocabulary: tuple[str, ...] = PHRASE_VOCABULARY) -> None:
        super().__init__()
        self.config = config
        self.vocabulary = tuple(vocabulary)
        self.word_ids = {word: i for i, word in enumerate(self.vocabulary)}
        self.image_encoder = ImageEncoder(config)
        self.phrase_encoder = PhraseEncoder(len(self.vocabulary), config)
        # CLIP-style learnt temperature and SigLIP-style bias: the prior that a pair is absent.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-2.0))

    def phrase_features(self, claims: list[EntityClaim]) -> torch.Tensor:
        """[N, D] features of N claims (words outside the vocabulary are left out)."""
        device = self.logit_bias.device
        ids = [[self.word_ids[w] for w in claim_words(c) if w in self.word_ids] for c in claims]
        lengths = torch.tensor([0] + [len(x) for x in ids[:-1]], dtype=torch.long)
        flat = torch.tensor([i for x in ids for i in x], dtype=torch.long)
        return self.phrase_encoder(flat.to(device), lengths.cumsum(0).to(device))[: len(claims)]

    def similarity(self, phrases: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """Token-wise max similarity: phrases [N, D] x patches [B, P, D] -> [N, B]."""
        return torch.einsum("nd,bpd->nbp", phrases, patches).amax(dim=-1)

    def logits(self, similarity: torch.Tensor) -> torch.Tensor:
        return self.logit_scale.exp() * similarity + self.logit_bias

    def pair_logits(self, phrases: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """The logit of each phrase against its own image only: [N, D] x [N, P, D] -> [N]."""
        return self.logits(torch.einsum("nd,npd->np", phrases, patches).amax(dim=-1))

    def save(self, directory: Path | str) -> None:
        """Weights as safetensors, config and vocabulary as JSON."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, directory / WEIGHTS_FILE)
        manifest = {"format_version": FORMAT_VERSION, "config": asdict(self.config), "vocabulary": self.vocabulary}
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path | str) -> Verifier:
        """A saved verifier in eval mode, or an error naming the directory and what is wrong."""
        directory = Path(directory)
        manifest_path, weights_path = directory / MANIFEST_FILE, directory / WEIGHTS_FILE
        if not manifest_path.is_file() or not weights_path.is_file():
            raise VerifierNotFound(
                f"no verifier at {directory} (no {MANIFEST_FILE} and {WEIGHTS_FILE}): "
                "train one with training.verifier.verifier_train"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest["format_version"] > FORMAT_VERSION:
                raise VerifierError(f"format {manifest['format_version']}; this code reads up to {FORMAT_VERSION}")
            known = {f.name for f in fields(VerifierConfig)}
            config = VerifierConfig(**{k: v for k, v in manifest["config"].items() if k in known})
            verifier = cls(config, tuple(manifest["vocabulary"]))
            verifier.load_state_dict(load_file(weights_path))
        except (OSError, ValueError, TypeError, KeyError, RuntimeError, SafetensorError) as error:
            raise VerifierError(f"verifier at {directory} does not load: {error}") from None
        return verifier.eval()


def pixels_from_images(images: list[Image.Image], size: int) -> torch.Tensor:
    """[B, 3, S, S] in [-1, 1], whatever the images' mode and size (the verifier sees `size` pixels)."""
    arrays = []
    for image in images:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image, dtype=np.uint8))
    return pixels_normalise(np.stack(arrays))


def pixels_normalise(images: np.ndarray) -> torch.Tensor:
    """[B, S, S, 3] uint8 -> [B, 3, S, S] float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- scoring captions


def caption_entities(caption: str) -> list[tuple[int, int, EntityClaim]]:
    """(char start, char end) of each entity word, the shape noun of a noun phrase, with its phrase's claim.

    A negated phrase ("there is no red circle") claims nothing is there, so it is no entity to verify.
    """
    parse = caption_parse(caption)
    return [
        (parse.words[p.noun][1], parse.words[p.noun][2], claim_from_phrase(p)) for p in parse.phrases if not p.negated
    ]


@torch.no_grad()
def entity_scores(
    verifier: Verifier, images: list[Image.Image], captions: list[str], *, batch_size: int = 256
) -> list[list[tuple[int, int, float]]]:
    """For each caption, (char start, char end, score) of each entity word; score = P(its phrase is in the image).

    Only shape nouns get a score, from the similarity of their whole noun phrase (count, size, colour
    words) to the image; other words get no entry. Free text never fails: what is not a noun phrase
    of the world's vocabulary is skipped.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions; give one caption per image")
    was_training = verifier.training
    verifier.eval()  # batch norm on its running statistics: a score never depends on the rest of the batch
    try:
        return _entity_scores(verifier, images, [caption_entities(caption) for caption in captions], batch_size)
    finally:
        verifier.train(was_training)


def _entity_scores(
    verifier: Verifier,
    images: list[Image.Image],
    entities: list[list[tuple[int, int, EntityClaim]]],
    batch_size: int,
) -> list[list[tuple[int, int, float]]]:
    device = verifier.logit_bias.device
    scores: list[list[tuple[int, int, float]]] = [[] for _ in entities]
    for first in range(0, len(entities), batch_size):
        rows = [r for r in range(first, min(first + batch_size, len(entities))) if entities[r]]
        if not rows:
            continue
        pixels = pixels_from_images([images[r] for r in rows], verifier.config.image_size)
        patches = verifier.image_encoder(pixels.to(device))  # [R, P, D]
        owners = [k for k, r in enumerate(rows) for _ in entities[r]]
        claims = [claim for r in rows for _, _, claim in entities[r]]
        probabilities = torch.sigmoid(verifier.pair_logits(verifier.phrase_features(claims), patches[owners]))
        values = iter(probabilities.tolist())
        for r in rows:
            scores[r] = [(start, end, next(values)) for start, end, _ in entities[r]]
    return scores


def entity_labels(scene: Scene, caption: str) -> list[tuple[int, int, bool]]:
    """(start, end, correct) for each entity word: correct iff the parser finds every word of its phrase true.

    The verifier scores the whole phrase, so "a blue circle" where the circle is red is a wrong entity
    to it, though the parser calls the noun itself true and only "blue" hallucinated.
    """
    labels = caption_label(scene, caption)
    parse = caption_parse(caption)
    result = []
    for phrase in parse.phrases:
        if phrase.negated:
            continue
        words = [phrase.noun, *(i for i, _ in (*phrase.counts, *phrase.sizes, *phrase.colours))]
        correct = all(labels[i].label == "true" for i in words)
        result.append((parse.words[phrase.noun][1], parse.words[phrase.noun][2], correct))
    return result


def verifier_baselines(
    verifier: Verifier, scenes: list[Scene], images: list[Image.Image], captions: list[str]
) -> tuple[float, float]:
    """FiSAO Eq. 7: (mean score of correct entity words, mean score of hallucinated ones) over the captions.

    Labels from `shapeworld.parser.caption_label`, per phrase (see `entity_labels`). A side no caption
    has is NaN, so a caller sees that the captions cannot set that baseline.
    """
    correct, hallucinated = _scores_by_label(verifier, scenes, images, captions)
    return _mean(correct), _mean(hallucinated)


def _scores_by_label(
    verifier: Verifier, scenes: list[Scene], images: list[Image.Image], captions: list[str]
) -> tuple[list[float], list[float]]:
    if not len(scenes) == len(images) == len(captions):
        raise ValueError(f"{len(scenes)} scenes, {len(images)} images, {len(captions)} captions; give one of each")
    correct, hallucinated = [], []
    for scene, caption, scored in zip(scenes, captions, entity_scores(verifier, images, captions), strict=True):
        verdicts = {(start, end): ok for start, end, ok in entity_labels(scene, caption)}
        for start, end, value in scored:
            (correct if verdicts[(start, end)] else hallucinated).append(value)
    return correct, hallucinated


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Batch:
    """B scenes' pixels, N claims, and whether each claim holds in each scene."""

    pixels: torch.Tensor  # [B, 3, S, S]
    claims: list[EntityClaim]  # N
    owners: torch.Tensor  # [N] the scene each claim was drawn for
    labels: torch.Tensor  # [N, B] 1.0 where claim n holds in scene b


def batch_make(scenes: list[Scene], images: np.ndarray, rng: random.Random, config: VerifierConfig) -> Batch:
    """Scenes ([B, S, S, 3] uint8 images) with true claims and hard negatives each, labelled against every scene."""
    claims, owners = [], []
    for b, scene in enumerate(scenes):
        for _ in range(config.claims_per_scene):
            for claim in (claim_sample_true(scene, rng), claim_sample_false(scene, rng)):
                if claim is not None:
                    claims.append(claim)
                    owners.append(b)
    labels = torch.tensor([[float(claim_holds(c, s)) for s in scenes] for c in claims])
    return Batch(pixels_normalise(images), claims, torch.tensor(owners), labels)


def training_batches(config: VerifierConfig) -> Iterator[Batch]:
    """An endless stream of fresh batches; the seed decides them all.

    Drawing and rendering scenes costs more than a training step, so every set of scenes serves
    twice: as drawn, then mirrored left to right with fresh claims. A mirror changes no claim (no
    shape changes under it, and claims say nothing about where things are) and is a new image.
    """
    rng = random.Random(f"verifier-train:{config.seed}")
    world = WorldConfig(image_size=config.image_size)
    while True:
        scenes = [scene_sample(rng, world) for _ in range(config.batch_size)]
        images = np.stack([np.asarray(scene_render(s, size=config.image_size), dtype=np.uint8) for s in scenes])
        yield batch_make(scenes, images, rng, config)
        yield batch_make(scenes, np.ascontiguousarray(images[:, :, ::-1]), rng, config)


def verifier_loss(verifier: Verifier, batch: Batch) -> torch.Tensor:
    """Binary cross-entropy on every claim-image pair; each claim's own scene counts as much as all others.

    Own-scene pairs hold the hard negatives; the many other pairs are mostly easy negatives that
    would drown them out in a plain mean.
    """
    patches = verifier.image_encoder(batch.pixels)  # [B, P, D]
    logits = verifier.logits(verifier.similarity(verifier.phrase_features(batch.claims), patches))  # [N, B]
    losses = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none")
    own = torch.zeros_like(batch.labels, dtype=torch.bool)
    own[torch.arange(len(batch.claims)), batch.owners] = True
    return losses[own].mean() + losses[~own].mean() if (~own).any() else losses[own].mean()


# ----------------------------------------------------------------------------- evaluation


def roc_auc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive outscores a random negative, ties counting half (Mann-Whitney U)."""
    if not positive or not negative:
        return float("nan")
    values = np.asarray([*positive, *negative], dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    start = 0
    for end in range(1, len(values) + 1):  # equal values share their mean rank
        if end == len(values) or values[order[end]] != values[order[start]]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    rank_sum = ranks[: len(positive)].sum()
    return float((rank_sum - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def held_out_set(
    config: VerifierConfig,
) -> tuple[list[Scene], list[Image.Image], list[list[EntityClaim]], list[list[bool]]]:
    """Scenes never trained on, with true phrases and hard negatives for each (seeded apart from training)."""
    rng = random.Random(f"verifier-eval:{config.seed}")
    world = WorldConfig(image_size=config.image_size)
    scenes = [scene_sample(rng, world) for _ in range(config.eval_scenes)]
    claims, labels = [], []
    for scene in scenes:
        batch_claims = [claim_sample_true(scene, rng) for _ in range(2)]
        batch_claims += [c for c in (claim_sample_false(scene, rng) for _ in range(2)) if c is not None]
        claims.append(batch_claims)
        labels.append([claim_holds(c, scene) for c in batch_claims])
    images = [scene_render(s, size=config.image_size) for s in scenes]
    return scenes, images, claims, labels


@torch.no_grad()
def held_out_auc(verifier: Verifier, config: VerifierConfig) -> dict[str, float]:
    """AUC of present vs absent phrases on held-out scenes, and of entity words of perturbed captions.

    The second is the verifier's real job: scoring the nouns of captions with the parser's labels.
    """
    verifier.eval()
    scenes, images, claims, labels = held_out_set(config)
    device = verifier.logit_bias.device
    patches = verifier.image_encoder(pixels_from_images(images, config.image_size).to(device))
    owners = [k for k, row in enumerate(claims) for _ in row]
    flat = [c for row in claims for c in row]
    scores = torch.sigmoid(verifier.pair_logits(verifier.phrase_features(flat), patches[owners])).tolist()
    truth = [t for row in labels for t in row]
    rng = random.Random(f"verifier-eval-captions:{config.seed}")
    captions = []
    for scene in scenes:
        caption = caption_write(scene, rng)
        perturbation = caption_perturb_any(scene, caption, rng) if rng.random() < 0.5 else None
        captions.append(caption if perturbation is None else perturbation.caption)
    correct, hallucinated = _scores_by_label(verifier, scenes, images, captions)
    return {
        "held_out_auc": roc_auc(
            [s for s, t in zip(scores, truth, strict=True) if t],
            [s for s, t in zip(scores, truth, strict=True) if not t],
        ),
        "caption_entity_auc": roc_auc(correct, hallucinated),
        "baseline_correct": _mean(correct),
        "baseline_hallucinated": _mean(hallucinated),
    }


# ----------------------------------------------------------------------------- the run


def lr_factor(step: int, progress: float, config: VerifierConfig) -> float:
    """Linear warm-up over steps, then a cosine over the budget's progress down to `min_lr_ratio`."""
    warmup = min(1.0, (step + 1) / max(1, config.warmup_steps))
    cosine = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return warmup * cosine


def verifier_train(config: VerifierConfig, out_dir: Path, *, on_progress: ProgressCallback | None = None) -> dict:
    """Train a verifier for `config.minutes` (or `max_steps`), save it to `out_dir`, return run stats.

    The stats include the held-out AUC of present vs absent entity phrases (`held_out_auc`) and of
    correct vs hallucinated entity words of perturbed captions (`caption_entity_auc`).
    """
    started = time.monotonic()
    torch.manual_seed(config.seed)
    verifier = Verifier(config)
    threads = training_threads(config.torch_threads, busy_data_process=config.data_process)
    with torch_threads(threads):
        with background_iterate(training_batches, config, enabled=config.data_process) as batches:
            stats = _train(verifier, batches, config, on_progress)
        stats |= held_out_auc(verifier, config)
    verifier.save(out_dir)
    stats |= {"seconds": round(time.monotonic() - started, 1), "config": asdict(config)}
    (Path(out_dir) / "verifier_stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    if on_progress is not None:
        on_progress(1.0, f"saved verifier to {out_dir} (held-out AUC {stats['held_out_auc']:.3f})")
    return stats


def _train(
    verifier: Verifier, batches: Iterator[Batch], config: VerifierConfig, on_progress: ProgressCallback | None
) -> dict:
    """The training loop: AdamW on the pair loss until the steps or the minutes run out."""
    decay = [p for n, p in verifier.named_parameters() if p.ndim >= 2 and "norm" not in n]
    no_decay = [p for n, p in verifier.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
        betas=(0.9, 0.98),
    )
    verifier.train()
    budget_s = max(1.0, config.minutes * 60 - config.eval_reserve_s)
    train_start = time.monotonic()
    step, first_loss, loss_ema = 0, None, None
    with tqdm(total=100, desc="verifier", unit="%", leave=False) as bar:
        while (done := _progress(step, time.monotonic() - train_start, budget_s, config)) < 1.0:
            batch = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(step, done, config)
            loss = verifier_loss(verifier, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(verifier.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            first_loss = loss.item() if first_loss is None else first_loss
            loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
            bar.update(int(100 * done) - bar.n)
            bar.set_postfix(step=step, loss=f"{loss_ema:.3f}")
            if on_progress is not None and step % 10 == 0:
                on_progress(min(done, 0.99), f"step {step}, loss {loss_ema:.3f}")
    verifier.eval()
    return {
        "steps": step,
        "train_seconds": round(time.monotonic() - train_start, 1),
        "first_loss": first_loss,
        "final_loss": loss_ema,
        "threads": torch.get_num_threads(),
    }


def _progress(step: int, elapsed_s: float, budget_s: float, config: VerifierConfig) -> float:
    """Share of the budget used: the larger of the steps' share and the minutes' share."""
    by_steps = step / config.max_steps if config.max_steps else 0.0
    return max(by_steps, elapsed_s / budget_s)
