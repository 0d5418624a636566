"""Any Hugging Face vision-language model through one path: load it, prompt it, let it caption.

The built-in tiny captioner, a local checkpoint and a hub id all go through `vlm_load`
(`AutoModelForImageTextToText` + `AutoProcessor`), so everything downstream (the reward model,
detection, the policy) sees the same two objects whatever the architecture.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from huggingface_hub import is_offline_mode, model_info, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedModel, ProcessorMixin

# The built-in captioner's tokenizer is word-level over a small vocabulary: plain lowercase words and ".".
CAPTION_PROMPT = "describe the image."

# Seconds to wait for the hub before saying it is unreachable; loading must never hang a web request.
HUB_TIMEOUT_S = 5.0

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "ON", "YES", "TRUE"}


class ModelNotFound(FileNotFoundError):
    """A backbone or reward model that is not where it was said to be; the message says what to do."""


def _path_like(name: str) -> bool:
    """Whether `name` means a local directory rather than a hub id (`org/name` or `name`).

    Hub ids have at most one slash and no leading `.`/`~`; anything else, or anything whose first
    component exists here (`var/models/x` when `var/` exists), is a path.
    """
    if name.startswith((".", "~", os.sep)) or "\\" in name or not _HUB_ID.match(name):
        return True
    return Path(name).exists() or Path(name.split("/")[0]).is_dir()


def _hub_offline() -> bool:
    """Offline mode as the environment says now (huggingface_hub reads it only once, at import)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return is_offline_mode() or any(flag.strip().upper() in _TRUE for flag in flags)


def _hub_not_found(name: str, reason: str) -> ModelNotFound:
    return ModelNotFound(
        f"model {name!r} is not in the local cache and {reason}: download it first (`hf download {name}`), "
        f"or set TLDR_BACKBONE to a local model directory (HF_HUB_OFFLINE=1 keeps everything offline)"
    )


def vlm_resolve(name_or_path: str) -> tuple[str, bool]:
    """Where to load `name_or_path` from and whether only local files may be used.

    Fails at once, naming the thing, instead of letting `from_pretrained` retry the network.
    """
    if _path_like(name_or_path):
        directory = Path(name_or_path).expanduser()
        if not (directory / "config.json").is_file():
            raise ModelNotFound(
                f"no model at {name_or_path}: run `python -m reward bootstrap` or set TLDR_BACKBONE to a "
                f"model directory or hub id"
            )
        return str(directory), True
    if isinstance(try_to_load_from_cache(name_or_path, "config.json"), str):
        return name_or_path, True
    if _hub_offline():
        raise _hub_not_found(name_or_path, "the hub is off (HF_HUB_OFFLINE is set)")
    try:
        model_info(name_or_path, timeout=HUB_TIMEOUT_S)
    except RepositoryNotFoundError:
        raise ModelNotFound(f"no model {name_or_path!r} on the hub and no directory of that name here") from None
    except (HfHubHTTPError, OSError) as error:
        raise _hub_not_found(name_or_path, f"the hub is unreachable ({type(error).__name__})") from None
    return name_or_path, False


def default_device() -> torch.device:
    """Where models run when nobody says: the GPU when there is one (workers, benches, training)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def vlm_load(name_or_path: str, *, dtype: torch.dtype | str | None = None) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A VLM with its LM head and its processor, from a local directory or a hub id.

    Raises `ModelNotFound` naming `name_or_path` when it is neither a model directory nor a reachable
    or cached hub id.
    """
    source, local_only = vlm_resolve(name_or_path)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=dtype, local_files_only=local_only)
    processor = AutoProcessor.from_pretrained(source, local_files_only=local_only)
    return model, processor


def image_token_ids(processor: ProcessorMixin) -> list[int]:
    """Ids of the placeholder tokens the processor expands into image features (never to be generated)."""
    tokenizer = processor.tokenizer
    ids = []
    for attribute in ("image_token", "video_token", "fake_image_token"):
        token = getattr(processor, attribute, None)
        if isinstance(token, str):
            token_id = tokenizer.convert_tokens_to_ids(token)
            if token_id is not None and token_id != tokenizer.unk_token_id:
                ids.append(token_id)
    return sorted(set(ids))


def prompt_text(processor: ProcessorMixin, instruction: str) -> str:
    """The prompt text for one image and one instruction, ready for `processor(images=, text=)`.

    With a chat template: one user turn holding the image and the instruction, plus the generation
    prompt, so the response starts where the model's answers start. Without one (PaliGemma, the
    built-in captioner): the image token followed by the instruction; the processor expands the image
    token and adds what the architecture needs around it (PaliGemma adds `<bos>` and a newline).
    """
    if getattr(processor, "chat_template", None):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return f"{processor.image_token}{instruction}"


def prompts_encode(processor: ProcessorMixin, images: list[Image.Image], instruction: str | list[str]) -> dict:
    """One left-padded batch of prompts, so that every row's generation continues from its last token.

    `instruction` is one for all rows, or one per row (self-correction asks each caption's own fix).
    """
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        instructions = [instruction] * len(images) if isinstance(instruction, str) else instruction
        prompts = [prompt_text(processor, text) for text in instructions]
        inputs = processor(images=[[image] for image in images], text=prompts, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    inputs.pop("labels", None)  # PaliGemma adds labels when it sees token_type_ids; generation needs none
    return dict(inputs)


def captions_generate(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    images: list[Image.Image],
    *,
    instruction: str | list[str] = CAPTION_PROMPT,
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
    batch_size: int = 32,
) -> list[str]:
    """Captions of `images`: batched `generate`, only the new tokens decoded, special tokens dropped.

    Image placeholder tokens are banned from the output: a sampled `<image>` would make the next
    forward pass expect image features it does not have. `seed` makes sampling repeatable without
    touching the caller's global random state. `instruction` may differ per image (a list).
    """
    if not isinstance(instruction, str) and len(instruction) != len(images):
        raise ValueError(f"{len(instruction)} instructions for {len(images)} images; give one per image or one for all")
    tokenizer = processor.tokenizer
    options = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    }
    if do_sample:
        options["temperature"] = temperature
    if banned := image_token_ids(processor):
        options["bad_words_ids"] = [[token_id] for token_id in banned]
    captions: list[str] = []
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(images), batch_size):
            rows = instruction if isinstance(instruction, str) else instruction[start : start + batch_size]
            inputs = prompts_encode(processor, images[start : start + batch_size], rows)
            inputs = {key: value.to(model.device) for key, value in inputs.items()}
            output = model.generate(**inputs, **options)  # [B, prompt + new]
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            captions += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return captions
