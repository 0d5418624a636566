"""Tiny randomly initialised VLMs of four architectures, built offline, for the reward tests.

Each one is a real transformers model class with a processor assembled from parts (a word-level
tokenizer over a small vocabulary that holds the architecture's special tokens, the architecture's
image processor sized for 32-pixel images, a chat template where the architecture has one). They are
saved with `save_pretrained` and loaded back through `reward.vlm.vlm_load`, the one path every
backbone takes, so the tests exercise exactly what a real checkpoint goes through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

ARCHITECTURES = ("llava", "idefics3", "paligemma", "qwen2_vl")
# transformers 5 cannot build any processor with a video processor (Qwen2-VL's) without torchvision.
NEEDS_TORCHVISION = ("qwen2_vl",)
IMAGE_SIZE = 32

WORDS = [
    "a",
    "an",
    "the",
    "there",
    "is",
    "are",
    "one",
    "two",
    "three",
    "small",
    "large",
    "red",
    "green",
    "blue",
    "yellow",
    "white",
    "circle",
    "circles",
    "square",
    "squares",
    "triangle",
    "triangles",
    "star",
    "left",
    "right",
    "of",
    "above",
    "below",
    "and",
    "describe",
    "image",
    "user",
    "assistant",
    "User",
    "Assistant",
    "system",
    "you",
    "helpful",
    "answer",
    "question",
    "caption",
    ".",
    ",",
    ":",
    "?",
    "!",
    "'",
    "|",
    "<",
    ">",
    "[",
    "]",
    "-",
]

TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


def tokenizer_build(specials: list[str], extra: dict[str, str], *, bos: str = "<bos>") -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer: specials first, then the small vocabulary; offsets come for free."""
    base = ["<pad>", "<bos>", "<eos>", "<unk>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(base + specials + WORDS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token=bos,
        eos_token="<eos>",
        unk_token="<unk>",
        extra_special_tokens=extra,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    return tokenizer


def _llava() -> tuple[PreTrainedModel, Callable[[], ProcessorMixin]]:
    patch = 8
    tokenizer = tokenizer_build(["<image>"], {"image_token": "<image>"})
    template = (
        "{% for message in messages %}{% if message['role'] == 'user' %}user : "
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image> "
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
        "{% else %}assistant : {{ message['content'][0]['text'] }}<eos>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %} assistant :{% endif %}"
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        chat_template=template,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**VISION, image_size=IMAGE_SIZE, patch_size=patch),
        text_config=LlamaConfig(
            **TEXT,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    return LlavaForConditionalGeneration(config), lambda: processor


def _idefics3() -> tuple[PreTrainedModel, Callable[[], ProcessorMixin]]:
    patch, scale = 8, 2
    specials = ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|im_start|>"]
    tokenizer = tokenizer_build(specials, {})
    template = (
        "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
        "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
        image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    image_seq_len = (IMAGE_SIZE // patch) ** 2 // scale**2
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len, chat_template=template
    )
    config = Idefics3Config(
        vision_config={**VISION, "image_size": IMAGE_SIZE, "patch_size": patch},
        text_config={
            **TEXT,
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Idefics3ForConditionalGeneration(config), lambda: processor


def _paligemma() -> tuple[PreTrainedModel, Callable[[], ProcessorMixin]]:
    patch = 8
    tokenizer = tokenizer_build(["<image>"], {"image_token": "<image>"})
    image_processor = SiglipImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    image_processor.image_seq_length = (IMAGE_SIZE // patch) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    gemma = {
        **TEXT,
        "model_type": "gemma",
        "head_dim": 8,
        "vocab_size": len(processor.tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    config = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(
            **VISION, image_size=IMAGE_SIZE, patch_size=patch, projection_dim=TEXT["hidden_size"]
        ),
        text_config=gemma,
        image_token_index=processor.image_token_id,
        projection_dim=TEXT["hidden_size"],
    )
    return PaliGemmaForConditionalGeneration(config), lambda: processor


def _qwen2_vl() -> tuple[PreTrainedModel, Callable[[], ProcessorMixin]]:
    patch, merge = 4, 2
    specials = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = tokenizer_build(specials, {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    template = (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
        "<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    pixels = IMAGE_SIZE * IMAGE_SIZE
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch,
        merge_size=merge,
        temporal_patch_size=2,
        min_pixels=pixels,
        max_pixels=pixels,
        size={"shortest_edge": pixels, "longest_edge": pixels},
    )
    ids = {
        name: tokenizer.convert_tokens_to_ids(token)
        for name, token in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    config = Qwen2VLConfig(
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": TEXT["hidden_size"],
            "num_heads": 4,
            "mlp_ratio": 2,
            "patch_size": patch,
            "spatial_merge_size": merge,
            "temporal_patch_size": 2,
        },
        text_config={
            **TEXT,
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "rope_parameters": {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0},
        },
        **ids,
    )
    # transformers 5 gives Qwen2-VL's processor a video processor, which needs torchvision: built on demand.
    return Qwen2VLForConditionalGeneration(config), lambda: Qwen2VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )


BUILDERS = {"llava": _llava, "idefics3": _idefics3, "paligemma": _paligemma, "qwen2_vl": _qwen2_vl}


def tiny_vlm_model(architecture: str, *, seed: int = 0) -> PreTrainedModel:
    """A tiny random VLM of `architecture` without a processor (enough to inspect its modules)."""
    torch.manual_seed(seed)
    return BUILDERS[architecture]()[0]


def tiny_vlm_save(architecture: str, directory: Path, *, seed: int = 0) -> Path:
    """Build a tiny random VLM of `architecture` with its processor and save both to `directory`."""
    torch.manual_seed(seed)
    model, processor = BUILDERS[architecture]()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor().save_pretrained(directory)
    return directory
