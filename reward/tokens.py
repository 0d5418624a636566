"""Responses as model tokens, and the alignment of response words with those tokens.

Labels and scores live on words (the project's one word splitter, `response_words`); the model
reads and scores tokens. Every response token keeps its character span in the response, so a word
label becomes token labels (a token is bad iff it overlaps a bad word) and token scores become word
scores (a word is as bad as its worst subword) for any tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from transformers import PaliGemmaProcessor, ProcessorMixin

from reward.vlm import prompt_text

Span = tuple[int, int]


class CaptionTooLong(ValueError):
    """A caption that does not fit the model's context; the message names its index and the limit.

    `reason` is the message without the index, for callers that name the caption their own way (the
    app names it by its primary key, not by its place in a batch).
    """

    def __init__(self, index: int, needed: int, limit: int, *, read_twice: bool) -> None:
        self.index = index
        self.reason = (
            f"needs {needed} tokens with its prompt and image{' (read twice)' if read_twice else ''}; "
            f"the model takes at most {limit}"
        )
        super().__init__(f"caption {index} {self.reason}")


def _overlaps(token: Span, start: int, end: int) -> bool:
    return token[0] < end and start < token[1]


def token_labels_from_words(offsets: list[Span], word_spans_bad: list[Span]) -> list[bool]:
    """Token labels, True = bad: a token is bad iff its characters overlap a bad word."""
    return [any(_overlaps(token, start, end) for start, end in word_spans_bad) for token in offsets]


def word_scores_from_tokens(
    words: list[tuple[str, int, int]], offsets: list[Span], p_bad_tokens: list[float]
) -> list[float]:
    """Word p_bad = the worst (highest) p_bad of the tokens it overlaps: one bad subword spoils a word.

    A word no token covers (a tokenizer that drops characters) cannot be judged and scores 0.
    """
    scores = []
    for _, start, end in words:
        covering = [p for token, p in zip(offsets, p_bad_tokens, strict=True) if _overlaps(token, start, end)]
        scores.append(max(covering, default=0.0))
    return scores


@dataclass
class ResponseEncoding:
    """A right-padded batch of (image, prompt, response) rows, ready for the reward model.

    `model_inputs` is what the backbone's forward takes (input_ids, attention_mask, pixel_values and
    whatever else the architecture needs); `response_mask` [B, T] is True on response tokens;
    `offsets[b][k]` is the character span of the row's k-th response token in its response.
    Read twice (`encode_responses(read_twice=True)`), the response tokens of `response_mask` are the
    second reading and `first_reading_mask` marks the first, token for token in the same order.
    """

    model_inputs: dict[str, torch.Tensor]
    response_mask: torch.Tensor
    offsets: list[list[Span]]
    first_reading_mask: torch.Tensor | None = None

    def token_values(self, values: list[list[float]]) -> torch.Tensor:
        """Per-response-token values (labels, weights) placed at their positions: [B, T], 0 elsewhere."""
        placed = torch.zeros(self.response_mask.shape, dtype=torch.float32)
        for row, row_values in enumerate(values):
            placed[row, self.response_mask[row]] = torch.tensor(row_values, dtype=torch.float32)
        return placed

    def response_values(self, placed: torch.Tensor) -> list[list[float]]:
        """The inverse of `token_values`: each row's values at its response tokens, in order."""
        return [placed[row, self.response_mask[row]].tolist() for row in range(placed.shape[0])]


def response_token_type(processor: ProcessorMixin) -> int:
    """The token type a response token gets where the processor returns token types.

    PaliGemma marks the prefix (image + prompt, attended bidirectionally) 0 and the suffix (the
    answer, attended causally) 1. Elsewhere (Gemma 3 style, `mm_token_type_ids`) types mark image
    tokens, and response text is 0.
    """
    return 1 if isinstance(processor, PaliGemmaProcessor) else 0


def _stack(features: list[torch.Tensor]) -> torch.Tensor:
    """Image features of single rows as one batch.

    Rows of the same shape are concatenated along dim 0 (also Qwen2-VL's flat patch lists, whose
    lengths may differ). Idefics3 rows differ in their number of image crops (dim 1): pad with empty
    crops, which the model drops (all-zero pixels, pixel_attention_mask False).
    """
    if len({tuple(f.shape[1:]) for f in features}) > 1 and features[0].dim() >= 4:
        crops = max(f.shape[1] for f in features)
        features = [
            torch.cat([f, f.new_zeros((f.shape[0], crops - f.shape[1], *f.shape[2:]))], dim=1) for f in features
        ]
    return torch.cat(features, dim=0)


def encode_responses(
    processor: ProcessorMixin,
    images: list[Image.Image],
    responses: list[str],
    *,
    instruction: str,
    max_length: int | None = None,
    indices: list[int] | None = None,
    read_twice: bool = False,
) -> ResponseEncoding:
    """Prompt tokens (image tokens expanded by the processor, as for generation) followed by each
    response's tokens, right-padded into one batch.

    The response is tokenized on its own, without special tokens, so its offsets are spans of the
    response text itself. Raises `CaptionTooLong` naming the row when a row exceeds `max_length`;
    `indices` are the rows' numbers in the caller's list, for that message.

    `read_twice`: the response, the tokenizer's end-of-sequence token, then the response again; the
    second reading is the response the mask marks (`TokenRewardModel` says why).
    """
    tokenizer = processor.tokenizer
    prompt = prompt_text(processor, instruction)
    token_type = response_token_type(processor)
    separator = [tokenizer.eos_token_id] if read_twice and tokenizer.eos_token_id is not None else []
    rows, image_features, offsets = [], {}, []
    for index, (image, response) in enumerate(zip(images, responses, strict=True)):
        encoded = processor(images=[image], text=[prompt], return_tensors="pt")
        encoded.pop("labels", None)
        prompt_ids = encoded["input_ids"][0]
        tokens = tokenizer(response, add_special_tokens=False, return_offsets_mapping=True)
        response_ids = torch.tensor(tokens["input_ids"], dtype=torch.long)
        n = len(response_ids)
        readings = (
            [response_ids, torch.tensor(separator, dtype=torch.long), response_ids] if read_twice else [response_ids]
        )
        length = len(prompt_ids) + sum(len(part) for part in readings)
        if max_length is not None and length > max_length:
            raise CaptionTooLong(indices[index] if indices else index, length, max_length, read_twice=read_twice)
        marked = torch.zeros(length, dtype=torch.bool)
        marked[length - n :] = True
        first = torch.zeros(length, dtype=torch.bool)
        if read_twice:
            first[len(prompt_ids) : len(prompt_ids) + n] = True
        row = {
            "input_ids": torch.cat([prompt_ids, *readings]),
            "attention_mask": torch.ones(length, dtype=torch.long),
            "response_mask": marked,
            "first_reading_mask": first,
        }
        for key, value in encoded.items():
            if key.endswith("token_type_ids"):
                response_type = token_type if key == "token_type_ids" else 0
                row[key] = torch.cat(
                    [value[0], torch.full((length - len(prompt_ids),), response_type, dtype=value.dtype)]
                )
            elif key not in row:
                image_features.setdefault(key, []).append(value)
        rows.append(row)
        offsets.append([tuple(span) for span in tokens["offset_mapping"]])
    width = max(len(row["input_ids"]) for row in rows)
    pads = {
        "input_ids": tokenizer.pad_token_id or 0,
        "attention_mask": 0,
        "response_mask": False,
        "first_reading_mask": False,
    }
    batch = {}
    for key in rows[0]:
        pad = pads.get(key, token_type)
        batch[key] = torch.stack(
            [torch.cat([row[key], torch.full((width - len(row[key]),), pad, dtype=row[key].dtype)]) for row in rows]
        )
    response_mask = batch.pop("response_mask")
    first_reading_mask = batch.pop("first_reading_mask")
    batch.update({key: _stack(values) for key, values in image_features.items()})
    return ResponseEncoding(
        model_inputs=batch,
        response_mask=response_mask,
        offsets=offsets,
        first_reading_mask=first_reading_mask if read_twice else None,
    )
