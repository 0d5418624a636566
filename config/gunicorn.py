"""gunicorn settings of the web server: `gunicorn config.wsgi -c config/gunicorn.py`.

Sizing. A request of the task API is Python (Django, DRF) between PostgreSQL round trips, and every
lease and correction ends in a COMMIT that waits for the WAL to reach the disk. Processes use the
cores (one GIL each: two per core keep both busy); threads keep a process busy while its other
requests wait on the database. On a 2-core machine with 32 annotators in a closed loop (short runs
of bench/load_test.py): 4 sync workers did 38 corrections/s, 8 sync workers 37/s (CPU a third
idle: every request waits out its commit alone), 2 workers x 8 threads 59/s, 4 workers x 4 threads
70/s. With the hand-written hot path since: 4 x 4 142/s, 2 x 8 138/s, 3 x 6 119/s, 6 x 4 110/s
(15 s runs, about as far apart as two runs of one configuration).

Overloaded, 4 x 4 serves its annotators unevenly: a keep-alive connection stays with the worker that
accepted it, and a saturated worker does not share itself out evenly among its connections. On a
slower machine, at 32 annotators in a closed loop (67.9 corrections/s), the median annotator
submitted 18 corrections in 20 s and the luckiest 158. `--keep-alive 0` (every request accepted
afresh) or 12 threads per worker share evenly (32-42 and 26-45 per annotator) but do 56 and 55/s:
part of 4 x 4's throughput comes from serving a few connections with little contention. With
annotators who look at each task first (`--think-ms 400`, 64/s on that machine) 4 x 4 spread them
32-52, about as the random think times do, so the defaults favour throughput.

On a faster 2-core machine (bench/results/load_test*.json) 4 x 4 did 181 corrections/s at 8
annotators and 174/s at 32 in a closed loop (next p95 253 ms; by Little's law 32 annotators with no
think time wait 32 / 174 s a cycle on average, however the server is configured). Paced, with 150 ms
of think time on average: 150-161/s with next p95 57-68 ms; 2 x 8, 3 x 4 and 4 x 4 without the
access log landed within that spread.

Each thread holds one persistent database connection (CONN_MAX_AGE), so PostgreSQL sees workers x
threads connections: 16 by default on 2 cores, well inside its default 100.

`WEB_CONCURRENCY` (workers) and `GUNICORN_THREADS` override the defaults; `GUNICORN_BIND` the address.
"""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = "gthread"
# Load the app once in the master: workers fork with the code already imported (copy-on-write), so
# they start at once and share those pages.
preload_app = True
# 32 annotators asking at once queue in the socket rather than being refused.
backlog = 2048
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")


def when_ready(server: object) -> None:
    """Import the URLconf, and with it every view and service, in the master before workers fork.

    Django imports it on the first request; left to the workers, each would pay that import (seconds)
    on the first request it serves and keep a private copy of the modules.
    """
    from importlib import import_module

    from django.conf import settings

    import_module(settings.ROOT_URLCONF)
