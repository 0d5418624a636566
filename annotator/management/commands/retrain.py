"""python manage.py retrain --project ID --kind reward|policy [--wait | --in-process]: the learning loop by hand."""

from __future__ import annotations

from time import sleep

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotator.models import Job, Project
from annotator.services.jobs import ENDED, job_claim
from annotator.services.retraining import (
    POLICY,
    POLICY_METHODS,
    REWARD,
    TrainingOptions,
    TrainingRefused,
    training_enqueue,
)

POLL_SECONDS = 2.0


class Command(BaseCommand):
    help = (
        "Retrain TLDR on a project's corrections (--kind reward) or train the captioner (--kind policy). "
        "The job goes to the GPU workers; --wait follows it with a progress bar, --in-process runs it here."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="the project's id or name")
        parser.add_argument("--kind", required=True, choices=[REWARD, POLICY])
        parser.add_argument("--method", choices=POLICY_METHODS, default="ppo_tokens", help="policy: how to train")
        parser.add_argument("--minutes", type=float, help="training budget (default: the server's setting)")
        parser.add_argument("--max-steps", type=int, help="stop after this many steps")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--from-base", action="store_true", help="reward: start from the captioner")
        follow = parser.add_mutually_exclusive_group()
        follow.add_argument("--wait", action="store_true", help="follow the job until it ends; fail if it does")
        follow.add_argument(
            "--in-process", action="store_true", help="run the job in this process instead of on a worker"
        )

    def handle(self, *args, project: str, kind: str, **options):
        found = Project.objects.filter(pk=int(project)) if project.isdigit() else Project.objects.filter(name=project)
        if not (target := found.first()):
            raise CommandError(f"no project {project!r}: give an existing project's id or name")
        training = TrainingOptions(
            minutes=options["minutes"],
            max_steps=options["max_steps"],
            seed=options["seed"],
            from_base=options["from_base"],
            method=options["method"],
        )
        try:
            start = training_enqueue(project=target, kind=kind, options=training, send=not options["in_process"])
        except TrainingRefused as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(start.message)
        if options["in_process"]:
            if not start.created:
                raise CommandError("a job of this kind is already in flight for the project; not running a second")
            job = self._run_here(start.job, kind)
        elif options["wait"]:
            job = self._follow(start.job)
        else:
            return
        self.stdout.write(f"job #{job.pk} {job.status}: {job.metrics.get('gate', {}).get('reason', job.message)}")
        if job.status != Job.Status.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}; see /jobs/ or /api/jobs/{job.pk}/")

    def _run_here(self, job: Job, kind: str) -> Job:
        from annotator.services.policy_training import policy_train_job_run
        from annotator.services.retraining import reward_retrain_job_run

        claimed = job_claim(job_id=job.pk)
        run = reward_retrain_job_run if kind == REWARD else policy_train_job_run
        try:
            run(job=claimed, time_limit_s=None)
        except Exception as error:  # recorded on the job; the summary below says it failed
            self.stderr.write(f"{type(error).__name__}: {error}")
        job.refresh_from_db()
        return job

    def _follow(self, job: Job) -> Job:
        with tqdm(total=1000, desc=f"job #{job.pk}", unit="‰") as bar:
            while True:
                job.refresh_from_db()
                bar.n = int(1000 * job.progress)
                bar.set_postfix_str(job.step or job.status, refresh=False)
                bar.refresh()
                if job.status in ENDED:
                    return job
                sleep(POLL_SECONDS)
