"""TLDR's token-level reward model (Fu et al. 2025, §3 and Fig. 2).

The backbone f is the VLM without its LM head; a linear head h: R^D → R, shared by every position,
reads the last hidden state at each token, and P_γ(e_k | m, p, d) = σ(h(H_{|m|+|p|+k})) is the
probability that response token k is good. Trained: h, and LoRA on the multimodal projector and the
language decoder; the vision encoder stays frozen.

With `RewardConfig.reads_likelihood` the head also reads two numbers per token: the base model's
log-probability of the token given everything before it, and its best log-probability there
(`likelihood_features` says why a small backbone needs them, `base_likelihood` why from the base).

With `RewardConfig.reads_twice` the response is given twice and each token is scored at its second
reading. Why: a hallucinated word is often wrong only because of words that come after it. In
"right of a small blue square are two large red stars" the word to flag is "right", the first word;
in "four small red circles are left of ..." it is "four", before the noun says which group is
counted; in a swap of two colours, each colour comes before the shape it is wrongly bound to. A
causal decoder's state at such a word has seen nothing to judge it by, and the head can only guess
from the word's prior (on the built-in world: spatial mAP(neg) 0.52, counting 0.67 read once). At
the second reading, the same token's own position has attended to the whole first reading, so its
state can hold the comparison. The position is still the token's own and the head still one linear
map: the paper's model, given the whole caption as context (the repetition trick of Springer et
al. 2024, "Repetition Improves Language Model Embeddings"). The base likelihood is read at the
first reading, where it is the captioner's own next-token probability; at the second it would
only say the word can be copied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel, ProcessorMixin

from reward.vlm import ModelNotFound, vlm_load

FORMAT_VERSION = 1
MANIFEST = "reward_model.json"
HEAD_FILE = "head.safetensors"

# Where each part of a transformers-5 VLM lives inside its backbone (`ForConditionalGeneration.model`).
# LLaVA and PaliGemma: vision_tower / multi_modal_projector / language_model; Idefics3 (SmolVLM):
# vision_model / connector / text_model; Qwen2-VL: visual (its projector is visual.merger) /
# language_model; Mllama: vision_model / multi_modal_projector / language_model.
VISION_ENCODERS = ("vision_tower", "vision_model", "visual")
PROJECTORS = ("multi_modal_projector", "connector", "visual.merger")
DECODERS = ("language_model", "text_model")


class RewardModelError(ValueError):
    """A reward model directory or backbone that cannot be used; the message names it."""


@dataclass
class RewardConfig:
    """How the reward model is built and trained.

    The paper uses LoRA r 512, α 128, dropout 0.1 on 3B-11B backbones; the built-in backbone is a few
    million parameters with hidden sizes of 32-256, where r 512 would exceed the layers' own rank.
    r 16, α 32 is what the feasibility run trained well with on CPU.
    `objective`: "tokens" is TLDR (BCE on every response token); "naive" is the paper's binary
    reward-model baseline (BCE on the last response token, label = every token good).
    `reads_likelihood`: the head also reads how likely the base model found the token before reading
    it (see `likelihood_features`); by default TLDR does and the naive baseline does not.
    `likelihood_inputs`: 2 (the token's and the best log-probability) or 3 (and the runner-up's; see
    `likelihood_features` for why it is not the default).
    `reads_twice`: each token is scored at a second reading of the response (the module docstring says
    why); by default TLDR is, and the naive baseline, whose last token already sees the whole response,
    is not.
    """

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    train_projector: bool = True
    objective: Literal["tokens", "naive"] = "tokens"
    bad_weight: float = 1.0
    threshold: float = 0.5
    reads_likelihood: bool | None = None
    likelihood_inputs: int = 2
    reads_twice: bool | None = None

    def __post_init__(self) -> None:
        # The naive baseline is the paper's: one verdict from the last token's hidden state.
        if self.reads_likelihood is None:
            self.reads_likelihood = self.objective == "tokens"
        if self.reads_twice is None:
            self.reads_twice = self.objective == "tokens"
        if self.likelihood_inputs not in (2, 3):
            raise ValueError(f"likelihood_inputs is {self.likelihood_inputs}; the head reads 2 or 3 likelihood inputs")


def likelihood_features(
    hidden: torch.Tensor, input_ids: torch.Tensor, scored: torch.Tensor, lm_head: nn.Module, count: int = 2
) -> torch.Tensor:
    """[B, T, count]: at each scored position k, log P(x_k | x_<k), the best log P(v | x_<k) over the
    vocabulary and the runner-up's; the first `count` of them (2 or 3), 0 elsewhere.

    Why: whether a word matches the image is a comparison of two things, the word and what the image
    shows there. A linear head on h_k can only add up what h_k holds, so the backbone itself must
    have learned to make that comparison; a large pretrained VLM has, a backbone trained for minutes
    has not (bench/likelihood_detector.py: its own next-token probability finds swapped colours and
    shapes with mAP(neg) 0.7-0.99 where a head on h_k alone stays near chance). The LM head's score of
    x_k at position k - 1 is exactly that comparison, and the best score there says how sure the
    backbone was of anything. The runner-up (count 3) is meant for captions the captioner wrote
    itself: greedy, each token is the best, so the first two numbers are equal and say only how sure
    it was, and the runner-up how near it came to another word. Measured, it is no clear gain
    (bench/reward_variants.py, 600 steps, three seeds: own captions mAP(neg) +0.017, perturbations
    -0.005 on average, either sign from seed to seed), so the default is 2. `hidden` must be the
    base model's (see `TokenRewardModel.forward`).
    """
    features = hidden.new_zeros((*input_ids.shape, count), dtype=torch.float32)
    scored = scored.to(hidden.device).bool().clone()
    scored[:, 0] = False  # the first position has no prefix to predict it
    previous = hidden[:, :-1][scored[:, 1:]]  # [N, D]: the positions that predict the scored tokens
    log_probs = torch.log_softmax(lm_head(previous).float(), dim=-1)  # [N, V]
    token_log_prob = log_probs.gather(-1, input_ids[scored][:, None]).squeeze(-1)
    best = log_probs.topk(2, dim=-1).values  # [N, 2]
    features[scored] = torch.stack([token_log_prob, best[:, 0], best[:, 1]], dim=-1)[:, :count]
    return features


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + ".") for prefix in prefixes)


def lora_targets(vlm: PreTrainedModel, *, train_projector: bool = True, train_vision: bool = False) -> list[str]:
    """Full names of the linear layers that get LoRA: the decoder's and (optionally) the projector's.

    TLDR keeps the vision encoder frozen; `train_vision` gives it LoRA too, for the measurement that
    showed the frozen tower is not what limits the built-in backbone (bench/reward_variants.py).

    One rule for every architecture: walk the backbone; a linear layer under a projector name is the
    projector (checked first, because Qwen2-VL keeps its merger inside the vision module); under a
    vision-encoder name it is the frozen vision encoder; under a decoder name it is the decoder. Plain
    names like `q_proj` would also catch the vision encoder's attention. A linear layer in none of
    these is an architecture this rule does not know yet: fail rather than guess.
    """
    targets = []
    for path, module in vlm.model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if _under(path, PROJECTORS):
            if train_projector:
                targets.append(f"model.{path}")
        elif _under(path, VISION_ENCODERS):
            if train_vision:
                targets.append(f"model.{path}")
        elif _under(path, DECODERS):
            targets.append(f"model.{path}")
        else:
            parts = ", ".join(name for name, _ in vlm.model.named_children())
            raise RewardModelError(
                f"{type(vlm).__name__}: linear layer {path} is in no known vision encoder, projector or "
                f"decoder (backbone parts: {parts}); add its part's name to reward/model.py"
            )
    return targets


class TokenRewardModel(nn.Module):
    """A VLM backbone with LoRA and a per-token head; `forward` gives a logit at every position."""

    def __init__(self, vlm: PeftModel, config: RewardConfig, *, base_model: str) -> None:
        super().__init__()
        self.vlm = vlm
        self.config = config
        self.base_model = base_model
        hidden = vlm.get_base_model().config.get_text_config().hidden_size
        # Created after the LoRA wrap: get_peft_model freezes every parameter it finds.
        inputs = config.likelihood_inputs if config.reads_likelihood else 0
        self.head = nn.Linear(hidden + inputs, 1)
        if config.reads_likelihood:
            with torch.no_grad():
                # Start as the likelihood detector, log P(x_k) - max log P: 0 for the word the base
                # model expected, negative for one it did not. From zero the head never learns to lean
                # on it in a short run, because half the true training captions are paraphrases the
                # base model finds unlikely word by word (bench/reward_variants.py, 300 steps:
                # perturbations mAP(neg) 0.72 from this start, 0.49 from zero, 0.46 without the input).
                # Plus half the best log P: on a greedy caption's tokens the two are equal and their
                # difference says nothing, while how sure the base model was ranks its own errors
                # (bench/reward_variants.py --likelihood-init, 3 minutes, seeds 0-2: own captions
                # +0.013 to +0.044 against (1, -1), perturbations even or better). The runner-up starts at 0.
                self.head.weight[0, hidden:] = torch.tensor([1.0, -0.5, 0.0][:inputs])

    @classmethod
    def build(cls, vlm: PreTrainedModel, config: RewardConfig, *, base_model: str) -> TokenRewardModel:
        """A fresh reward model on `vlm` (as loaded by `vlm_load(base_model)`)."""
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=lora_targets(vlm, train_projector=config.train_projector),
            bias="none",
        )
        return cls(get_peft_model(vlm, lora), config, base_model=base_model)

    @property
    def backbone(self) -> nn.Module:
        """f: the VLM's `model` (vision encoder, projector, decoder) with LoRA inside, without LM head."""
        return self.vlm.get_base_model().model

    def forward(
        self,
        model_inputs: dict[str, torch.Tensor],
        response_mask: torch.Tensor | None = None,
        first_reading_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of "good" at every position, [B, T]; only response positions mean anything.

        `response_mask` [B, T] says which positions will be read; with `reads_likelihood` the LM head
        then runs on those alone (its vocabulary-wide output is the costly part on large backbones).
        Without it every attended position is scored. A model that `reads_twice` takes the encoding's
        `first_reading_mask` too (`encode_responses(read_twice=True)`); the likelihood comes from there.
        """
        if self.config.reads_twice and first_reading_mask is None:
            raise ValueError("this reward model reads each response twice: encode with read_twice=True")
        device = self.head.weight.device
        inputs = {key: value.to(device) for key, value in model_inputs.items()}
        hidden = self.backbone(**inputs, use_cache=False).last_hidden_state  # [B, T, D]
        features = hidden.to(self.head.weight.dtype)
        if self.config.reads_likelihood:
            scored = response_mask if response_mask is not None else inputs["attention_mask"]
            if first_reading_mask is None:
                likelihood = self.base_likelihood(inputs, scored)
            else:
                # Token k of the first reading is token k of the second: the same order, row by row.
                first = self.base_likelihood(inputs, first_reading_mask)
                likelihood = torch.zeros_like(first)
                likelihood[scored.to(device).bool()] = first[first_reading_mask.to(device).bool()]
            features = torch.cat([features, likelihood.to(features.dtype)], dim=-1)
        return self.head(features).squeeze(-1)

    @torch.no_grad()
    def base_likelihood(self, inputs: dict[str, torch.Tensor], scored: torch.Tensor) -> torch.Tensor:
        """`likelihood_features` of the base model: a second pass with the LoRA switched off, no gradient.

        Why not the LoRA pass: the LM head reads the same last hidden states as our head, and training
        moves them for our head. With shared states the LM's image-grounded likelihood turned into a
        text prior within a few hundred steps (swapped colours: mAP(neg) 0.99 with the LoRA off, 0.22
        on), exactly the knowledge the head had no other way to reach. The pass costs a forward of
        the backbone, no backward.

        The pass stops at the last scored column: the decoder is causal over the response, so what
        comes after (a second reading) changes nothing before it, and need not be computed.
        """
        width = int(scored.bool().any(dim=0).nonzero().max()) + 1 if scored.any() else 1
        # The per-position inputs `encode_responses` builds; image inputs are not per position.
        cut = {
            key: value[:, :width] if key in ("input_ids", "attention_mask") or key.endswith("token_type_ids") else value
            for key, value in inputs.items()
        }
        # peft's disable_adapter makes the adapter trainable on the way out; a loaded model must stay frozen.
        trainable = {name: parameter.requires_grad for name, parameter in self.vlm.named_parameters()}
        with self.vlm.disable_adapter():
            hidden = self.backbone(**cut, use_cache=False).last_hidden_state
        for name, parameter in self.vlm.named_parameters():
            parameter.requires_grad_(trainable[name])
        lm_head = self.vlm.get_base_model().get_output_embeddings()
        features = likelihood_features(
            hidden, cut["input_ids"], scored[:, :width], lm_head, self.config.likelihood_inputs
        )
        return F.pad(features, (0, 0, 0, inputs["input_ids"].shape[1] - width))

    def save(self, directory: Path | str, metrics: dict | None = None) -> Path:
        """The adapter, the head and a manifest naming the base model; the base weights are not copied."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.vlm.save_pretrained(directory)
        save_file(
            {key: value.detach().cpu().contiguous() for key, value in self.head.state_dict().items()},
            directory / HEAD_FILE,
        )
        manifest = {
            "format_version": FORMAT_VERSION,
            "base_model": self.base_model,
            "config": asdict(self.config),
            "threshold": self.config.threshold,
            "metrics": metrics or {},
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(
        cls,
        directory: Path | str,
        *,
        base_model_override: str | None = None,
        trainable: bool = False,
        dtype: torch.dtype | str | None = None,
    ) -> tuple[TokenRewardModel, ProcessorMixin]:
        """A saved reward model and its backbone's processor; `trainable` to keep training it."""
        directory = Path(directory)
        manifest = reward_model_manifest(directory)
        base_model = base_model_override or manifest["base_model"]
        vlm, processor = vlm_load(base_model, dtype=dtype)
        try:
            # Manifests written before `reads_likelihood`, `likelihood_inputs` and `reads_twice` existed
            # describe heads that read h_k alone, or two likelihood inputs, of a response read once.
            defaults = {"reads_likelihood": False, "likelihood_inputs": 2, "reads_twice": False}
            config = RewardConfig(**{**defaults, **manifest["config"]})
            peft_vlm = PeftModel.from_pretrained(vlm, directory, is_trainable=trainable)
            model = cls(peft_vlm, config, base_model=base_model)
            model.head.load_state_dict(load_file(directory / HEAD_FILE))
        except (OSError, ValueError, TypeError, KeyError, RuntimeError) as error:
            raise RewardModelError(f"reward model at {directory} does not load onto {base_model}: {error}") from None
        return model, processor


def reward_model_manifest(directory: Path) -> dict:
    """The manifest of a saved reward model, or an error naming the directory and what is wrong."""
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ModelNotFound(f"no reward model at {directory} (no {MANIFEST}): train one with `python -m reward train`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RewardModelError(f"{manifest_path} is not readable JSON ({error})") from None
    missing = {"format_version", "base_model", "config"} - set(manifest) if isinstance(manifest, dict) else {"all"}
    if missing:
        raise RewardModelError(f"{manifest_path} lacks {', '.join(sorted(missing))}")
    if manifest["format_version"] > FORMAT_VERSION:
        raise RewardModelError(
            f"{manifest_path} has format {manifest['format_version']}; this code reads up to {FORMAT_VERSION}"
        )
    return manifest


def reward_loss(
    logits: torch.Tensor,
    token_bad: torch.Tensor,
    response_mask: torch.Tensor,
    objective: Literal["tokens", "naive"] = "tokens",
    bad_weight: float = 1.0,
) -> torch.Tensor:
    """Binary cross-entropy on P(good) = σ(logit), response tokens only (image and prompt carry no label).

    logits, token_bad (1 = bad), response_mask: [B, T]. "tokens" (TLDR): every response token, bad
    tokens weighted `bad_weight`, averaged over response tokens. "naive" (the paper's binary RM): the
    last response token of each row against the whole response's label (good iff no token is bad).
    """
    mask = response_mask.to(logits.device).bool()
    bad = token_bad.to(logits.device).float() * mask
    if objective == "naive":
        last = (mask.long().cumsum(dim=1) == mask.sum(dim=1, keepdim=True)) & mask  # [B, T], ≤ 1 True per row
        logits = logits[last]  # [rows with a response]: an empty caption has no last token to judge
        bad = (bad.sum(dim=1) > 0).float()[mask.any(dim=1)]
        mask = torch.ones_like(bad, dtype=torch.bool)
    weight = torch.where(bad > 0, bad_weight, 1.0) * mask
    losses = F.binary_cross_entropy_with_logits(logits.float(), 1.0 - bad, reduction="none")
    return (losses * weight).sum() / mask.sum().clamp(min=1)
