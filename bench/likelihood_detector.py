"""A reference for TLDR: how well does the captioner's own next-token probability flag bad words?

    python bench/likelihood_detector.py [--models-dir var/models] [--scenes 200]

Scores every response token with 1 - P(token | image, prompt, earlier tokens) under the built-in
captioner (no training at all) and reports mAP(neg) on the same held-out sets TLDR is evaluated on:
perturbations per category and the captioner's own greedy captions, beside the TLDR model of the
same directory. The captioner predicts token k at position k - 1, so this score holds what the image
says about the word before the word is read. A TLDR head on the hidden state at the word's own
position alone stayed near chance where this score finds swapped colours and shapes: the reason TLDR
now reads this likelihood beside h_k (`RewardConfig.reads_likelihood`). Where TLDR is still below
it, training has pulled the head away from it.
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
from reward.metrics import metrics_report
from reward.model import TokenRewardModel, likelihood_features
from reward.tokens import encode_responses, token_labels_from_words
from reward.vlm import CAPTION_PROMPT, vlm_load


@torch.inference_mode()
def likelihood_report(model, processor, examples: list[LabelledCaption], batch_size: int = 64) -> dict:
    """TLDR's metrics report (`metrics_report`) with 1 - P(token | prefix) as each token's p_bad."""
    p_good, true_good, sentences = [], [], []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        encoding = encode_responses(
            processor, [e.image for e in batch], [e.caption for e in batch], instruction=CAPTION_PROMPT
        )
        hidden = model.model(**encoding.model_inputs).last_hidden_state
        ids, scored = encoding.model_inputs["input_ids"], encoding.response_mask
        p_token = likelihood_features(hidden, ids, scored, model.get_output_embeddings())[..., 0].exp()
        for example, offsets, row in zip(batch, encoding.offsets, encoding.response_values(p_token), strict=True):
            p_good.append(row)
            true_good.append([not bad for bad in token_labels_from_words(offsets, list(example.bad_spans))])
            sentences.append([example.caption[:token_start].count(".") for token_start, _ in offsets])
    return metrics_report(p_good, true_good, sentences, [e.category for e in examples])


def map_neg(report: dict) -> dict[str, float]:
    """mAP(neg) overall and per category of a metrics report ("true" has no bad token)."""
    values = {"overall": report["overall"]["mAP_neg"]}
    values |= {name: r["mAP_neg"] for name, r in report["by_category"].items() if name != "true"}
    return {name: round(value, 4) for name, value in values.items()}


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
    own, _ = own_caption_set(held_out, captioner, processor)
    sets = {"perturbations": perturbation_set(held_out), "own": own}
    tldr_model, tldr_processor = TokenRewardModel.load(args.models_dir / REWARD_MODEL)

    likelihood = {name: map_neg(likelihood_report(captioner, processor, examples)) for name, examples in sets.items()}
    tldr = {name: map_neg(reward_evaluate(tldr_model, tldr_processor, examples)) for name, examples in sets.items()}
    result = {
        **run_info(),
        "models_dir": str(args.models_dir),
        "scenes": args.scenes,
        "perturbations_mAP_neg": {"likelihood": likelihood["perturbations"], "tldr": tldr["perturbations"]},
        "own_captions_mAP_neg": {"likelihood": likelihood["own"]["overall"], "tldr": tldr["own"]["overall"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("perturbations_mAP_neg", "own_captions_mAP_neg")}, indent=2))


if __name__ == "__main__":
    main()
