"""Plain-text views of evaluation reports and detections for the terminal."""

from __future__ import annotations

from pathlib import Path

from reward.detect import WordScore

METRICS = ("A_T", "A_S", "A_R", "mAP_neg", "mAP_pos")


def caption_marked(caption: str, words: list[WordScore], threshold: float) -> str:
    """The caption with every suspect word in [brackets] and its p_bad: what an annotator sees highlighted."""
    pieces, cursor = [], 0
    for word in words:
        pieces.append(caption[cursor : word.start])
        text = caption[word.start : word.end]
        pieces.append(f"[{text} {word.p_bad:.2f}]" if word.p_bad > 1 - threshold else text)
        cursor = word.end
    pieces.append(caption[cursor:])
    return "".join(pieces)


def metrics_table(reports: dict[str, dict]) -> str:
    """One row per (model, category): the paper's metrics side by side."""
    lines = [f"{'model':<8} {'category':<22} {'n':>5} " + " ".join(f"{m:>8}" for m in METRICS)]
    for name, report in reports.items():
        rows = {"overall": report["overall"], **report.get("by_category", {})}
        for category, metrics in rows.items():
            values = " ".join(f"{metrics[m]:>8.3f}" for m in METRICS)
            lines.append(f"{name:<8} {category:<22} {metrics['responses']:>5} {values}")
    return "\n".join(lines)


def bootstrap_table(report: dict, models_dir: Path) -> str:
    """What the first run built and how good it is, in the paper's terms."""
    evaluation = report["evaluation"]
    captioner = evaluation["captioner"]
    own = evaluation["tldr_own_captions"]["overall"]
    lines = [
        f"models in {models_dir} ({'cached' if report.get('cached') else 'built now'})",
        "",
        f"captioner ({captioner['captions']} held-out scenes, exact labels from the scene graph)",
        f"  content-word hallucination rate {captioner['content_word_hallucination_rate']:.1%}"
        f"   H_T {captioner['H_T']:.1%}  H_S {captioner['H_S']:.1%}  H_R {captioner['H_R']:.1%}"
        f"   object recall {captioner['object_recall']:.1%}   exact match {captioner['exact_match']:.1%}",
        "  bad share by word kind: " + ", ".join(f"{k} {v:.0%}" for k, v in captioner["per_kind"].items()),
        "",
        "TLDR on held-out perturbations, per taxonomy category",
        metrics_table({"tldr": evaluation["tldr_perturbations"]}),
        "",
        "TLDR on the captioner's own captions (real hallucinations)",
        metrics_table({"tldr": {"overall": own}}),
        f"  trivial 'every caption is bad' A_R: {own['A_R_all_bad_baseline']:.3f}",
    ]
    # Reports written before evaluations broke errors down by word kind lack it.
    kinds = evaluation["tldr_own_captions"].get("by_word_kind", {})
    wrong = [
        f"{kind} {row['bad']}/{row['tokens']}" + (f" (AUC {row['auc']:.2f})" if row["auc"] is not None else "")
        for kind, row in kinds.items()
        if row["bad"]
    ]
    if wrong:
        lines.append("  wrong tokens by word kind, and how TLDR ranks them among the kind's: " + ", ".join(wrong))
    for stage in ("captioner_training", "reward_training"):
        if stage in report:
            lines.append(f"{stage.replace('_', ' ')}: {report[stage].get('wall_seconds', '?')} s")
    return "\n".join(lines)
