"""Import to ready: seconds from importing 1,000 captions to all their tasks scored and ready.

    python bench/import_to_ready.py [--captions 1000] [--database-url postgres://…/tldr_bench_import]

Creates a fresh PostgreSQL database, uploads one rendered shapeworld scene per caption (not timed),
and activates a reward model: the trained default under TLDR_MODELS_DIR (`captioner-v0` + `tldr-v0`,
what `python -m reward bootstrap` writes) when it is there, otherwise a micro one built the way the
tests build theirs (a captioner pretrained for a few seconds and an untrained TLDR head on it): same
architecture and loading path, so the same cost per caption, but meaningless scores. The JSON says
which. The model is loaded before the clock starts, as in a worker that has served a task before
(the load time is reported on its own).

Timed: `captions_import_jsonl` (the caption-import service: parse, validate, bulk-create captions and
tasks, create the detection job), whose commit sends `captions_detect_task`, which Celery runs
eagerly here (`task_always_eager`: the very task function a worker runs, in this process, without
the broker hop), until every imported caption's task is ready. Writes
bench/results/import_to_ready.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_test import database_create  # noqa: E402


def models_prepare(*, default_dir: Path, scratch_dir: Path) -> tuple[Path, dict]:
    """The folder of the models to use, and what they are: the trained default in `default_dir` if it
    is there, else a micro pair built into `scratch_dir`."""
    from reward.bootstrap import CAPTIONER, REWARD_MODEL

    if (default_dir / CAPTIONER).is_dir() and (default_dir / REWARD_MODEL).is_dir():
        return default_dir, {"name": REWARD_MODEL, "kind": "trained default (python -m reward bootstrap)"}
    from reward.model import RewardConfig, TokenRewardModel
    from reward.vlm import vlm_load
    from shapeworld.pretrain import PretrainConfig, captioner_pretrain

    started = time.perf_counter()
    captioner_pretrain(PretrainConfig(minutes=0.05), scratch_dir / CAPTIONER)
    captioner = str(scratch_dir / CAPTIONER)
    vlm, _ = vlm_load(captioner)
    TokenRewardModel.build(vlm, RewardConfig(), base_model=captioner).save(scratch_dir / REWARD_MODEL)
    return scratch_dir, {
        "name": REWARD_MODEL,
        "kind": "micro: captioner pretrained for 3 s, untrained TLDR head (the tests' recipe); "
        "no trained default under TLDR_MODELS_DIR",
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=1000)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tldr_bench_import")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/import_to_ready.json")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="import-to-ready-"))
    database_create(args.database_url)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["MEDIA_ROOT"] = str(scratch / "media")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    import torch

    django.setup()
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from annotator.inference import reward_model_get
    from annotator.models import Job, ModelVersion, Project, Task
    from annotator.services.imports import captions_import_jsonl, images_import
    from annotator.services.model_versions import model_version_activate, model_version_register
    from bench.machine import run_info
    from config.celery import app
    from shapeworld.grammar import caption_write
    from shapeworld.render import scene_render
    from shapeworld.scene import scene_sample

    print("reward model …", flush=True)
    models_dir, model = models_prepare(default_dir=Path(settings.TLDR_MODELS_DIR), scratch_dir=scratch / "models")
    settings.TLDR_MODELS_DIR = str(models_dir)
    version = model_version_register(kind=ModelVersion.Kind.REWARD, name=model["name"], path=model["name"])
    model_version_activate(model_version=version)
    started = time.perf_counter()
    reward_model_get(version.path)
    model["load_seconds"] = round(time.perf_counter() - started, 1)

    print(f"uploading {args.captions} scene images (not timed) …", flush=True)
    project = Project.objects.create(name="import-to-ready")
    rng = random.Random(0)
    uploads, lines = [], []
    for index in range(args.captions):
        scene = scene_sample(rng)
        buffer = io.BytesIO()
        scene_render(scene).save(buffer, format="PNG")
        uploads.append(SimpleUploadedFile(f"scene{index}.png", buffer.getvalue()))
        lines.append(json.dumps({"image": f"scene{index}.png", "caption": caption_write(scene, rng)}))
    images_import(project=project, files=uploads)
    captions_file = SimpleUploadedFile("captions.jsonl", ("\n".join(lines) + "\n").encode())

    app.conf.task_always_eager = True
    print(f"importing {args.captions} captions and scoring them …", flush=True)
    started = time.perf_counter()
    report = captions_import_jsonl(project=project, file=captions_file)
    ready = Task.objects.filter(caption_id__in=report.created, status=Task.Status.READY).count()
    seconds = time.perf_counter() - started
    job = Job.objects.get(pk=report.detection_job_id)
    if report.problems or len(report.created) != args.captions or ready != args.captions:
        raise SystemExit(f"{len(report.created)} imported, {ready} ready, problems: {report.problems[:3]}")

    result = {
        "run": run_info(),
        "captions": args.captions,
        "seconds_import_to_all_ready": round(seconds, 2),
        "seconds_per_1000_captions": round(seconds * 1000 / args.captions, 2),
        "detection_job_seconds": round((job.finished - job.started).total_seconds(), 2),
        "detection_job_status": job.status,
        "reward_model": model,
        "celery_path": "eager: task_always_eager runs captions_detect_task in this process at the import's commit "
        "(no broker hop, no worker start; the model already loaded, as in a warm worker)",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "database": "PostgreSQL (fresh database, migrated)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: value for key, value in result.items() if key != "run"}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
