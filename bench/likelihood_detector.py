"""A reference for TLDR: how well does the captioner's own next-token probability flag bad words?

    python bench/likelihood_detector.py [--models-dir var/models] [--scenes 200]

Scores every response token with 1 - P(token | image, prompt, earlier tokens) under the built-in
captioner (no training at all) and reports mAP(neg) on the same held-out sets TLDR is evaluated on:
perturbations per category and the captioner's own greedy captions, beside the TLDR model of the
same directory. The captioner predicts token k at position k - 1, so this score holds what the image
says about the word before the word is read; TLDR's head reads the hidden state at the word's own
position, where a two-layer decoder has one layer left to compare the word with the image. Where
the likelihood wins, the information is in the backbone and TLDR does not reach it.
Writes bench/results/likelihood_detector.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import run_info
from reward.bootstrap import CAPTIONER, REWARD_MODEL
from reward.data import LabelledCaption
from reward.evaluate import held_out_scenes, own_caption_set, perturbation_set, reward_evaluate
from reward.metrics import average_precision_bad
from reward.model import TokenRewardModel
from reward.tokens import encode_responses, token_labels_from_words
from reward.vlm import CAPTION_PROMPT, vlm_load


@torch.inference_mode()
def likelihood_map_neg(model, processor, examples: list[LabelledCaption], batch_size: int = 64) -> dict[str, float]:
    """mAP(neg) of 1 - P(token | prefix) per category and overall (the "true" category has no bad token)."""
    by_category: dict[str, tuple[list, list]] = {}
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        encoding = encode_responses(
            processor, [e.image for e in batch], [e.caption for e in batch], instruction=CAPTION_PROMPT
        )
        ids = encoding.model_inputs["input_ids"]
        log_probs = torch.log_softmax(model(**encoding.model_inputs).logits[:, :-1], dim=-1)
        p_token = torch.zeros(ids.shape, dtype=torch.float32)
        p_token[:, 1:] = log_probs.gather(-1, ids[:, 1:, None])[..., 0].exp()
        for example, offsets, p_good in zip(batch, encoding.offsets, encoding.response_values(p_token), strict=True):
            good = [not bad for bad in token_labels_from_words(offsets, list(example.bad_spans))]
            scores, labels = by_category.setdefault(example.category, ([], []))
            scores.append(p_good)
            labels.append(good)
    everything = ([s for v in by_category.values() for s in v[0]], [g for v in by_category.values() for g in v[1]])
    report = {"overall": average_precision_bad(*everything)}
    report |= {name: average_precision_bad(*v) for name, v in sorted(by_category.items()) if name != "true"}
    return {name: round(value, 4) for name, value in report.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path("var/models"))
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/likelihood_detector.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    captioner, processor = vlm_load(str(args.models_dir / CAPTIONER))
    captioner.eval()
    held_out = held_out_scenes(args.scenes)
    perturbations = perturbation_set(held_out)
    own, _ = own_caption_set(held_out, captioner, processor)
    tldr, tldr_processor = TokenRewardModel.load(args.models_dir / REWARD_MODEL)

    def tldr_map_neg(examples: list[LabelledCaption]) -> dict[str, float]:
        report = reward_evaluate(tldr, tldr_processor, examples)
        values = {"overall": report["overall"]["mAP_neg"]}
        values |= {name: r["mAP_neg"] for name, r in report["by_category"].items() if name != "true"}
        return {name: round(value, 4) for name, value in values.items()}

    result = {
        **run_info(),
        "models_dir": str(args.models_dir),
        "scenes": args.scenes,
        "perturbations_mAP_neg": {"likelihood": likelihood_map_neg(captioner, processor, perturbations)},
        "own_captions_mAP_neg": {"likelihood": likelihood_map_neg(captioner, processor, own)["overall"]},
    }
    result["perturbations_mAP_neg"]["tldr"] = tldr_map_neg(perturbations)
    result["own_captions_mAP_neg"]["tldr"] = tldr_map_neg(own)["overall"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("perturbations_mAP_neg", "own_captions_mAP_neg")}, indent=2))


if __name__ == "__main__":
    main()
