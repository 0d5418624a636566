"""The policy: the captioner VLM with LoRA on its decoder and projector, and a value head.

PPO needs three things from one model: log π(a_t | s_t) of the sampled caption tokens, the same
under the reference policy π_ref, and a value V(s_t) per token. Here the reference is the very same
network with the adapter switched off (`disable_adapter`), so no second copy of the captioner is held;
the value head is a linear layer on the last hidden state (FG-RLHF keeps a separate value model, which
would again mean a second copy).

The policy's distribution is the model's softmax with the image placeholder tokens removed, in
sampling and in every log-probability alike: a sampled `<image>` would make the next forward pass
expect image features it does not have, and a ratio π/π_old is only right if both sides are the
distribution the tokens were really drawn from.

Saving merges the adapter into the base weights, so what comes out is again a plain captioner that
`reward.vlm.vlm_load` (the web app's one loading path) takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from PIL import Image
from torch import nn
from transformers import PreTrainedModel, ProcessorMixin

from reward.model import lora_targets
from reward.tokens import Span, response_token_type
from reward.vlm import CAPTION_PROMPT, image_token_ids, prompts_encode, vlm_load


@dataclass
class PolicyConfig:
    """The adapter and how captions are sampled.

    LoRA r 16, α 32 is what trains well on the built-in few-million-parameter captioner (FiSAO uses
    r 128, α 256 on 7B models). Dropout is 0: PPO's first epoch needs π = π_old exactly.
    """

    lora_r: int = 16
    lora_alpha: int = 32
    train_projector: bool = True
    max_new_tokens: int = 32
    # Rollouts sample softmax(logits / T), and PPO trains that distribution; greedy captions do not
    # depend on T. A hotter policy samples the right word more often where the captioner is confidently
    # wrong, but T 2 mostly samples wrong words (bench/ppo_diagnosis.py, exact judge, 300 rollouts:
    # samples' reward -0.02 against 0.66 at T 1, held-out H_T 0.0786 against 0.0740).
    temperature: float = 1.0
    instruction: str = CAPTION_PROMPT


@dataclass
class Sequences:
    """A batch of (image, prompt, response) rows: the prompt left-padded, the response right-padded.

    `model_inputs` is what the VLM's forward takes for prompt + response; `response_ids` and
    `response_mask` are [B, N], the mask True on the response's tokens (up to and including its end
    token). The response sits at the very end of every row, so the last N + 1 logits score it.
    """

    model_inputs: dict[str, torch.Tensor]
    response_ids: torch.Tensor
    response_mask: torch.Tensor

    @property
    def rows(self) -> int:
        return self.response_ids.shape[0]

    def select(self, rows: torch.Tensor) -> Sequences:
        """The given rows; every row-first tensor (image features included) is indexed alike.

        Architectures that flatten all images' patches into one tensor (Qwen2-VL) cannot be split by
        row: keep their minibatch as large as the rollout batch.
        """
        batch = self.rows
        inputs = {
            key: value[rows] if value.dim() > 0 and value.shape[0] == batch else value
            for key, value in self.model_inputs.items()
        }
        return Sequences(inputs, self.response_ids[rows], self.response_mask[rows])


@dataclass
class Rollout:
    """Sampled captions and everything PPO needs of them; every tensor is [B, N] over response tokens."""

    sequences: Sequences
    captions: list[str]
    token_spans: list[list[Span]]  # per caption: the character span of each response token
    log_probs: torch.Tensor
    ref_log_probs: torch.Tensor
    values: torch.Tensor


def eos_ids(model: PreTrainedModel, processor: ProcessorMixin) -> list[int]:
    """The tokens that end a response: the generation config's (one or a list), else the tokenizer's."""
    configured = model.generation_config.eos_token_id
    if configured is None:
        configured = processor.tokenizer.eos_token_id
    return [configured] if isinstance(configured, int) else list(configured or [])


def response_cut(ids: list[int], ends: list[int]) -> list[int]:
    """A generated row up to and including its first end token (what follows is padding)."""
    for position, token in enumerate(ids):
        if token in ends:
            return ids[: position + 1]
    return ids


def response_text(tokenizer, ids: list[int]) -> tuple[str, list[Span]]:
    """The caption a response decodes to (as `captions_generate` writes it) and each token's span in it.

    A token covers the characters its decoding adds to the text of the tokens before it, leading
    spaces left out; special tokens add nothing and get an empty span. Decoding prefixes works for any
    tokenizer; where a later token rewrites earlier text (clean-up of spaces), the span starts where
    the two texts part.
    """
    text, spans = "", []
    for k in range(len(ids)):
        decoded = tokenizer.decode(ids[: k + 1], skip_special_tokens=True)
        common = len(text)
        if not decoded.startswith(text):
            common = next((i for i, (a, b) in enumerate(zip(text, decoded, strict=False)) if a != b), len(decoded))
        piece = decoded[common:]
        spans.append((common + len(piece) - len(piece.lstrip()), len(decoded)))
        text = decoded
    lead = len(text) - len(text.lstrip())
    caption = text.strip()
    spans = [(min(max(s - lead, 0), len(caption)), min(max(e - lead, 0), len(caption))) for s, e in spans]
    return caption, [(s, max(s, e)) for s, e in spans]


def sequences_build(
    prompts: dict[str, torch.Tensor], responses: list[list[int]], *, pad_id: int, response_type: int = 0
) -> Sequences:
    """Prompt rows (as `prompts_encode` gives them) followed by each row's response tokens."""
    rows, prompt_length = prompts["input_ids"].shape
    width = max(1, max(len(r) for r in responses))
    response_ids = torch.full((rows, width), pad_id, dtype=torch.long)
    response_mask = torch.zeros((rows, width), dtype=torch.bool)
    for row, tokens in enumerate(responses):
        response_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        response_mask[row, : len(tokens)] = True
    device = prompts["input_ids"].device
    response_ids, response_mask = response_ids.to(device), response_mask.to(device)
    inputs = dict(prompts)
    inputs["input_ids"] = torch.cat([prompts["input_ids"], response_ids], dim=1)
    inputs["attention_mask"] = torch.cat([prompts["attention_mask"], response_mask.long()], dim=1)
    for key, value in prompts.items():
        if key.endswith("token_type_ids") and value.shape == (rows, prompt_length):
            kind = response_type if key == "token_type_ids" else 0
            inputs[key] = torch.cat([value, torch.full_like(response_ids, kind)], dim=1)
    return Sequences(inputs, response_ids, response_mask)


def log_probs_of(logits: torch.Tensor, tokens: torch.Tensor, banned: list[int], temperature: float) -> torch.Tensor:
    """log π(token) under softmax(logits / T) with the banned tokens removed; logits [B, N, V] → [B, N]."""
    logits = logits.float() / temperature
    if banned:
        logits = logits.index_fill(-1, torch.tensor(banned, device=logits.device), float("-inf"))
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


class CaptionPolicy(nn.Module):
    """The captioner with a LoRA adapter (the policy π) and a value head; adapter off = π_ref."""

    def __init__(self, vlm: PeftModel, processor: ProcessorMixin, config: PolicyConfig) -> None:
        super().__init__()
        self.vlm = vlm
        self.processor = processor
        self.config = config
        self.banned = image_token_ids(processor)
        self.ends = eos_ids(vlm.get_base_model(), processor)
        hidden = vlm.get_base_model().config.get_text_config().hidden_size
        # Created after the LoRA wrap (get_peft_model freezes what it finds); zero: V = 0 before any return is seen.
        self.value_head = nn.Linear(hidden, 1, device=vlm.get_base_model().device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def load(cls, captioner: str | Path, config: PolicyConfig | None = None, *, seed: int = 0) -> CaptionPolicy:
        """A fresh policy on the captioner at `captioner` (anything `vlm_load` takes); the seed fixes LoRA's init."""
        config = config or PolicyConfig()
        vlm, processor = vlm_load(str(captioner))
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=0.0,
            target_modules=lora_targets(vlm, train_projector=config.train_projector),
            bias="none",
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            policy = cls(get_peft_model(vlm, lora), processor, config)
        return policy.eval()  # no dropout anywhere: log-probs must be a function of the weights alone

    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    def prompts(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        inputs = prompts_encode(self.processor, images, self.config.instruction)
        return {key: value.to(self.device) for key, value in inputs.items()}

    def forward(self, sequences: Sequences, *, with_values: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log π of each response token [B, N] and V(s_t) before it [B, N] (None without values)."""
        width = sequences.response_ids.shape[1]
        output = self.vlm(
            **sequences.model_inputs, logits_to_keep=width + 1, output_hidden_states=with_values, use_cache=False
        )
        # The logit at position P - 1 + k predicts response token k: drop the one after the last token.
        log_probs = log_probs_of(output.logits[:, :-1], sequences.response_ids, self.banned, self.config.temperature)
        if not with_values:
            return log_probs, None
        hidden = output.hidden_states[-1][:, -width - 1 : -1]  # [B, N, D], the state each token is chosen in
        # Detached: the value loss trains the head, not the policy's features, so it never competes
        # with the policy loss inside the shared adapter.
        values = self.value_head(hidden.detach().float()).squeeze(-1)
        return log_probs, values

    @torch.no_grad()
    def reference_log_probs(self, sequences: Sequences) -> torch.Tensor:
        """log π_ref: the same network with the adapter switched off, [B, N]."""
        with self.vlm.disable_adapter():
            log_probs, _ = self.forward(sequences, with_values=False)
        return log_probs

    @torch.no_grad()
    def rollout(self, images: list[Image.Image], *, seed: int) -> Rollout:
        """Sample one caption per image (full softmax, image tokens banned) and score it for PPO."""
        tokenizer = self.processor.tokenizer
        prompts = self.prompts(images)
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(seed)
            output = self.vlm.generate(
                **prompts,
                do_sample=True,
                temperature=self.config.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=self.config.max_new_tokens,
                bad_words_ids=[[token] for token in self.banned] or None,
                pad_token_id=self._pad_id(),
            )
        new_tokens = output[:, prompts["input_ids"].shape[1] :].tolist()
        responses = [response_cut(row, self.ends) for row in new_tokens]
        sequences = self.sequences(prompts, responses)
        log_probs, values = self.forward(sequences)
        decoded = [response_text(tokenizer, tokens) for tokens in responses]
        return Rollout(
            sequences=sequences,
            captions=[caption for caption, _ in decoded],
            token_spans=[spans for _, spans in decoded],
            log_probs=log_probs,
            ref_log_probs=self.reference_log_probs(sequences),
            values=values,
        )

    def teacher_forced(self, images: list[Image.Image], captions: list[str]) -> Sequences:
        """Rows whose response is the given caption followed by the end token (supervised fine-tuning)."""
        tokenizer = self.processor.tokenizer
        end = self.ends[:1]
        responses = [tokenizer(caption, add_special_tokens=False)["input_ids"] + end for caption in captions]
        return self.sequences(self.prompts(images), responses)

    def sequences(self, prompts: dict[str, torch.Tensor], responses: list[list[int]]) -> Sequences:
        return sequences_build(
            prompts, responses, pad_id=self._pad_id(), response_type=response_token_type(self.processor)
        )

    def trainable_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(the adapter's parameters, the value head's), for separate learning rates and clipping."""
        head = set(map(id, self.value_head.parameters()))
        adapter = [p for p in self.parameters() if p.requires_grad and id(p) not in head]
        return adapter, list(self.value_head.parameters())

    def _pad_id(self) -> int:
        tokenizer = self.processor.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.ends[0]


def policy_save(policy: CaptionPolicy, directory: Path | str) -> Path:
    """Merge the adapter into the base weights and save a plain captioner (model + processor).

    The merge happens in place (a second copy of a large captioner may not fit): the policy cannot
    be trained further afterwards. The value head is dropped; a captioner has no use for it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    merged = policy.vlm.merge_and_unload()
    merged.save_pretrained(directory)
    policy.processor.save_pretrained(directory)
    policy.vlm = None
    return directory
