"""Load test of the task API: simulated annotators against gunicorn + PostgreSQL.

    python bench/load_test.py [--levels 1,8,32] [--duration 20] [--database-url postgres://…/tldr_bench]
    python bench/load_test.py --levels 32 --think-ms 200 --out bench/results/load_test_paced.json
    python bench/load_test.py --auth session --out bench/results/load_test_browsers.json

Creates a fresh PostgreSQL database (dropped first if it exists), migrates it, and seeds one project
per concurrency level (overlap 2) with ready tasks (caption, detection and image rows bulk-created;
no model runs) and as many annotators with API tokens (`--auth session`: logged in, as the annotation
page's browsers are) as the level has. It then starts gunicorn with
production settings (`DJANGO_ENV=production`, DEBUG off, a random secret key, `config/gunicorn.py`)
and, per level, runs that many simulated annotators for `--duration` seconds, each in a closed loop
with no think time (`--think-ms T`: each looks at a task for an exponential time of mean T before it
submits, which sets the load they offer): POST next task → POST a correction with one word changed →
repeat, over a
keep-alive connection (the stdlib's `http.client`: the cheapest client there is, and the client's
CPU is part of the measurement). Requests carry `X-Forwarded-Proto: https`, as from the TLS proxy
production sits behind.

Recorded per level: p50/p95/p99 of next and submit, submitted corrections/s (and the fewest, median
and most one annotator submitted), errors (any status other than 200/201, and 204 "nothing to do"),
duplicate serves checked in the database and in the clients' logs, the server's peak memory (sum of
RSS, and of PSS, over the gunicorn master and workers, sampled from /proc), and the CPU seconds
spent by server, PostgreSQL and clients: on a small machine all three share the same cores. Writes
bench/results/load_test.json.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import resource
import runpy
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OVERLAP = 2
WARM_UP_ANNOTATORS, WARM_UP_SECONDS = 8, 3.0
TARGETS = {"next_p95_ms": 50.0, "corrections_per_s": 150.0, "errors": 0, "duplicate_serves": 0, "server_rss_mib": 500}
# Words a simulated annotator puts in place of one word of the caption.
REPLACEMENTS = ("red", "blue", "green", "yellow", "circle", "square", "triangle", "two", "three", "above", "below")


# ----------------------------------------------------------------------------- simulated annotators


@dataclass
class AnnotatorLog:
    """What one simulated annotator saw; latencies in ms, times in seconds from the level's start."""

    user_id: int
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    served: list[int] = field(default_factory=list)
    submitted: list[int] = field(default_factory=list)
    submitted_at: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def one_word_changed(text: str, rng: random.Random) -> str:
    """The caption with one word replaced, as an annotator fixing one hallucination would."""
    words = text.split(" ")
    index = rng.randrange(len(words))
    words[index] = rng.choice([word for word in REPLACEMENTS if word != words[index]])
    return " ".join(words)


def annotator_run(
    *,
    port: int,
    project_id: int,
    user_id: int,
    credentials: dict[str, str],
    start_at: float,
    deadline: float,
    think_ms: float,
) -> dict:
    """Next task → correction → next, until `deadline` (epoch seconds); returns the annotator's log.

    With `think_ms`, the annotator looks at each task for a random time (exponential, that mean)
    before it submits, as a person fixing the caption does.
    """
    log = AnnotatorLog(user_id=user_id)
    rng = random.Random(user_id)
    headers = {
        **credentials,  # a token's Authorization header, or a logged-in browser's cookies and CSRF header
        "X-Forwarded-Proto": "https",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    next_path = f"/api/projects/{project_id}/tasks/next/"

    def call(path: str, body: bytes | None) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            log.failures.append(f"{path}: {error!r}")
            return 0, b"", (time.perf_counter() - started) * 1000
        return response.status, payload, (time.perf_counter() - started) * 1000

    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < deadline:
        status, payload, elapsed = call(next_path, None)
        log.next_ms.append(elapsed)
        log.statuses[f"next {status}"] += 1
        if status != 200:
            if len(log.failures) < 5 and status:
                log.failures.append(f"next {status}: {payload[:200]!r}")
            time.sleep(0.05)
            continue
        task = json.loads(payload)["task"]
        log.served.append(task["id"])
        if think_ms:
            time.sleep(min(rng.expovariate(1000.0 / think_ms), max(0.0, deadline - time.time())))
        now_ms = int(time.time() * 1000)
        correction = {
            "corrected_text": one_word_changed(task["caption"]["text"], rng),
            "client_submission_id": task["client_submission_id"],
            "events": [{"type": "shown", "t_ms": now_ms - 2000}, {"type": "submit", "t_ms": now_ms}],
        }
        status, payload, elapsed = call(f"/api/tasks/{task['id']}/submit/", json.dumps(correction).encode())
        log.submit_ms.append(elapsed)
        log.statuses[f"submit {status}"] += 1
        if status == 201:
            log.submitted.append(task["id"])
            log.submitted_at.append(time.time() - start_at)
        elif len(log.failures) < 5 and status:
            log.failures.append(f"submit {status}: {payload[:200]!r}")
    connection.close()
    # asdict would rebuild the Counter from (key, count) pairs, counting the pairs.
    return {**asdict(log), "statuses": dict(log.statuses)}


def client_process_run(job: dict) -> dict:
    """One client process: a thread per annotator; returns their logs and this process's CPU seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = usage.ru_utime + usage.ru_stime
    logs: list[dict] = []

    def run(user_id: int, credentials: dict[str, str]) -> None:
        logs.append(annotator_run(user_id=user_id, credentials=credentials, **job["shared"]))

    threads = [threading.Thread(target=run, args=pair) for pair in job["annotators"]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"logs": logs, "cpu_s": usage.ru_utime + usage.ru_stime - cpu_before}


# ----------------------------------------------------------------------------- the server and /proc


def _proc_children(parent: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == parent:
                        children.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return children


def _proc_kib(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as lines:
            return next((int(line.split()[1]) for line in lines if line.startswith(key)), 0)
    except OSError:
        return 0


def _proc_cpu_s(pids: list[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            cpu[pid] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return cpu


def _server_pids(master: int) -> list[int]:
    return [master, *_proc_children(master)]


def _postgres_pids() -> list[int]:
    """The PostgreSQL backends serving the bench database (other databases on the server are not ours)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


class MemorySampler(threading.Thread):
    """Peak sum of RSS and of PSS over the gunicorn master and its workers, sampled every 0.25 s.

    RSS counts pages the workers share with the master (copy-on-write after `preload_app`) once per
    process, so it overstates what the server takes; PSS splits shared pages among their sharers.
    """

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.peak_rss_kib = 0
        self.peak_pss_kib = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.25):
            pids = [self.master, *_proc_children(self.master)]
            self.peak_rss_kib = max(self.peak_rss_kib, sum(_proc_kib(pid, "status", "VmRSS:") for pid in pids))
            self.peak_pss_kib = max(self.peak_pss_kib, sum(_proc_kib(pid, "smaps_rollup", "Pss:") for pid in pids))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(database_url: str, secret_key: str | None = None) -> dict[str, str]:
    """Production settings: DEBUG off, the given secret or a fresh random one, the bench database."""
    return {
        **os.environ,
        "DJANGO_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": secret_key or secrets.token_urlsafe(50),
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }


def server_start(*, database_url: str, port: int, log_path: Path, secret_key: str) -> subprocess.Popen:
    """gunicorn with `config/gunicorn.py`, ready to answer; its output goes to `log_path`."""
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "config/gunicorn.py"]
    env = {**server_env(database_url, secret_key), "GUNICORN_BIND": f"127.0.0.1:{port}"}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log_path}")
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("GET", "/api/auth/token/", headers={"X-Forwarded-Proto": "https"})
            probe.getresponse().read()
            probe.close()
            if len(_proc_children(server.pid)) >= 1:
                return server
        except OSError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"gunicorn did not answer on port {port} within 180 s; see {log_path}")


# ----------------------------------------------------------------------------- database


def database_create(database_url: str) -> None:
    """Drop and create the bench database, then migrate it (in a subprocess, as a deploy would)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)


def images_seed(*, project_id: int, prefix: str, n: int) -> list:
    """`n` image rows of the project, files named under `prefix` (no file is written: nothing reads them)."""
    from annotator.models import Image

    return Image.objects.bulk_create(
        [
            Image(
                project_id=project_id,
                file=f"images/bench/{prefix}/{i}.png",
                sha256=hashlib.sha256(f"{prefix}/{i}".encode()).hexdigest(),
                width=128,
                height=128,
                original_name=f"{prefix}/{i}.png",
            )
            for i in range(n)
        ],
        batch_size=2000,
    )


def browser_credentials(user_id: int, *, origin: str) -> dict[str, str]:
    """The headers of a browser logged in as the user: its session cookie, and the CSRF cookie, header
    and origin that Django asks of a session's POST over HTTPS. The session is signed with this
    process's SECRET_KEY, which the server must share."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils.crypto import get_random_string

    user = get_user_model().objects.get(pk=user_id)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    csrf = get_random_string(32)
    return {
        "Cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}; {settings.CSRF_COOKIE_NAME}={csrf}",
        "X-CSRFToken": csrf,
        "Origin": origin,
    }


def project_seed(*, name: str, n_tasks: int, n_annotators: int, seed: int) -> tuple[int, list[tuple[int, str]]]:
    """A project with `n_tasks` ready tasks and `n_annotators` annotators; returns its id and (user id, token)s."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from annotator.models import Caption, Detection, ModelVersion, Project, Task
    from annotator.selectors.projects import ANNOTATOR_GROUP
    from reward.words import response_words
    from shapeworld.grammar import caption_write
    from shapeworld.scene import scene_sample

    rng = random.Random(seed)
    User = get_user_model()
    with transaction.atomic():
        project = Project.objects.create(name=name, overlap=OVERLAP)
        version, _ = ModelVersion.objects.get_or_create(
            kind=ModelVersion.Kind.REWARD, name="bench-scores", defaults={"path": "bench-scores"}
        )
        users = User.objects.bulk_create(
            [User(username=f"{name}-{i}", password=make_password(None)) for i in range(n_annotators)]
        )
        group = Group.objects.get(name=ANNOTATOR_GROUP)
        User.groups.through.objects.bulk_create([User.groups.through(user=user, group=group) for user in users])
        project.annotators.add(*users)
        tokens = Token.objects.bulk_create([Token(user=user, key=Token.generate_key()) for user in users])
        images = images_seed(project_id=project.pk, prefix=name, n=n_tasks)
        captions = Caption.objects.bulk_create(
            [
                Caption(image=image, text=caption_write(scene_sample(rng), rng), source=Caption.Source.POLICY)
                for image in images
            ],
            batch_size=2000,
        )
        detections = []
        for caption in captions:
            words = [
                {"text": text, "start": start, "end": end, "p_bad": round(rng.random() ** 3, 4)}
                for text, start, end in response_words(caption.text)
            ]
            detections.append(
                Detection(
                    caption=caption,
                    reward_model_version=version,
                    words=words,
                    caption_p_bad=max(word["p_bad"] for word in words),
                )
            )
        Detection.objects.bulk_create(detections, batch_size=2000)
        Task.objects.bulk_create(
            [Task(project=project, caption=caption, status=Task.Status.READY) for caption in captions], batch_size=2000
        )
    return project.pk, [(token.user_id, token.key) for token in tokens]


def duplicates_in_database(project_id: int) -> dict[str, int]:
    """Tasks held by more annotators than the overlap allows, and (task, annotator) pairs seen twice."""
    from django.db.models import Count, Q

    from annotator.models import Assignment, Correction, Task

    holders = Task.objects.filter(project_id=project_id).annotate(
        n=Count(
            "assignments",
            filter=Q(assignments__status__in=[Assignment.Status.LEASED, Assignment.Status.SUBMITTED]),
        )
    )
    corrected = Task.objects.filter(project_id=project_id).annotate(n=Count("corrections"))
    pairs = (
        Correction.objects.filter(task__project_id=project_id)
        .values("task", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    return {
        "tasks_held_beyond_overlap": holders.filter(n__gt=OVERLAP).count(),
        "tasks_corrected_beyond_overlap": corrected.filter(n__gt=OVERLAP).count(),
        "captions_corrected_twice_by_one_annotator": pairs.count(),
        "corrections": Correction.objects.filter(task__project_id=project_id).count(),
    }


def duplicates_in_client_logs(logs: list[dict]) -> dict[str, int]:
    """The same checks from what the clients were served: a task given again after its correction
    went in, and a task given to more annotators than the overlap."""
    served_again = 0
    annotators_of: dict[int, set[int]] = {}
    for log in logs:
        done: set[int] = set()
        for task_id in log["served"]:
            served_again += task_id in done
            annotators_of.setdefault(task_id, set()).add(log["user_id"])
            if task_id in log["submitted"]:
                done.add(task_id)
    return {
        "tasks_served_again_after_correction": served_again,
        "tasks_served_beyond_overlap": sum(len(people) > OVERLAP for people in annotators_of.values()),
    }


# ----------------------------------------------------------------------------- one level


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"n": len(ordered), "p50_ms": rank(0.50), "p95_ms": rank(0.95), "p99_ms": rank(0.99), "max_ms": rank(1)}


def spread(counts: list[int]) -> dict[str, float | int | None]:
    if not counts:
        return {"min": None, "median": None, "max": None}
    ordered = sorted(counts)
    return {"min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def level_run(
    *,
    level: int,
    project_id: int,
    annotators: list[tuple[int, dict[str, str]]],
    port: int,
    server_pid: int,
    duration: float,
    processes: int,
    think_ms: float = 0.0,
) -> tuple[dict, list[dict]]:
    """Run `level` simulated annotators for `duration` s; their aggregated numbers and raw logs."""
    start_at = time.time() + 1.0 + 0.3 * processes  # time for the client processes to start
    shared = {
        "port": port,
        "project_id": project_id,
        "start_at": start_at,
        "deadline": start_at + duration,
        "think_ms": think_ms,
    }
    n_processes = min(processes, level)
    jobs = [{"shared": shared, "annotators": annotators[i::n_processes]} for i in range(n_processes)]
    with get_context("spawn").Pool(n_processes) as pool:
        outcome = pool.map_async(client_process_run, jobs)
        time.sleep(max(0.0, start_at - time.time()))
        cpu_start = _proc_cpu_s(_postgres_pids() + _server_pids(server_pid))
        results = outcome.get()
    server_pids, postgres_pids = _server_pids(server_pid), _postgres_pids()
    cpu_end = _proc_cpu_s(postgres_pids + server_pids)
    logs = [log for result in results for log in result["logs"]]
    statuses = sum((Counter(log["statuses"]) for log in logs), Counter())
    errors = {key: count for key, count in statuses.items() if key not in ("next 200", "submit 201")}
    submitted_in_time = sum(t <= duration for log in logs for t in log["submitted_at"])
    cpu = {pid: cpu_end[pid] - cpu_start.get(pid, 0.0) for pid in cpu_end}
    return {
        "annotators": level,
        "client_processes": n_processes,
        "duration_s": duration,
        "next": percentiles([ms for log in logs for ms in log["next_ms"]]),
        "submit": percentiles([ms for log in logs for ms in log["submit_ms"]]),
        "corrections_per_s": round(submitted_in_time / duration, 1),
        "corrections_submitted": sum(len(log["submitted"]) for log in logs),
        # How evenly the server shares itself out: a keep-alive connection stays with the worker process
        # that accepted it, so annotators on a crowded worker wait longer (the tail of next and submit).
        "corrections_per_annotator": spread([len(log["submitted"]) for log in logs]),
        "errors": sum(errors.values()),
        "errors_by_status": errors,
        "error_samples": [failure for log in logs for failure in log["failures"]][:10],
        "cpu_s": {
            "server": round(sum(v for pid, v in cpu.items() if pid in server_pids), 1),
            "postgres": round(sum(v for pid, v in cpu.items() if pid in postgres_pids), 1),
            "client": round(sum(result["cpu_s"] for result in results), 1),
            "available": round(duration * (os.cpu_count() or 1), 1),
        },
    }, logs


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,8,32", help="concurrent annotators, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per level")
    parser.add_argument("--tasks", type=int, default=8000, help="ready tasks seeded per level (overlap 2)")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the annotator threads run in")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/tldr_bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/load_test.json")
    parser.add_argument(
        "--auth", choices=("token", "session"), default="token", help="API clients, or logged-in browsers"
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="mean time an annotator looks at a task before submitting (exponential); 0: a closed loop",
    )
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]

    print(f"creating {args.database_url} and seeding {len(levels)} projects of {args.tasks} tasks …", flush=True)
    database_create(args.database_url)
    secret_key = secrets.token_urlsafe(50)  # the server's, and this process's: it signs the browsers' sessions
    os.environ.update({"DATABASE_URL": args.database_url, "SECRET_KEY": secret_key})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connections

    seeded = {
        level: project_seed(name=f"load-{level}", n_tasks=args.tasks, n_annotators=level, seed=level)
        for level in levels
    }
    warm_up = project_seed(
        name="load-warm-up", n_tasks=WARM_UP_ANNOTATORS * 200, n_annotators=WARM_UP_ANNOTATORS, seed=0
    )
    port = _free_port()

    def credentials(annotators: list[tuple[int, str]]) -> list[tuple[int, dict[str, str]]]:
        if args.auth == "session":
            origin = f"https://127.0.0.1:{port}"
            return [(user_id, browser_credentials(user_id, origin=origin)) for user_id, _ in annotators]
        return [(user_id, {"Authorization": f"Token {token}"}) for user_id, token in annotators]

    seeded = {level: (project_id, credentials(annotators)) for level, (project_id, annotators) in seeded.items()}
    warm_up = (warm_up[0], credentials(warm_up[1]))
    connections.close_all()

    log_path = ROOT / "var" / "load_test_gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    server = server_start(database_url=args.database_url, port=port, log_path=log_path, secret_key=secret_key)
    sampler = MemorySampler(server.pid)
    sampler.start()
    results = []
    try:
        # Every worker opens its database connection and fills its caches before anything is timed.
        level_run(
            level=WARM_UP_ANNOTATORS,
            project_id=warm_up[0],
            annotators=warm_up[1],
            port=port,
            server_pid=server.pid,
            duration=WARM_UP_SECONDS,
            processes=args.client_processes,
        )
        with connections["default"].cursor() as cursor:
            # Planner statistics as a database in use has them (autovacuum keeps them current there):
            # freshly bulk-loaded tables, with no assignment yet, get plans production never runs,
            # such as an anti-join against the annotator's finished tasks that grows quadratically.
            cursor.execute("ANALYZE")
        connections.close_all()
        for level in levels:
            project_id, annotators = seeded[level]
            print(f"{level} annotators for {args.duration:g} s …", flush=True)
            result, logs = level_run(
                level=level,
                project_id=project_id,
                annotators=annotators,
                port=port,
                server_pid=server.pid,
                duration=args.duration,
                processes=args.client_processes,
                think_ms=args.think_ms,
            )
            result["duplicates"] = {**duplicates_in_database(project_id), **duplicates_in_client_logs(logs)}
            connections.close_all()
            result["server_peak_rss_mib"] = round(sampler.peak_rss_kib / 1024, 1)
            result["server_peak_pss_mib"] = round(sampler.peak_pss_kib / 1024, 1)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        workers = len(_proc_children(server.pid))
        sampler.stopped.set()
        server.terminate()
        server.wait(30)

    from bench.machine import run_info

    gunicorn_config = runpy.run_path(str(ROOT / "config/gunicorn.py"))
    think = f"{args.think_ms:g} ms mean think time before each submit" if args.think_ms else "no think time"
    report = {
        "run": run_info(),
        "server": {
            "command": "gunicorn config.wsgi -c config/gunicorn.py",
            "workers": workers,
            "worker_class": gunicorn_config["worker_class"],
            "threads": gunicorn_config["threads"],
            "settings": "DJANGO_ENV=production, DEBUG off, random SECRET_KEY, CONN_MAX_AGE from settings",
            "database": "PostgreSQL (fresh database, migrated)",
        },
        "workload": {
            "tasks_per_level": args.tasks,
            "overlap": OVERLAP,
            "loop": "POST next task, POST a correction with one word changed, repeat; " + think,
            "client": "http.client keep-alive, one thread per annotator",
            "auth": "API tokens" if args.auth == "token" else "logged-in browsers (session, CSRF)",
        },
        "note": (
            f"A {WARM_UP_SECONDS:g} s warm-up with {WARM_UP_ANNOTATORS} annotators on a project of its own comes "
            "first, untimed. Clients, gunicorn and PostgreSQL share the same cores: cpu_s shows each one's share "
            "(PostgreSQL: the backends of the bench database). "
            "Peak memory is over the whole run, all levels. RSS counts pages shared by copy-on-write once "
            "per process; PSS splits them."
        ),
        "targets_at_32": TARGETS,
        "levels": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
