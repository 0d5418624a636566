"""How good is the built-in captioner after a given training budget? Train (or load), then measure.

    python bench/captioner_quality.py --minutes 6
    python bench/captioner_quality.py --load var/models/captioner
    python bench/captioner_quality.py --minutes 3 --set lr=3e-3 --set model.text_layers=3
    python bench/captioner_quality.py --minutes 6 --set world.grid=0   # objects anywhere, judged there too

Held-out scenes come from their own seed, never from the training stream, and from the run's
world. Every generated word is labelled by the world's semantic parser against the scene graph, so
a caption that names the objects in another order is not punished, only what it gets wrong.
Reported:
- content-word hallucination rate: (hallucinated + unparsed) content words / all content words,
  overall and per word kind;
- exact match with the canonical caption; object recall (groups named with the right shape);
- H_T, H_S, H_R (TLDR): mean share of bad words per caption, of sentences with a bad word, and the
  share of captions with any;
- correction success: perturbed captions, their hallucinated words flagged, answered with a
  caption whose content words are all true.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from statistics import mean

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from reward.evaluate import held_out_scenes
from reward.vlm import captions_generate, vlm_load
from shapeworld.grammar import caption_write
from shapeworld.hallucination import captioner_rates, word_is_bad
from shapeworld.parser import caption_label
from shapeworld.perturb import caption_perturb_any
from shapeworld.pretrain import PretrainConfig, captioner_pretrain
from shapeworld.scene import Scene
from shapeworld.tiny_vlm import CAPTION_INSTRUCTION, correction_instruction


def config_override(config: PretrainConfig, assignments: list[str]) -> PretrainConfig:
    """`key=value` or `model.key=value` / `world.key=value`; values parsed as JSON where they can be."""
    for assignment in assignments:
        key, _, raw = assignment.partition("=")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, list):
            value = tuple(value)
        if "." in key:
            part, name = key.split(".", 1)
            inner = dataclasses.replace(getattr(config, part), **{name: value})
            config = dataclasses.replace(config, **{part: inner})
        else:
            config = dataclasses.replace(config, **{key: value})
    return config


@torch.inference_mode()
def answers_generate(model, processor, images, instructions: list[str], batch_size: int = 50) -> list[str]:
    """Greedy answers, one instruction per image, through the processor's chat template."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    image_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    answers = []
    for start in range(0, len(images), batch_size):
        prompts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
                add_generation_prompt=True,
            )
            for text in instructions[start : start + batch_size]
        ]
        inputs = processor(images=images[start : start + batch_size], text=prompts, padding=True, return_tensors="pt")
        output = model.generate(
            **inputs,
            max_new_tokens=64,
            do_sample=False,
            bad_words_ids=[[image_id]],
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new = output[:, inputs["input_ids"].shape[1] :]
        answers += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return answers


def correction_metrics(model, processor, scenes: list[Scene], images) -> dict:
    """Perturb each canonical caption, flag its hallucinated words, ask for the fix (TLDR §5.3)."""
    instructions, kept = [], []
    for i, scene in enumerate(scenes):
        rng = random.Random(f"bench-correction:{i}")
        perturbation = caption_perturb_any(scene, caption_write(scene), rng, n_changes=rng.choice([1, 2]))
        if perturbation is None:
            continue
        flagged = list(dict.fromkeys(w.text for w in perturbation.words if w.label == "hallucinated"))
        instructions.append(correction_instruction(perturbation.caption, flagged))
        kept.append(i)
    answers = answers_generate(model, processor, [images[i] for i in kept], instructions)
    fixed = [
        not any(word_is_bad(w) for w in caption_label(scenes[i], answer))
        for i, answer in zip(kept, answers, strict=True)
    ]
    exact = [answer == caption_write(scenes[i]) for i, answer in zip(kept, answers, strict=True)]
    return {"correction_success": mean(fixed), "correction_exact": mean(exact), "corrections": len(kept)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=None, help="train for this budget (default: config's)")
    parser.add_argument("--load", help="evaluate this saved captioner instead of training one")
    parser.add_argument("--model-dir", default="var/bench/captioner", help="where a trained captioner is saved")
    parser.add_argument("--set", action="append", default=[], help="override a PretrainConfig field: key=value")
    parser.add_argument("--n", type=int, default=300, help="held-out scenes")
    parser.add_argument("--out", default="bench/results/captioner_quality.json")
    parser.add_argument("--log", help="also append the result as one line to this JSONL file")
    parser.add_argument("--samples", type=int, default=8, help="example captions to print")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    config = config_override(PretrainConfig(), args.set)
    if args.minutes is not None:
        config = dataclasses.replace(config, minutes=args.minutes)
    model_dir = args.load or args.model_dir
    if not args.load:
        train = captioner_pretrain(config, model_dir)
        print("trained:", json.dumps({k: v for k, v in train.items() if k != "config"}))
    model, processor = vlm_load(model_dir)
    model.eval()
    held_out = held_out_scenes(args.n, world=config.world)
    scenes, images = held_out.scenes, held_out.images
    started = time.monotonic()
    captions = captions_generate(model, processor, images, instruction=CAPTION_INSTRUCTION)
    generate_s = time.monotonic() - started
    result = {
        **captioner_rates(scenes, captions),
        **correction_metrics(model, processor, scenes, images),
        "generate_seconds": round(generate_s, 2),
        "pretrain_stats": json.loads((Path(model_dir) / "pretrain_stats.json").read_text()),
        **run_info(),
    }
    for scene, caption in list(zip(scenes, captions, strict=True))[: args.samples]:
        print(f"  true: {caption_write(scene)}\n  said: {caption}")
    keys = ("content_word_hallucination_rate", "exact_match", "object_recall", "H_T", "H_S", "H_R")
    keys += ("correction_success",)
    print(json.dumps({k: round(result[k], 4) for k in keys}))
    print(json.dumps({k: round(v, 3) for k, v in result["per_kind"].items()}))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.log:
        with open(args.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
