"""The Celery app: model work on queue `gpu` (one job at a time per GPU), everything else on `default`.

Results are not kept: a job's status, progress and metrics live in the Job table the pages poll.
"""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tldr_annotator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # Each queue its own exchange and routing key: sharing one would copy a GPU job into the CPU queue.
    task_queues=(
        Queue("default", Exchange("default"), routing_key="default"),
        Queue("gpu", Exchange("gpu"), routing_key="gpu"),
    ),
    task_default_queue="default",
    task_default_exchange="default",
    task_default_routing_key="default",
    task_routes={
        "annotator.tasks.captions_detect_task": {"queue": "gpu"},
        "annotator.tasks.captions_generate_task": {"queue": "gpu"},
        "annotator.tasks.detections_refresh_task": {"queue": "gpu"},
        "annotator.tasks.reward_retrain_task": {"queue": "gpu"},
        "annotator.tasks.policy_train_task": {"queue": "gpu"},
    },
    # A job whose worker dies is redelivered rather than lost; one message at a time per process so
    # a long GPU job never holds a second one hostage.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    result_backend=None,
    broker_connection_retry_on_startup=True,
)
app.autodiscover_tasks()


@app.on_after_configure.connect
def _queue_folders_create(sender: Celery, **_kwargs: object) -> None:
    """The filesystem broker needs its folders before the first message is written."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        if key in options:
            os.makedirs(options[key], exist_ok=True)
