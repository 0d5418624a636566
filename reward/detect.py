"""Detection: which words of a caption the reward model suspects, as the annotation page shows them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import ProcessorMixin

from reward.images import ImageError, image_check, image_open
from reward.model import TokenRewardModel
from reward.tokens import Span, encode_responses, word_scores_from_tokens
from reward.vlm import CAPTION_PROMPT
from reward.words import response_words


@dataclass(frozen=True)
class WordScore:
    """One word of a caption, its character span, and the probability that it is hallucinated."""

    text: str
    start: int
    end: int
    p_bad: float


def images_check(images: list[Image.Image | Path | str]) -> list[Image.Image]:
    """RGB images from in-memory images or file paths; an `ImageError` names the bad one's index."""
    checked = []
    for index, image in enumerate(images):
        if isinstance(image, (str, Path)):
            try:
                image = image_open(image)
            except ImageError as error:
                raise ImageError(f"image {index}: {error}") from None
        checked.append(image_check(image, index=index))
    return checked


def _context_length(reward_model: TokenRewardModel) -> int | None:
    """The most tokens (prompt, image and caption) the backbone's decoder takes, where it says."""
    text_config = reward_model.vlm.get_base_model().config.get_text_config()
    return getattr(text_config, "max_position_embeddings", None)


def token_scores(
    reward_model: TokenRewardModel,
    processor: ProcessorMixin,
    images: list[Image.Image | Path | str],
    captions: list[str],
    *,
    batch_size: int = 32,
    instruction: str = CAPTION_PROMPT,
) -> list[tuple[list[Span], list[float]]]:
    """Per caption: its tokens' character spans and p_bad = 1 − P(good) of each token.

    The paper's metrics are defined on tokens; `score` turns these into word scores. An empty caption
    has no tokens. A caption longer than the model's context raises `CaptionTooLong` with its index
    (truncating would hide words from the annotator); an unusable image raises `ImageError` with its index.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions; give one caption per image")
    images = images_check(images)
    scored = [i for i, caption in enumerate(captions) if response_words(caption)]
    results: list[tuple[list[Span], list[float]]] = [([], []) for _ in captions]
    was_training = reward_model.training
    reward_model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(scored), batch_size):
                rows = scored[start : start + batch_size]
                encoding = encode_responses(
                    processor,
                    [images[i] for i in rows],
                    [captions[i] for i in rows],
                    instruction=instruction,
                    max_length=_context_length(reward_model),
                    indices=rows,
                    read_twice=reward_model.config.reads_twice,
                )
                logits = reward_model(encoding.model_inputs, encoding.response_mask, encoding.first_reading_mask)
                p_bad = 1.0 - torch.sigmoid(logits.float().cpu())  # [B, T]
                if reward_model.config.objective == "naive":
                    p_bad = _last_response_token_everywhere(p_bad, encoding.response_mask)
                for row, offsets, token_p_bad in zip(
                    rows, encoding.offsets, encoding.response_values(p_bad), strict=True
                ):
                    results[row] = (offsets, token_p_bad)
    finally:
        reward_model.train(was_training)
    return results


def _last_response_token_everywhere(p_bad: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """The naive binary RM judges the whole response at its last token: every token carries that verdict.

    Its other positions were never trained, so this is the only honest reading of it, and it is exactly
    the whole-caption flag the "binary" arm of the app shows.
    """
    last = response_mask.long().cumsum(dim=1).argmax(dim=1)  # [B], the last response position
    verdict = p_bad.gather(1, last[:, None])  # [B, 1]
    return torch.where(response_mask, verdict, p_bad)


def score(
    reward_model: TokenRewardModel,
    processor: ProcessorMixin,
    images: list[Image.Image | Path | str],
    captions: list[str],
    *,
    batch_size: int = 32,
    instruction: str = CAPTION_PROMPT,
) -> list[list[WordScore]]:
    """Word scores of every caption of its image: a word is as bad as its worst token (see `token_scores`)."""
    results = []
    tokens = token_scores(reward_model, processor, images, captions, batch_size=batch_size, instruction=instruction)
    for caption, (offsets, token_p_bad) in zip(captions, tokens, strict=True):
        words = response_words(caption)
        word_p_bad = word_scores_from_tokens(words, offsets, token_p_bad)
        results.append([WordScore(text, s, e, p) for (text, s, e), p in zip(words, word_p_bad, strict=True)])
    return results
