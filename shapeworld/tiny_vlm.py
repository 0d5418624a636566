"""The built-in captioner: a tiny LLaVA (CLIP vision tower, Llama decoder) over the world's words.

It is built from configs, never downloaded, and saved with `save_pretrained`, so it loads through
`AutoModelForImageTextToText` + `AutoProcessor` exactly like any hub VLM. Its tokenizer is
word-level over the caption grammar plus the words of two instructions it learns:

    describe the image.                                   -> a caption
    fix the caption: <caption> look again at: <words> .   -> the caption with those words fixed

The second one is the self-correction prompt of TLDR §5.3: a detector highlights words, the
captioner looks at them again. A highlighted word is a hint, not a verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from shapeworld.grammar import VOCABULARY

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<bos>", "<eos>", "<unk>", "<image>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, IMAGE)

CAPTION_INSTRUCTION = "describe the image."
# Ends the user turn; the answer follows it (a word the caption grammar never uses).
ANSWER_CUE = "answer :"
INSTRUCTION_WORDS = ("describe", "the", "image", "fix", "caption", "look", "again", "at", "answer", ":", ".", ",")
# What the correction prompt lists when no word in particular is flagged.
WHOLE_CAPTION = "everything"

# Pixels are scaled to [-1, 1]; training normalises the same way without the processor's overhead.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5

# One user turn (image, then text), then the answer; `<bos>` opens, `<eos>` closes an answer.
CHAT_TEMPLATE = (
    "{{ '<bos>' }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if message['content'] is string %} {{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %} {{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% else %} " + ANSWER_CUE + ""
    "{% if message['content'] is string %} {{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %} {{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %} {{ '<eos>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %} " + ANSWER_CUE + "{% endif %}"
)


@dataclass(frozen=True)
class TinyVlmConfig:
    """Shape of the tiny captioner.

    Defaults come from the feasibility spike's throughput tables (2-core CPU): 64 px images in
    16 px patches keep the image to 16 tokens, and the vision tower gets most of the parameters
    because grounding, not language, is what a from-scratch captioner lacks.
    """

    image_size: int = 64
    patch_size: int = 16
    vision_hidden: int = 192
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    mlp_ratio_vision: int = 4
    mlp_ratio_text: int = 3
    max_positions: int = 256

    @property
    def image_tokens(self) -> int:
        """Image features the decoder sees: one per patch (CLIP's class token is dropped)."""
        return (self.image_size // self.patch_size) ** 2


def correction_instruction(caption: str, flagged_words: list[str]) -> str:
    """The self-correction prompt (TLDR §5.3): the caption to fix and the words to look at again.

    No words means the whole caption is in doubt ("everything"): all a binary reward model can say,
    the baseline of the self-correction experiment.
    """
    words = " , ".join(flagged_words) if flagged_words else WHOLE_CAPTION
    return f"fix the caption: {caption} look again at: {words} ."


def tokenizer_build(extra_words: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: one id per word, so offsets map 1:1 onto `caption_words` spans.

    Whitespace, then punctuation, splits the text; this is the same split as `caption_words`'s
    regex for every text the grammar and the instructions produce.
    """
    words = [*SPECIAL_TOKENS, *VOCABULARY, *INSTRUCTION_WORDS, WHOLE_CAPTION, *extra_words]
    vocab = {word: i for i, word in enumerate(dict.fromkeys(words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def processor_build(config: TinyVlmConfig, tokenizer: PreTrainedTokenizerFast) -> LlavaProcessor:
    """A LlavaProcessor that expands `<image>` into exactly `config.image_tokens` placeholders.

    The Pil image processor needs no torchvision. Resize and crop target the model's own size, so
    an image of that size passes through unchanged and any other is scaled and centre-cropped.
    """
    side = config.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_mean=[PIXEL_MEAN] * 3,
        image_std=[PIXEL_STD] * 3,
        do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which "default" drops again
        chat_template=CHAT_TEMPLATE,
    )


def model_config_build(config: TinyVlmConfig, tokenizer: PreTrainedTokenizerFast) -> LlavaConfig:
    """The LlavaConfig: last vision layer (a 4-layer tower has no layer to spare), tied embeddings."""
    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden,
        intermediate_size=config.mlp_ratio_vision * config.vision_hidden,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=3,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden,
        intermediate_size=config.mlp_ratio_text * config.text_hidden,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model_config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    model_config.pad_token_id = tokenizer.pad_token_id
    return model_config


def tiny_vlm_build(config: TinyVlmConfig, seed: int = 0) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A freshly initialised captioner and its processor; the same seed gives the same weights."""
    tokenizer = tokenizer_build()
    processor = processor_build(config, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(model_config_build(config, tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.config.tiny_vlm = asdict(config)  # kept in config.json, so a saved model says how it was built
    return model, processor


def prompt_ids(processor: LlavaProcessor, instruction: str) -> list[int]:
    """Token ids of the whole prompt for one image, `<image>` already expanded (training path).

    Equal to what `processor(images=..., text=apply_chat_template(...))` yields; a test checks it.
    """
    tokenizer = processor.tokenizer
    text = processor.apply_chat_template(_messages(instruction), add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    image_id = tokenizer.convert_tokens_to_ids(IMAGE)
    count = _image_token_count(processor)
    expanded: list[int] = []
    for token in ids:
        expanded += [image_id] * count if token == image_id else [token]
    return expanded


def _image_token_count(processor: LlavaProcessor) -> int:
    side = processor.image_processor.crop_size["height"]
    return (side // processor.patch_size) ** 2


def _messages(instruction: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
