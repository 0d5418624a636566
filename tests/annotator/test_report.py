"""The speed-up report: planted timings whose medians, ratios and intervals are known, the learning
bins, agreement on overlapping captions, too little data, the CSV, who may see it, and escaping."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse

from annotator.models import Arm, Assignment, Caption, Correction, Project, Task
from annotator.selectors.report import (
    GROUND_TRUTH_UNAVAILABLE,
    Timings,
    agreement_with_ground_truth,
    bootstrap_medians,
    project_report,
    report_csv_rows,
    timing_summary,
)
from shapeworld.grammar import caption_words
from shapeworld.scene import ObjectGroup, Scene, scene_to_dict
from tests.annotator.factories import AdminFactory, AnnotatorFactory, ImageFactory, ProjectFactory

pytestmark = pytest.mark.django_db

CAPTION = "two red circles left of a blue square"  # 8 words


def _labels(bad_words: set[int] = frozenset()) -> list[dict]:
    return [
        {"text": word, "start": 0, "end": 0, "label": "bad" if index in bad_words else "good"}
        for index, word in enumerate(CAPTION.split())
    ]


def _plant(
    project: Project,
    annotator,
    arm: str,
    seconds: list[float],
    *,
    now,
    task: Task | None = None,
    corrected_text: str = CAPTION,
    bad_words: set[int] = frozenset(),
) -> list[Correction]:
    """One correction per entry of `seconds`, submitted a minute apart, each on a caption of its own
    unless `task` says which caption they all correct."""
    image = ImageFactory(project=project) if task is None else None
    corrections = []
    for index, active in enumerate(seconds):
        if task is None:
            caption = Caption.objects.create(image=image, text=CAPTION, source=Caption.Source.IMPORT)
            correction_task = Task.objects.create(project=project, caption=caption, status=Task.Status.DONE)
        else:
            correction_task = task
        submitted = now + timedelta(minutes=Correction.objects.filter(annotator=annotator).count() + index)
        assignment = Assignment.objects.create(
            task=correction_task,
            annotator=annotator,
            arm=arm,
            status=Assignment.Status.SUBMITTED,
            leased_at=submitted,
            expires_at=submitted,
            served_at=submitted,
        )
        corrections.append(
            Correction.objects.create(
                task=correction_task,
                assignment=assignment,
                annotator=annotator,
                original_text=CAPTION,
                corrected_text=corrected_text,
                word_labels=_labels(bad_words),
                arm=arm,
                served_at=submitted,
                submitted_at=submitted,
                active_seconds=active,
                client_submission_id=uuid.uuid4(),
            )
        )
    return corrections


def _arm(summary, arm: str):
    return next(timing for timing in summary.arms if timing.arm == arm)


def _speed_up(summary, arm: str):
    return next(ratio for ratio in summary.speed_ups if ratio.arm == arm)


def test_constant_times_give_exact_medians_ratios_and_a_collapsed_interval(project, annotator, now):
    _plant(project, annotator, Arm.TOKENS, [30.0] * 8, now=now)
    _plant(project, annotator, Arm.BINARY, [90.0] * 7, now=now)
    _plant(project, annotator, Arm.NONE, [120.0] * 6, now=now)

    pooled = project_report(project=project, now=now).pooled

    assert [(arm.arm, arm.corrections, arm.median_seconds) for arm in pooled.arms] == [
        ("tokens", 8, 30.0),
        ("binary", 7, 90.0),
        ("none", 6, 120.0),
    ]
    assert _arm(pooled, Arm.TOKENS).median_seconds_per_10_words == pytest.approx(37.5)
    binary, none = _speed_up(pooled, Arm.BINARY), _speed_up(pooled, Arm.NONE)
    assert (binary.ratio, binary.ci_low, binary.ci_high, binary.reason) == (3.0, 3.0, 3.0, "")
    assert (none.ratio, none.ci_low, none.ci_high) == (4.0, 4.0, 4.0)


def test_noisy_times_give_an_interval_around_the_true_ratio():
    rng = np.random.default_rng(7)
    # Log-normal times: the median of exp(N(log m, σ)) is m, so the true ratio of medians is 90/30 = 3.
    # (annotator, arm, active seconds, words, task id) rows, as the report's query gives them.
    rows = [(1, Arm.TOKENS, float(s), 8, task) for task, s in enumerate(np.exp(rng.normal(np.log(30), 0.5, 301)))]
    rows += [(1, Arm.BINARY, float(s), 8, 301 + t) for t, s in enumerate(np.exp(rng.normal(np.log(90), 0.5, 301)))]

    binary = _speed_up(timing_summary(Timings.from_rows(rows)), Arm.BINARY)

    assert binary.ci_low < 3.0 < binary.ci_high
    assert binary.ci_low < binary.ratio < binary.ci_high
    assert binary.ci_low > 2.4 and binary.ci_high < 3.6  # narrow enough to mean something at n = 301


@pytest.mark.parametrize("size", [41, 40])
def test_bootstrap_medians_are_distributed_as_plain_resampling(size):
    sample = np.random.default_rng(3).gamma(2.0, 20.0, size)
    plain = np.median(sample[np.random.default_rng(5).integers(0, size, (20_000, size))], axis=1)

    fast = bootstrap_medians(sample, rng=np.random.default_rng(11), resamples=20_000)

    quantiles = [2.5, 25, 50, 75, 97.5]
    spread = np.percentile(plain, 97.5) - np.percentile(plain, 2.5)
    assert np.allclose(np.percentile(fast, quantiles), np.percentile(plain, quantiles), atol=0.05 * spread)


def test_a_summary_of_100_000_corrections_has_each_arms_exact_median():
    rng = np.random.default_rng(1)
    arms = rng.choice([str(Arm.TOKENS), str(Arm.BINARY), str(Arm.NONE)], 100_000)
    seconds = rng.gamma(2, 20, 100_000)
    rows = [(int(i % 50), str(arm), float(s), 9, i) for i, (arm, s) in enumerate(zip(arms, seconds, strict=True))]

    summary = timing_summary(Timings.from_rows(rows))

    assert summary.corrections == 100_000
    for arm in (Arm.TOKENS, Arm.BINARY, Arm.NONE):
        assert _arm(summary, arm).median_seconds == pytest.approx(float(np.median(seconds[arms == arm])))
        assert _arm(summary, arm).corrections == int((arms == arm).sum())
    assert all(ratio.ratio is not None for ratio in summary.speed_ups)


def test_each_annotator_gets_its_own_speed_up(project, now):
    quick, slow = AnnotatorFactory(username="quick"), AnnotatorFactory(username="slow")
    _plant(project, quick, Arm.TOKENS, [20.0] * 5, now=now)
    _plant(project, quick, Arm.BINARY, [60.0] * 5, now=now)
    _plant(project, slow, Arm.TOKENS, [40.0] * 5, now=now)
    _plant(project, slow, Arm.BINARY, [80.0] * 5, now=now)

    report = project_report(project=project, now=now)

    by_name = {person.annotator: person.timing for person in report.annotators}
    assert _speed_up(by_name["quick"], Arm.BINARY).ratio == 3.0
    assert _speed_up(by_name["slow"], Arm.BINARY).ratio == 2.0
    assert _arm(report.pooled, Arm.TOKENS).median_seconds == 30.0
    assert _arm(report.pooled, Arm.BINARY).median_seconds == 70.0


def test_learning_bins_follow_each_annotators_task_index(project, now):
    learner, newcomer = AnnotatorFactory(username="learner"), AnnotatorFactory(username="newcomer")
    _plant(project, learner, Arm.TOKENS, [60.0] * 10 + [40.0] * 10 + [20.0] * 5, now=now)
    _plant(project, newcomer, Arm.BINARY, [100.0] * 10, now=now)

    learning = {curve.annotator: curve.bins for curve in project_report(project=project, now=now).learning}

    as_tuples = [(b.first_task, b.last_task, b.corrections, b.median_seconds) for b in learning["learner"]]
    assert as_tuples == [(1, 10, 10, 60.0), (11, 20, 10, 40.0), (21, 30, 5, 20.0)]
    assert [(b.corrections, b.median_seconds) for b in learning["newcomer"]] == [(10, 100.0)]
    # Everyone's first ten tasks together: ten at 60 s and ten at 100 s.
    assert [(b.corrections, b.median_seconds) for b in learning[None]] == [(20, 80.0), (10, 40.0), (5, 20.0)]


def test_agreement_counts_pairs_on_overlapping_captions(now):
    first, second, third = AnnotatorFactory(), AnnotatorFactory(), AnnotatorFactory()
    project = ProjectFactory(overlap=3, members=[first, second, third])
    image = ImageFactory(project=project)
    agreeing, disagreeing = (
        Task.objects.create(project=project, caption=Caption.objects.create(image=image, text=CAPTION, source="import"))
        for _ in range(2)
    )
    fixed = "two red circles right of a blue square"
    _plant(project, first, Arm.TOKENS, [30.0], now=now, task=agreeing, corrected_text=fixed, bad_words={3})
    _plant(
        project,
        second,
        Arm.NONE,
        [90.0],
        now=now,
        task=agreeing,
        corrected_text="  Two red  circles right of a blue SQUARE ",
        bad_words={3},
    )
    _plant(project, first, Arm.TOKENS, [30.0], now=now, task=disagreeing, corrected_text=fixed, bad_words={3})
    _plant(project, second, Arm.NONE, [90.0], now=now, task=disagreeing, corrected_text=CAPTION)
    _plant(project, third, Arm.BINARY, [60.0], now=now)  # a caption nobody else corrected

    agreement = project_report(project=project, now=now).agreement

    assert (agreement.captions_with_overlap, agreement.pairs) == (2, 2)
    assert agreement.text_agreement == 0.5
    assert (agreement.words_compared, agreement.word_label_agreement) == (16, 15 / 16)
    assert agreement.ground_truth == GROUND_TRUTH_UNAVAILABLE


def test_arms_with_too_few_corrections_give_null_ratios_with_a_reason(project, annotator, now):
    _plant(project, annotator, Arm.TOKENS, [30.0] * 5, now=now)
    _plant(project, annotator, Arm.BINARY, [90.0] * 4, now=now)

    pooled = project_report(project=project, now=now).pooled

    binary, none = _speed_up(pooled, Arm.BINARY), _speed_up(pooled, Arm.NONE)
    assert (binary.ratio, binary.ci_low, binary.ci_high) == (None, None, None)
    assert "binary arm has 4 corrections" in binary.reason and "at least 5" in binary.reason
    assert none.ratio is None and "none arm has 0 corrections" in none.reason
    assert _arm(pooled, Arm.NONE).median_seconds is None
    assert _arm(pooled, Arm.BINARY).median_seconds == 90.0


def test_an_empty_project_reports_nothing_without_failing(client, admin_user, project, now):
    report = project_report(project=project, now=now)
    assert report.pooled.corrections == 0 and report.annotators == [] and report.agreement.pairs == 0

    client.force_login(admin_user)
    assert client.get(reverse("project-report", args=[project.pk])).status_code == 200
    assert client.get(reverse("project-report-csv", args=[project.pk])).status_code == 200


def _csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_csv_holds_the_planted_numbers(client, admin_user, project, now):
    annotator = AnnotatorFactory(username="=HYPERLINK(1)")
    _plant(project, annotator, Arm.TOKENS, [30.0] * 5, now=now)
    _plant(project, annotator, Arm.BINARY, [90.0] * 5, now=now)
    client.force_login(admin_user)

    response = client.get(reverse("project-report-csv", args=[project.pk]))

    assert response["Content-Type"].startswith("text/csv")
    assert f"project-{project.pk}-report.csv" in response["Content-Disposition"]
    rows = _csv(response)
    pooled = {(row["arm"], row["measure"]): row for row in rows if row["section"] == "pooled"}
    assert pooled[("tokens", "median_seconds")]["value"] == "30"
    assert pooled[("tokens", "median_seconds")]["corrections"] == "5"
    assert pooled[("tokens", "median_seconds_per_10_words")]["value"] == "37.5"
    ratio = pooled[("binary/tokens", "speed_up")]
    assert (ratio["value"], ratio["ci_low"], ratio["ci_high"]) == ("3", "3", "3")
    assert pooled[("none/tokens", "speed_up")]["value"] == ""
    assert "none arm has 0 corrections" in pooled[("none/tokens", "speed_up")]["note"]
    # A username that looks like a formula stays text in a spreadsheet.
    assert {row["annotator"] for row in rows if row["section"] == "annotator"} == {"'=HYPERLINK(1)"}
    learning = [row for row in rows if row["section"] == "learning"]
    assert [(row["annotator"], row["tasks"], row["value"]) for row in learning] == [
        ("", "1-10", "60"),
        ("'=HYPERLINK(1)", "1-10", "60"),
    ]
    agreement = {row["measure"]: row for row in rows if row["section"] == "agreement"}
    assert agreement["ground_truth_agreement"]["note"] == GROUND_TRUTH_UNAVAILABLE


# Two small red circles on the left, one small blue square on the right: "left of" is true, "right of" is not.
PLANTED_SCENE = Scene(
    groups=(
        ObjectGroup("circle", "red", "small", 2, None, ((0.1, 0.5), (0.25, 0.5))),
        ObjectGroup("square", "blue", "small", 1, None, ((0.7, 0.5),)),
    )
)


def _correct_with_spans(annotator, task: Task, *, corrected_text: str, bad: set[str]) -> None:
    """A correction whose word labels carry the caption's real spans; words named in `bad` are labelled bad."""
    original = task.caption.text
    labels = [
        {"text": text, "start": start, "end": end, "label": "bad" if text in bad else "good"}
        for text, start, end in caption_words(original)
    ]
    assignment = Assignment.objects.create(
        task=task,
        annotator=annotator,
        arm=Arm.TOKENS,
        status=Assignment.Status.SUBMITTED,
        leased_at=task.created,
        expires_at=task.created,
        served_at=task.created,
    )
    Correction.objects.create(
        task=task,
        assignment=assignment,
        annotator=annotator,
        original_text=original,
        corrected_text=corrected_text,
        word_labels=labels,
        arm=Arm.TOKENS,
        served_at=task.created,
        submitted_at=task.created,
        active_seconds=30.0,
        client_submission_id=uuid.uuid4(),
    )


def _task_of(project: Project, text: str, *, scene: Scene | None) -> Task:
    image = ImageFactory(project=project, scene=None if scene is None else scene_to_dict(scene))
    caption = Caption.objects.create(image=image, text=text, source=Caption.Source.POLICY)
    return Task.objects.create(project=project, caption=caption, status=Task.Status.DONE)


def test_agreement_with_the_planted_scene_is_computed_by_the_parser(project, now):
    wrong = "two red circles right of a blue square"  # only "right" is hallucinated
    first, second = AnnotatorFactory(), AnnotatorFactory()
    with_scene = _task_of(project, wrong, scene=PLANTED_SCENE)
    # Flags exactly "right" and fixes it: 8 of 8 labels match the parser, a clean caption.
    _correct_with_spans(first, with_scene, corrected_text="two red circles left of a blue square", bad={"right"})
    # Flags "red" instead and keeps the caption: "red" and "right" disagree (6 of 8), not clean.
    _correct_with_spans(second, with_scene, corrected_text=wrong, bad={"red"})
    # An image without a scene has no ground truth and is left out, however its words are labelled.
    _correct_with_spans(first, _task_of(project, wrong, scene=None), corrected_text=wrong, bad=set())

    report = project_report(project=project, now=now)
    agreement = report.agreement

    assert agreement.ground_truth_corrections == 2
    assert agreement.ground_truth_clean_share == 0.5
    assert (agreement.ground_truth_words_compared, agreement.ground_truth_word_label_agreement) == (16, 14 / 16)
    assert agreement.ground_truth != GROUND_TRUTH_UNAVAILABLE
    header, *rows = report_csv_rows(report)
    by_measure = {row["measure"]: row for row in (dict(zip(header, r, strict=True)) for r in rows)}
    assert by_measure["ground_truth_clean_share"]["value"] == "0.5"
    assert by_measure["ground_truth_word_label_agreement"]["value"] == "0.875"


def test_ground_truth_stays_unavailable_without_any_scene(project, annotator):
    _correct_with_spans(annotator, _task_of(project, CAPTION, scene=None), corrected_text=CAPTION, bad=set())

    truth = agreement_with_ground_truth(project=project)

    assert (truth.note, truth.corrections, truth.clean_share, truth.word_label_agreement) == (
        GROUND_TRUTH_UNAVAILABLE,
        0,
        None,
        None,
    )


@pytest.mark.parametrize("role", ["anonymous", "annotator", "admin"])
def test_permission_matrix_of_the_report(client, api, role, annotator, project, now):
    _plant(project, annotator, Arm.TOKENS, [30.0] * 5, now=now)
    _plant(project, annotator, Arm.BINARY, [90.0] * 5, now=now)
    if role != "anonymous":
        user = annotator if role == "annotator" else AdminFactory()
        client.force_login(user)
        api.force_authenticate(user)

    page = client.get(reverse("project-report", args=[project.pk]))
    download = client.get(reverse("project-report-csv", args=[project.pk]))
    json_report = api.get(reverse("api-project-report", args=[project.pk]))

    if role == "anonymous":
        for response in (page, download):
            assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        assert json_report.status_code in (401, 403)
    elif role == "annotator":
        assert (page.status_code, download.status_code, json_report.status_code) == (403, 403, 403)
    else:
        assert (page.status_code, download.status_code, json_report.status_code) == (200, 200, 200)
        binary = next(ratio for ratio in json_report.json()["pooled"]["speed_ups"] if ratio["arm"] == "binary")
        assert (binary["ratio"], binary["ci_low"], binary["ci_high"]) == (3.0, 3.0, 3.0)
        assert "<svg" in page.content.decode()


def test_a_missing_project_is_404(client, api, admin_user):
    client.force_login(admin_user)
    api.force_authenticate(admin_user)
    assert client.get(reverse("project-report", args=[999_999])).status_code == 404
    assert api.get(reverse("api-project-report", args=[999_999])).status_code == 404


def test_the_project_page_links_to_the_report(client, admin_user, project):
    client.force_login(admin_user)
    page = client.get(reverse("project-admin", args=[project.pk])).content.decode()
    assert reverse("project-report", args=[project.pk]) in page


def test_names_with_html_are_escaped_in_the_page_and_its_charts(client, admin_user, now):
    annotator = AnnotatorFactory(username="<script>alert('a')</script>")
    project = ProjectFactory(name="<b>bold</b> project", members=[annotator])
    _plant(project, annotator, Arm.TOKENS, [30.0] * 5, now=now)
    _plant(project, annotator, Arm.NONE, [90.0] * 5, now=now)
    client.force_login(admin_user)

    page = client.get(reverse("project-report", args=[project.pk])).content.decode()

    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt; project" in page
    # In the per-annotator table, and the chart's line title and legend.
    assert page.count("&lt;script&gt;alert(&#x27;a&#x27;)&lt;/script&gt;") >= 3
