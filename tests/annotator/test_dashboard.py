"""The admin dashboards: planted tasks, corrections and word scores whose counts, throughput and
hallucination rates are known; the models page; who may see them; and escaping."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotator.models import Arm, Assignment, Caption, Correction, Detection, Project, Task
from annotator.selectors.dashboard import (
    CORRECTION_DAYS,
    EXACT_RATES_AVAILABLE,
    EXACT_RATES_UNAVAILABLE,
    PLOT_HEIGHT,
    caption_hallucination,
    captioner_hallucination_by_day,
    dashboard_charts,
    model_version_headline,
    project_dashboard,
)
from annotator.selectors.report import CHART_TOP
from shapeworld.scene import ObjectGroup, Scene, scene_to_dict
from tests.annotator.factories import (
    AdminFactory,
    AnnotatorFactory,
    CaptionFactory,
    DetectionFactory,
    ImageFactory,
    ModelVersionFactory,
    ProjectFactory,
    TaskFactory,
)

pytestmark = pytest.mark.django_db

CAPTION_WORDS = ("two", "red", "circles", "left", "of", "a", "square", ".")


def _assign(task: Task, annotator, status: str, *, expires_at: datetime) -> Assignment:
    return Assignment.objects.create(
        task=task,
        annotator=annotator,
        arm=Arm.TOKENS,
        status=status,
        leased_at=expires_at - timedelta(minutes=5),
        expires_at=expires_at,
        served_at=expires_at - timedelta(minutes=5),
    )


def _correct(project: Project, annotator, *, seconds: float, submitted_at: datetime) -> Correction:
    """A done task of its own, corrected by `annotator` at `submitted_at` in `seconds` active seconds."""
    task = TaskFactory(project=project, status=Task.Status.DONE)
    assignment = _assign(task, annotator, Assignment.Status.SUBMITTED, expires_at=submitted_at)
    return Correction.objects.create(
        task=task,
        assignment=assignment,
        annotator=annotator,
        original_text=task.caption.text,
        corrected_text=task.caption.text,
        word_labels=[],
        arm=Arm.TOKENS,
        served_at=submitted_at,
        submitted_at=submitted_at,
        active_seconds=seconds,
        client_submission_id=uuid.uuid4(),
    )


def _policy_caption(
    project: Project,
    text: str,
    p_bads: list[float],
    *,
    captioner: str,
    written: datetime,
    current: bool = True,
    scene: Scene | None = None,
) -> Caption:
    """A caption the captioner wrote on `written` of an image with `scene`, with a detection holding one
    p_bad per word."""
    image = ImageFactory(project=project, scene=None if scene is None else scene_to_dict(scene))
    caption = CaptionFactory(image=image, text=text, source=Caption.Source.POLICY, model_version=captioner)
    Caption.objects.filter(pk=caption.pk).update(created=written)
    _detect(caption, p_bads, current=current)
    return caption


def _detect(caption: Caption, p_bads: list[float], *, current: bool = True) -> Detection:
    words = caption.text.split()
    assert len(words) == len(p_bads)
    return DetectionFactory(
        caption=caption,
        is_current=current,
        words=[{"text": word, "start": 0, "end": 0, "p_bad": p_bad} for word, p_bad in zip(words, p_bads, strict=True)],
    )


def test_task_counts_follow_each_status_and_only_live_leases(project, annotator, now):
    other = AnnotatorFactory()
    TaskFactory.create_batch(2, project=project, status=Task.Status.PENDING)
    live, expired, skipped, _ = TaskFactory.create_batch(4, project=project, status=Task.Status.READY)
    _assign(live, annotator, Assignment.Status.LEASED, expires_at=now + timedelta(minutes=1))
    _assign(live, other, Assignment.Status.LEASED, expires_at=now + timedelta(minutes=2))  # still one task
    _assign(expired, annotator, Assignment.Status.LEASED, expires_at=now - timedelta(seconds=1))
    _assign(skipped, annotator, Assignment.Status.SKIPPED, expires_at=now)
    _correct(project, annotator, seconds=10.0, submitted_at=now)
    TaskFactory.create_batch(3, status=Task.Status.READY)  # another project's

    counts = project_dashboard(project=project, now=now).counts

    assert (counts.tasks_pending, counts.tasks_ready, counts.tasks_leased, counts.tasks_done, counts.tasks_skipped) == (
        2,
        4,
        1,
        1,
        1,
    )


def test_corrections_per_day_cover_the_last_30_days_with_zeros(project, annotator):
    now = timezone.make_aware(datetime(2026, 3, 31, 12, 0))
    for days_ago in (0, 0, 0, 2, 29, 30):
        _correct(project, annotator, seconds=10.0, submitted_at=now - timedelta(days=days_ago))
    _correct(ProjectFactory(), annotator, seconds=10.0, submitted_at=now)

    per_day = project_dashboard(project=project, now=now).corrections_per_day

    assert len(per_day) == CORRECTION_DAYS
    assert (per_day[0].day.isoformat(), per_day[-1].day.isoformat()) == ("2026-03-02", "2026-03-31")
    assert {day.day.isoformat(): day.corrections for day in per_day if day.corrections} == {
        "2026-03-02": 1,
        "2026-03-29": 1,
        "2026-03-31": 3,
    }


def test_throughput_per_annotator_has_known_medians_and_rates(project, now):
    ann, bob, idle = AnnotatorFactory(username="ann"), AnnotatorFactory(username="bob"), AnnotatorFactory(username="c")
    for minutes, seconds in ((30, 10.0), (20, 20.0), (10, 90.0)):
        _correct(project, ann, seconds=seconds, submitted_at=now - timedelta(minutes=minutes))
    for minutes, seconds in ((50, 30.0), (40, 60.0)):
        _correct(project, bob, seconds=seconds, submitted_at=now - timedelta(minutes=minutes))
    _correct(project, idle, seconds=0.0, submitted_at=now)
    _correct(ProjectFactory(), ann, seconds=1000.0, submitted_at=now)  # another project's

    throughput = project_dashboard(project=project, now=now).throughput

    rows = [
        (p.annotator, p.corrections, p.median_active_seconds, p.corrections_per_active_hour, p.last_activity)
        for p in throughput
    ]
    assert rows == [
        ("ann", 3, 20.0, pytest.approx(90.0), now - timedelta(minutes=10)),
        ("bob", 2, 45.0, pytest.approx(80.0), now - timedelta(minutes=40)),
        ("c", 1, 0.0, None, now),
    ]


@pytest.mark.parametrize(
    ("p_bads", "texts", "expected"),
    [
        ([0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1], "a red circle . a blue square .", (1 / 8, 1 / 2, True)),
        ([0.5, 0.2, 0.7], "two red circles", (2 / 3, 1.0, True)),  # p_bad at the threshold counts
        ([0.1, 0.1, 0.49], "a green square", (0.0, 0.0, False)),
        ([0.1, 0.1, 0.1, 0.1, 0.9], "a square . a circle", (1 / 5, 1 / 2, True)),  # no final period
    ],
)
def test_caption_hallucination_of_planted_word_scores(p_bads, texts, expected):
    words = [{"text": text, "p_bad": p_bad} for text, p_bad in zip(texts.split(), p_bads, strict=True)]
    assert caption_hallucination(words, threshold=0.5) == pytest.approx(expected)


def test_captioner_rates_per_day_and_version_from_current_policy_detections(project):
    first_day = timezone.make_aware(datetime(2026, 3, 1, 9, 0))
    second_day = first_day + timedelta(days=1)
    two_sentences = "a red circle . a blue square ."
    _policy_caption(project, two_sentences, [0.1, 0.9] + [0.1] * 6, captioner="cap-v1", written=first_day)
    _policy_caption(project, "a blue square .", [0.1] * 4, captioner="cap-v1", written=first_day)
    _policy_caption(project, "two red circles", [0.5, 0.2, 0.7], captioner="cap-v1", written=second_day)
    rescored = _policy_caption(
        project, "a green square", [0.1, 0.1, 0.49], captioner="cap-v2", written=second_day, current=False
    )
    _detect(rescored, [0.1, 0.1, 0.2])  # the current verdict: no bad word either way
    Detection.objects.filter(caption=rescored, is_current=False).update(words=[{"text": "a", "p_bad": 0.99}] * 3)
    # Left out: an imported caption, another project's, and a caption TLDR has not scored yet.
    imported = CaptionFactory(image=ImageFactory(project=project), text="red", source=Caption.Source.IMPORT)
    _detect(imported, [0.99])
    _policy_caption(ProjectFactory(), "red", [0.99], captioner="cap-v1", written=first_day)
    CaptionFactory(image=ImageFactory(project=project), source=Caption.Source.POLICY, model_version="cap-v1")

    rates = captioner_hallucination_by_day(project=project)

    assert [(r.day.isoformat(), r.captioner, r.captions, r.H_T, r.H_S, r.H_R) for r in rates] == [
        ("2026-03-01", "cap-v1", 2, pytest.approx(1 / 16), pytest.approx(1 / 4), 0.5),
        ("2026-03-02", "cap-v1", 1, pytest.approx(2 / 3), 1.0, 1.0),
        ("2026-03-02", "cap-v2", 1, 0.0, 0.0, 0.0),
    ]


# Two small red circles on the left, one small blue square on the right.
PLANTED_SCENE = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 2, None, ((0.1, 0.5), (0.25, 0.5))),
        ObjectGroup("square", "blue", "small", 1, None, ((0.7, 0.5),)),
    )
)


def test_exact_rates_come_from_the_parser_where_images_have_a_scene(project, now):
    day = timezone.make_aware(datetime(2026, 3, 1, 9, 0))
    # "green" is the one bad word of 8 ("a", "." are neutral): H_T 1/8, H_S 1/2, H_R 1; TLDR saw nothing.
    _policy_caption(
        project, "a green square . two red circles .", [0.1] * 8, captioner="cap-v1", written=day, scene=PLANTED_SCENE
    )
    # All true: 0, 0, 0; TLDR wrongly flags "blue".
    _policy_caption(project, "a blue square", [0.1, 0.9, 0.1], captioner="cap-v1", written=day, scene=PLANTED_SCENE)
    # No scene: in TLDR's rates only.
    _policy_caption(project, "a red circle", [0.1] * 3, captioner="cap-v1", written=day)
    _policy_caption(project, "a red circle", [0.1] * 3, captioner="cap-v2", written=day)

    dashboard = project_dashboard(project=project, now=now)

    first, second = dashboard.hallucination
    assert (first.captioner, first.captions, first.exact_captions, first.H_T, first.H_R) == (
        "cap-v1",
        3,
        2,
        pytest.approx(1 / 9),
        pytest.approx(1 / 3),
    )
    assert (first.exact_H_T, first.exact_H_S, first.exact_H_R) == (pytest.approx(1 / 16), 0.25, 0.5)
    assert (second.captioner, second.exact_captions, second.exact_H_T, second.exact_H_S, second.exact_H_R) == (
        "cap-v2",
        0,
        None,
        None,
        None,
    )
    assert dashboard.exact_rates == EXACT_RATES_AVAILABLE


def test_the_project_threshold_decides_which_words_are_bad(now):
    project = ProjectFactory(threshold=0.8)
    _policy_caption(project, "two red circles", [0.5, 0.79, 0.8], captioner="cap", written=now)

    (rates,) = captioner_hallucination_by_day(project=project)

    assert (rates.captions, rates.H_T, rates.H_S, rates.H_R) == (1, pytest.approx(1 / 3), 1.0, 1.0)


def test_rate_charts_draw_a_line_per_captioner_at_the_planted_rates(project, now):
    yesterday = now - timedelta(days=1)
    _policy_caption(project, "a red circle", [0.1, 0.9, 0.1], captioner="cap-v1", written=yesterday)
    _policy_caption(project, "a red circle", [0.1, 0.1, 0.1], captioner="cap-v1", written=yesterday)
    _policy_caption(project, "a red circle", [0.9, 0.9, 0.1], captioner="cap-v1", written=now)
    _policy_caption(project, "a red circle", [0.1, 0.1, 0.1], captioner="cap-v2", written=now)

    charts = dashboard_charts(project_dashboard(project=project, now=now))

    h_r = next(chart for chart in charts.rates if chart.rate == "H_R")
    lines = {line.captioner: [y for _, y, _ in line.dots] for line in h_r.series}
    assert lines == {"cap-v1": [charts.axis_y - PLOT_HEIGHT / 2, CHART_TOP], "cap-v2": [charts.axis_y]}
    assert sum(bar.height > 0 for bar in charts.corrections_bars) == 0


def test_the_dashboard_api_returns_the_planted_numbers(api, admin_user, project, annotator, now):
    TaskFactory.create_batch(2, project=project, status=Task.Status.PENDING)
    _correct(project, annotator, seconds=36.0, submitted_at=now)
    _policy_caption(project, "two red circles", [0.5, 0.2, 0.7], captioner="cap-v1", written=now)
    api.force_authenticate(admin_user)

    body = api.get(reverse("api-project-dashboard", args=[project.pk])).json()

    assert (body["counts"]["tasks_pending"], body["counts"]["tasks_done"]) == (2, 1)
    assert body["corrections_per_day"][-1] == {"day": timezone.localdate(now).isoformat(), "corrections": 1}
    (person,) = body["throughput"]
    assert (person["corrections"], person["median_active_seconds"]) == (1, 36.0)
    assert person["corrections_per_active_hour"] == pytest.approx(100.0)
    (rates,) = body["hallucination"]
    assert (rates["captioner"], rates["captions"], rates["H_S"], rates["H_R"]) == ("cap-v1", 1, 1.0, 1.0)
    assert rates["H_T"] == pytest.approx(2 / 3)
    assert body["exact_rates"] == EXACT_RATES_UNAVAILABLE


def test_headline_metrics_come_from_the_top_level_or_an_evaluations_overall():
    assert model_version_headline({"A_R": 0.7, "mAP_neg": 0.81, "loss": 1.2}) == [("mAP_neg", 0.81), ("A_R", 0.7)]
    assert model_version_headline({"overall": {"mAP_neg": 0.9, "A_R": 0.6}}) == [("mAP_neg", 0.9), ("A_R", 0.6)]
    assert model_version_headline({"H_T": 0.1, "H_S": "n/a", "H_R": True}) == [("H_T", 0.1)]
    assert model_version_headline({}) == []


def test_the_models_page_lists_every_version_with_its_headline_metrics(client, api, admin_user):
    ModelVersionFactory(name="tldr-a", metrics={"mAP_neg": 0.8123, "A_R": 0.7}, status="active")
    ModelVersionFactory(name="tldr-b", metrics={}, status="retired")
    ModelVersionFactory(kind="policy", name="captioner-a", metrics={"H_T": 0.25})
    client.force_login(admin_user)

    page = client.get(reverse("model-versions")).content.decode()

    for name in ("tldr-a", "tldr-b", "captioner-a"):
        assert name in page
    assert "mAP_neg 0.812" in page and "A_R 0.700" in page and "H_T 0.250" in page
    api.force_authenticate(admin_user)
    listed = {row["name"]: row for row in api.get(reverse("api-model-versions")).json()["results"]}
    assert listed["tldr-a"]["metrics"] == {"mAP_neg": 0.8123, "A_R": 0.7}
    assert (listed["tldr-a"]["kind"], listed["tldr-a"]["status"]) == ("reward", "active")
    assert "created" in listed["tldr-a"]


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
def test_permission_matrix_of_the_dashboards(client, api, role, annotator, project):
    if role != "anonymous":
        user = annotator if role == "annotator" else AdminFactory()
        client.force_login(user)
        api.force_authenticate(user)

    pages = [client.get(reverse("project-dashboard", args=[project.pk])), client.get(reverse("model-versions"))]
    endpoints = [
        api.get(reverse("api-project-dashboard", args=[project.pk])),
        api.get(reverse("api-model-versions")),
    ]

    if role == "anonymous":
        for response in pages:
            assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        assert all(response.status_code in (401, 403) for response in endpoints)
    elif role == "annotator":
        assert [response.status_code for response in pages + endpoints] == [403, 403, 403, 403]
    else:
        assert [response.status_code for response in pages + endpoints] == [200, 200, 200, 200]
        assert "<svg" in pages[0].content.decode()


def test_a_missing_project_is_404(client, api, admin_user):
    client.force_login(admin_user)
    api.force_authenticate(admin_user)
    assert client.get(reverse("project-dashboard", args=[999_999])).status_code == 404
    assert api.get(reverse("api-project-dashboard", args=[999_999])).status_code == 404


def test_admins_find_the_dashboard_and_models_from_the_project_pages(client, admin_user, project):
    client.force_login(admin_user)
    project_page = client.get(reverse("project-admin", args=[project.pk])).content.decode()
    project_list = client.get(reverse("project-list")).content.decode()
    for page in (project_page, project_list):
        assert reverse("project-dashboard", args=[project.pk]) in page
        assert reverse("model-versions") in page


def test_annotators_see_no_dashboard_links(client, annotator, project):
    client.force_login(annotator)
    page = client.get(reverse("project-list")).content.decode()
    assert reverse("project-dashboard", args=[project.pk]) not in page and reverse("model-versions") not in page


def test_names_with_html_are_escaped_in_the_dashboard_and_models_page(client, admin_user, now):
    annotator = AnnotatorFactory(username="<script>alert('a')</script>")
    project = ProjectFactory(name="<b>bold</b> project", members=[annotator])
    _correct(project, annotator, seconds=30.0, submitted_at=now)
    _policy_caption(project, "a red circle", [0.1, 0.9, 0.1], captioner="<i>cap</i>", written=now)
    ModelVersionFactory(name="<img src=x>", metrics={"note": "<em>hi</em>", "A_R": 0.5})
    client.force_login(admin_user)

    dashboard = client.get(reverse("project-dashboard", args=[project.pk])).content.decode()
    models = client.get(reverse("model-versions")).content.decode()

    assert "<script>alert" not in dashboard and "<b>bold</b>" not in dashboard and "<i>cap</i>" not in dashboard
    assert "&lt;script&gt;alert(&#x27;a&#x27;)&lt;/script&gt;" in dashboard
    assert "&lt;b&gt;bold&lt;/b&gt; project" in dashboard
    # In each rate chart's line title, dot tooltip and legend, and the table.
    assert dashboard.count("&lt;i&gt;cap&lt;/i&gt;") >= 10
    assert "<img src=x>" not in models and "<em>hi</em>" not in models
    assert "&lt;img src=x&gt;" in models and "&lt;em&gt;hi&lt;/em&gt;" in models


def test_judging_100_000_captions_word_by_word_is_fast():
    words = [{"text": text, "p_bad": 0.1 * (i % 10)} for i, text in enumerate(CAPTION_WORDS)]

    started = time.perf_counter()
    for _ in range(100_000):
        caption_hallucination(words, threshold=0.5)

    assert time.perf_counter() - started < 5
