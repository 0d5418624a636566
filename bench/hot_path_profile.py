"""Server CPU and SQL queries of the annotation hot path, per next-task + correction pair.

    python bench/hot_path_profile.py [--pairs 400] [--tasks 3000] [--database-url postgres://…/tldr_profile]
    python bench/hot_path_profile.py --cprofile 200 --show-sql   # plus a profile's top lists and the SQL
    python bench/hot_path_profile.py --history 20000   # annotators with 20,000 corrections behind them
    python bench/hot_path_profile.py --auth session     # logged-in browsers instead of API tokens

What bench/load_test.py's server spends per pair of calls, without gunicorn, sockets or a second
process: the database is created afresh (dropped first if it exists; a `sqlite:///…` URL works too)
and seeded with bench/load_test.py's helpers (one project, overlap 2, ready tasks, two annotators
with API tokens), then Django's WSGI application is called in this process as gunicorn calls it,
with production settings (DEBUG off, `X-Forwarded-Proto: https`, token auth): POST next task → POST
a correction with one word changed → the other annotator's turn. Two annotators take turns so that
every caption gets its two corrections and leaves the queue, as under the load test's many
annotators; alone, one would find the head of the queue ever longer with captions it has corrected
and that wait for a second person. With `--history N`, both annotators start with N corrected
captions of the project behind them (done tasks): what a call costs a person who has been at it for
weeks, which a fresh database does not show.

After a warm-up (and ANALYZE, as bench/load_test.py does), passes over fresh pairs of the same loop:
- CPU: `time.process_time` around each call, nothing else recorded: the server's Python and its
  database client. PostgreSQL's own work runs in its backend process; its CPU per pair over the pass
  is read from /proc where the server is on this machine;
- queries: Django's `CaptureQueriesContext` around each call, counted per call (with `--show-sql`, the
  statements of the last pair). Django's per-request connection health check (`SELECT 1`, from
  `CONN_HEALTH_CHECKS`) goes around the query log and is not counted;
- with `--cprofile N`, N pairs under cProfile, timed in CPU seconds: the top functions by own time
  and by cumulative time.

CPU time is per process, so a busy machine slows the wall clock but hardly moves these numbers;
compare two versions back to back on the same machine all the same. The annotators' histories grow
over the run (every pair adds an assignment and a correction), as a real annotator's does. Writes
bench/results/hot_path_profile.json (`--out`): the CPU and query numbers, with the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load_test import (  # noqa: E402
    browser_credentials,
    database_create,
    images_seed,
    one_word_changed,
    project_seed,
    server_env,
)

WARM_UP_PAIRS = 30
ANNOTATORS = 2  # the project's overlap (bench/load_test.py's OVERLAP): see the docstring


class HotPath:
    """Annotators taking turns against a WSGI application: `next()` is the next annotator's call for
    its next task, `submit()` that annotator's correction of it; both check the answer."""

    def __init__(
        self, *, application: Callable, project_id: int, credentials: list[dict[str, str]], seed: int = 0
    ) -> None:
        self.application = application
        self.next_path = f"/api/projects/{project_id}/tasks/next/"
        self.credentials = credentials  # per annotator: the request headers that say who it is
        self.turn = -1
        self.rng = random.Random(seed)
        self.task: dict | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """One request as gunicorn hands it to Django: a WSGI environ, the body iterated, then closed."""
        environ = {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_ACCEPT": "application/json",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            **self.credentials[self.turn],
        }
        statuses: list[str] = []

        def start_response(status: str, headers: list, exc_info: object = None) -> None:
            statuses.append(status)

        response = self.application(environ, start_response)
        try:
            payload = b"".join(response)
        finally:
            response.close()
        return int(statuses[0].split()[0]), payload

    def next(self) -> None:
        self.turn = (self.turn + 1) % len(self.credentials)
        status, payload = self.post(self.next_path, b"")
        if status != 200:
            raise RuntimeError(f"next task answered {status}: {payload[:300]!r}; seed more tasks (--tasks)")
        self.task = json.loads(payload)["task"]

    def submit(self) -> None:
        task = self.task
        now_ms = int(time.time() * 1000)
        correction = {
            "corrected_text": one_word_changed(task["caption"]["text"], self.rng),
            "client_submission_id": task["client_submission_id"],
            "events": [{"type": "shown", "t_ms": now_ms - 2000}, {"type": "submit", "t_ms": now_ms}],
        }
        status, payload = self.post(f"/api/tasks/{task['id']}/submit/", json.dumps(correction).encode())
        if status != 201:
            raise RuntimeError(f"submit answered {status}: {payload[:300]!r}")

    def pair(self) -> None:
        self.next()
        self.submit()


def postgres_cpu_s() -> float | None:
    """CPU seconds of this connection's PostgreSQL backend so far, from /proc; None where unreadable
    (not PostgreSQL, or a server on another machine)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_pass(hot_path: HotPath, pairs: int) -> dict:
    """CPU ms of each call, `time.process_time` around it and nothing else; and of PostgreSQL's
    backend per pair, where /proc shows it (clock ticks: a total over the pass, not per call)."""
    next_ms, submit_ms = [], []
    postgres_before = postgres_cpu_s()
    for _ in range(pairs):
        started = time.process_time()
        hot_path.next()
        between = time.process_time()
        hot_path.submit()
        ended = time.process_time()
        next_ms.append((between - started) * 1000)
        submit_ms.append((ended - between) * 1000)
    postgres_after = postgres_cpu_s()
    pair_ms = [a + b for a, b in zip(next_ms, submit_ms, strict=True)]
    cpu_ms = {
        call: {"mean": round(statistics.fmean(values), 3), "median": round(statistics.median(values), 3)}
        for call, values in (("next", next_ms), ("submit", submit_ms), ("pair", pair_ms))
    }
    if postgres_before is not None and postgres_after is not None:
        cpu_ms["postgres_backend_per_pair"] = round((postgres_after - postgres_before) * 1000 / pairs, 3)
    return cpu_ms


def query_pass(hot_path: HotPath, pairs: int) -> tuple[dict, dict[str, list[str]]]:
    """Queries per call (mean over `pairs`), and the statements of the last pair."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts: dict[str, list[int]] = {"next": [], "submit": []}
    last: dict[str, list[str]] = {}
    for _ in range(pairs):
        for call, step in (("next", hot_path.next), ("submit", hot_path.submit)):
            with CaptureQueriesContext(connection) as captured:
                step()
            counts[call].append(len(captured.captured_queries))
            last[call] = [query["sql"] for query in captured.captured_queries]
    per_call = {call: round(statistics.fmean(values), 2) for call, values in counts.items()}
    per_call["pair"] = round(per_call["next"] + per_call["submit"], 2)
    return per_call, last


def cprofile_pass(hot_path: HotPath, pairs: int, top: int) -> str:
    """cProfile's top lists in CPU seconds: its default wall clock would count waits on the database."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(pairs):
        hot_path.pair()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def history_seed(*, project_id: int, annotator_ids: list[int], n_tasks: int) -> None:
    """`n_tasks` captions of the project that every annotator has already corrected (done tasks, each
    with a submitted assignment per annotator): the history of annotators who have been at it a while."""
    from django.db import transaction
    from django.utils import timezone

    from annotator.models import Assignment, Caption, Task

    now = timezone.now()
    with transaction.atomic():
        images = images_seed(project_id=project_id, prefix="history", n=n_tasks)
        captions = Caption.objects.bulk_create(
            [Caption(image=image, text="a red circle .", source=Caption.Source.POLICY) for image in images],
            batch_size=2000,
        )
        tasks = Task.objects.bulk_create(
            [Task(project_id=project_id, caption=caption, status=Task.Status.DONE) for caption in captions],
            batch_size=2000,
        )
        Assignment.objects.bulk_create(
            [
                Assignment(
                    task=task,
                    annotator_id=annotator_id,
                    arm="tokens",
                    status=Assignment.Status.SUBMITTED,
                    leased_at=now,
                    expires_at=now,
                    served_at=now,
                )
                for task in tasks
                for annotator_id in annotator_ids
            ],
            batch_size=2000,
        )


def database_fresh(database_url: str) -> None:
    """Drop, create and migrate the database; a SQLite file is deleted and migrated."""
    if database_url.startswith("sqlite"):
        import subprocess

        Path(database_url.split("sqlite:///", 1)[1]).unlink(missing_ok=True)
        env = {**os.environ, "DATABASE_URL": database_url}
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    else:
        database_create(database_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=400, help="pairs timed for CPU (and again counted for queries)")
    parser.add_argument("--tasks", type=int, default=3000, help="ready tasks seeded; each serves two pairs")
    parser.add_argument(
        "--history", type=int, default=0, metavar="N", help="captions each annotator corrected before the run"
    )
    parser.add_argument(
        "--auth", choices=("token", "session"), default="token", help="API clients, or logged-in browsers"
    )
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="also profile N pairs under cProfile")
    parser.add_argument("--top", type=int, default=35, help="functions in each cProfile list")
    parser.add_argument("--show-sql", action="store_true", help="print the statements of one pair")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tldr_profile")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/hot_path_profile.json")
    args = parser.parse_args()
    if args.tasks * ANNOTATORS < WARM_UP_PAIRS + 2 * args.pairs + args.cprofile:
        parser.error("--tasks must cover the warm-up, both passes and the cProfile pairs (two pairs per task)")

    os.environ.update(server_env(args.database_url))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    database_fresh(args.database_url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application
    from django.db import connection, connections

    project_id, annotators = project_seed(name="hot-path", n_tasks=args.tasks, n_annotators=ANNOTATORS, seed=0)
    if args.history:
        history_seed(project_id=project_id, annotator_ids=[user_id for user_id, _ in annotators], n_tasks=args.history)
    connections.close_all()

    # The whole stack is imported before the first request, as config/gunicorn.py has it.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)  # no collectstatic here
    application = get_wsgi_application()
    import_module(settings.ROOT_URLCONF)
    if args.auth == "session":
        # As a browser on this host sends them, as WSGI puts them in the environ.
        credentials = [
            {
                f"HTTP_{name.upper().replace('-', '_')}": value
                for name, value in browser_credentials(user_id, origin="https://127.0.0.1").items()
            }
            for user_id, _ in annotators
        ]
    else:
        credentials = [{"HTTP_AUTHORIZATION": f"Token {token}"} for _, token in annotators]
    hot_path = HotPath(application=application, project_id=project_id, credentials=credentials)
    for _ in range(WARM_UP_PAIRS):
        hot_path.pair()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Planner statistics as a database in use has them (bench/load_test.py does the same).
            cursor.execute("ANALYZE")

    cpu_ms = cpu_pass(hot_path, args.pairs)
    queries, statements = query_pass(hot_path, args.pairs)
    result = {
        "database": connection.vendor,
        "pairs": args.pairs,
        "history": args.history,
        "auth": args.auth,
        "cpu_ms_per_call": cpu_ms,
        "queries_per_call": queries,
    }
    print(json.dumps(result, indent=2))
    from bench.machine import run_info

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"run": run_info(), **result}, indent=2) + "\n")
    if args.show_sql:
        for call, sqls in statements.items():
            print(f"\n-- {call}: {len(sqls)} statements")
            for sql in sqls:
                print(f"{sql};")
    if args.cprofile:
        print(cprofile_pass(hot_path, args.cprofile, args.top))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
