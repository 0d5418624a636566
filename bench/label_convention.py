"""Why retrained TLDR scores lower on the parser's labels of fresh captions: the function-word convention.

    python bench/label_convention.py [--reward var/models/tldr-v0 --reward var/closed_loop/round-3/tldr]
                                     [--eval-scenes 200]

bench/closed_loop.py judges TLDR on the active captioner's fresh captions two ways: by the parser,
which calls function words ("a", "is", "of", ".") neutral, counted good; and as the app labels
them, by aligning each caption with the simulated annotator's correction, where every word of a
deleted or rewritten span is bad, function words too. Retraining learns from the second. This
scores the same fresh captions (the built-in captioner's greedy captions of held-out scenes) with
each reward model given and reports word-level mAP(neg) (`reward.metrics.average_precision_bad`,
a word as bad as its worst token, as the app shows it) on: every word with the parser's labels, the
content words alone with the parser's labels (function words left out), and every word with the
correction's labels; and the mean p_bad of function words and of content words. If a model loses on
all words but not on content words, what it lost is the convention, not the errors it finds.
Writes bench/results/label_convention.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import run_info  # noqa: E402


def word_table(reward_dir: Path, held_out, captions: list[str]) -> dict:
    """The reward model's word scores of the captions, against the parser's and the corrections' labels."""
    from reward.data import BAD_LABELS, correction_example
    from reward.detect import score
    from reward.metrics import average_precision_bad
    from reward.model import TokenRewardModel
    from reward.tokens import token_labels_from_words
    from reward.vlm import default_device
    from shapeworld.parser import caption_label
    from shapeworld.simulate import caption_correct

    model, processor = TokenRewardModel.load(reward_dir)
    words = score(model.to(default_device()), processor, held_out.images, captions)
    all_p, all_good, content_p, content_good, correction_good, function_p = [], [], [], [], [], []
    for scene, image, caption, scored in zip(held_out.scenes, held_out.images, captions, words, strict=True):
        parsed = {(word.start, word.end): word.label for word in caption_label(scene, caption)}
        corrected_bad = correction_example(image, caption, caption_correct(scene, caption)).bad_spans
        rows = [(word, parsed[(word.start, word.end)]) for word in scored if (word.start, word.end) in parsed]
        all_p.append([1.0 - word.p_bad for word, _ in rows])
        all_good.append([label not in BAD_LABELS for _, label in rows])
        content_p.append([1.0 - word.p_bad for word, label in rows if label != "neutral"])
        content_good.append([label not in BAD_LABELS for _, label in rows if label != "neutral"])
        word_spans = [(word.start, word.end) for word, _ in rows]
        correction_good.append([not bad for bad in token_labels_from_words(word_spans, list(corrected_bad))])
        function_p.extend(word.p_bad for word, label in rows if label == "neutral")
    return {
        "words": sum(map(len, all_p)),
        "mAP_neg_parser_all_words": round(average_precision_bad(all_p, all_good), 4),
        "mAP_neg_parser_content_words": round(average_precision_bad(content_p, content_good), 4),
        "mAP_neg_correction_labels": round(average_precision_bad(all_p, correction_good), 4),
        "mean_p_bad_function_words": round(fmean(function_p), 4),
        "mean_p_bad_content_words": round(fmean(1.0 - p for row in content_p for p in row), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reward", action="append", type=Path, help="a reward model directory (give two or more)")
    parser.add_argument("--captioner", type=Path, default=ROOT / "var/models/captioner-v0")
    parser.add_argument("--eval-scenes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/label_convention.json")
    args = parser.parse_args()
    rewards = args.reward or [ROOT / "var/models/tldr-v0", ROOT / "var/closed_loop/round-3/tldr"]

    from reward.evaluate import held_out_scenes
    from reward.vlm import captions_generate, default_device, vlm_load

    held_out = held_out_scenes(args.eval_scenes)
    captioner, processor = vlm_load(str(args.captioner))
    captions = captions_generate(captioner.to(default_device()), processor, held_out.images, batch_size=64)
    models = {}
    for reward_dir in rewards:
        name = str(reward_dir.relative_to(ROOT) if reward_dir.is_relative_to(ROOT) else reward_dir)
        models[name] = word_table(reward_dir, held_out, captions)
        print(name, json.dumps(models[name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"run": run_info(), "captioner": args.captioner.name, "eval_scenes": args.eval_scenes, "models": models}
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
