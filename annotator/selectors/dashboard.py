"""The admin's dashboards: how a project's work is moving, which models exist, and whether the captioner
hallucinates less over time.

Progress is counted in the database (task statuses, corrections per day, per-annotator sums); only
the median of active seconds reads one float per correction, because SQLite has no median.

The captioner's hallucination rates are TLDR's judgement, not the truth: for every caption the policy
wrote, its current detection's words count as bad when p_bad reaches the project's threshold (the
same test that highlights a word for annotators). Per day the caption was written and per captioner
version, as in the TLDR paper (§3):
- H_T: mean over captions of the share of bad words;
- H_S: mean over captions of the share of sentences (ended by a "." word) with a bad word;
- H_R: share of captions with a bad word.
These need every word's p_bad, which lives in a JSON list per detection; one narrow query streams
(day, version, words) and the sums are kept per group, so 100,000 captions take a few seconds and
constant memory.

Where a caption's image was rendered from a shapeworld scene, the parser labels its words against
that exact ground truth (a word is bad when hallucinated or an unparsed content word), and the same
three rates are given beside TLDR's, over the captions of the group that have a scene. A project
without any scene reports exact rates as unavailable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotator.models import Caption, Correction, Detection, Image, ModelVersion, Project
from annotator.selectors.projects import ProjectCounts, project_counts
from annotator.selectors.report import (
    CHART_BOTTOM,
    CHART_LEFT,
    CHART_RIGHT,
    CHART_TOP,
    CHART_WIDTH,
    SERIES_COLOURS,
    ChartTick,
)
from shapeworld.hallucination import caption_rates
from shapeworld.scene import Scene, scene_from_dict

CORRECTION_DAYS = 30
RATES = ("H_T", "H_S", "H_R")
RATE_TITLES = {
    "H_T": "H_T: share of words over the threshold",
    "H_S": "H_S: share of sentences with such a word",
    "H_R": "H_R: share of captions with such a word",
}
# The numbers a model's card leads with; reward evaluations keep theirs under "overall".
HEADLINE_METRICS = ("mAP_neg", "A_R", "H_T", "H_S", "H_R")
EXACT_RATES_UNAVAILABLE = (
    "unavailable: no image of this project was rendered from a shapeworld scene, so no word has ground truth"
)
EXACT_RATES_AVAILABLE = "from the parser against the shapeworld scene, for captions whose image has one"
SENTENCE_END = "."


@dataclass(frozen=True)
class DayCorrections:
    day: date
    corrections: int


@dataclass(frozen=True)
class AnnotatorThroughput:
    annotator_id: int
    annotator: str
    corrections: int
    median_active_seconds: float
    # None when every correction took 0 active seconds: no rate can be taken.
    corrections_per_active_hour: float | None
    last_activity: datetime


@dataclass(frozen=True)
class HallucinationDay:
    """TLDR's verdict on the captions one captioner version wrote on one day."""

    day: date
    captioner: str
    captions: int
    # The paper's names, so the API's keys read as the paper does.
    H_T: float
    H_S: float
    H_R: float
    # The parser's exact rates over the `exact_captions` of them whose image has a scene; None when none has.
    exact_captions: int
    exact_H_T: float | None
    exact_H_S: float | None
    exact_H_R: float | None


@dataclass(frozen=True)
class ProjectDashboard:
    project_id: int
    project_name: str
    generated_at: datetime
    threshold: float
    counts: ProjectCounts
    corrections_per_day: list[DayCorrections]
    throughput: list[AnnotatorThroughput]
    hallucination: list[HallucinationDay]
    exact_rates: str


def project_dashboard(*, project: Project, now: datetime) -> ProjectDashboard:
    return ProjectDashboard(
        project_id=project.pk,
        project_name=project.name,
        generated_at=now,
        threshold=project.threshold,
        counts=project_counts(project=project, now=now),
        corrections_per_day=corrections_per_day(project=project, now=now),
        throughput=annotator_throughput(project=project),
        hallucination=captioner_hallucination_by_day(project=project),
        exact_rates=(
            EXACT_RATES_AVAILABLE
            if Image.objects.filter(project=project, scene__isnull=False).exists()
            else EXACT_RATES_UNAVAILABLE
        ),
    )


def corrections_per_day(*, project: Project, now: datetime, days: int = CORRECTION_DAYS) -> list[DayCorrections]:
    """Corrections submitted on each of the last `days` days (today included, in the site's time zone);
    days without any are listed with 0 so a chart shows the gap."""
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    counted = dict(
        Correction.objects.filter(project=project, submitted_at__date__gte=first, submitted_at__date__lte=today)
        .annotate(day=TruncDate("submitted_at"))
        .order_by()
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    return [DayCorrections(first + timedelta(days=i), counted.get(first + timedelta(days=i), 0)) for i in range(days)]


def annotator_throughput(*, project: Project) -> list[AnnotatorThroughput]:
    """Per annotator: corrections, median active seconds, corrections per active hour and the last submit.

    Per active hour rather than per wall-clock hour: an annotator who pauses for lunch is not slower.
    """
    corrections = Correction.objects.filter(project=project).order_by()
    totals = (
        corrections.values("annotator_id", "annotator__username")
        .annotate(n=Count("pk"), active=Sum("active_seconds"), last=Max("submitted_at"))
        .values_list("annotator_id", "annotator__username", "n", "active", "last")
    )
    seconds: dict[int, list[float]] = defaultdict(list)
    for annotator_id, active_seconds in corrections.values_list("annotator_id", "active_seconds").iterator(5_000):
        seconds[annotator_id].append(active_seconds)
    throughput = [
        AnnotatorThroughput(
            annotator_id=annotator_id,
            annotator=username,
            corrections=count,
            median_active_seconds=float(np.median(seconds[annotator_id])),
            corrections_per_active_hour=count / (active / 3600) if active > 0 else None,
            last_activity=last,
        )
        for annotator_id, username, count, active, last in totals
    ]
    return sorted(throughput, key=lambda person: (person.annotator.casefold(), person.annotator_id))


def caption_hallucination(words: list[dict], *, threshold: float) -> tuple[float, float, bool]:
    """(share of bad words, share of sentences with a bad word, any bad word) of one detection's words."""
    bad_words = 0
    sentences = bad_sentences = 0
    sentence_bad = False
    for position, word in enumerate(words):
        is_bad = word["p_bad"] >= threshold
        bad_words += is_bad
        sentence_bad = sentence_bad or is_bad
        if word["text"] == SENTENCE_END or position == len(words) - 1:
            sentences += 1
            bad_sentences += sentence_bad
            sentence_bad = False
    return bad_words / len(words), bad_sentences / sentences, bad_words > 0


@dataclass
class _RateSums:
    captions: int = 0
    token_rate: float = 0.0
    sentence_rate: float = 0.0
    bad_captions: int = 0
    exact_captions: int = 0
    exact_token_rate: float = 0.0
    exact_sentence_rate: float = 0.0
    exact_bad_captions: int = 0

    def exact(self, total: float) -> float | None:
        """Mean of an exact sum over the captions with a scene; None rather than 0 when there are none."""
        return total / self.exact_captions if self.exact_captions else None


def captioner_hallucination_by_day(*, project: Project) -> list[HallucinationDay]:
    """H_T, H_S, H_R of the policy's captions in `project` per (day written, captioner version), by day.

    Captions TLDR has not scored yet, or whose detection has no word, are left out, so TLDR's rates and
    the exact ones describe the same captions wherever every image has a scene.
    """
    rows = (
        Detection.objects.filter(
            is_current=True, caption__image__project=project, caption__source=Caption.Source.POLICY
        )
        .order_by()
        .values_list(
            "caption__created",
            "caption__model_version",
            "words",
            "caption__text",
            "caption__image_id",
            "caption__image__scene",
        )
    )
    sums: dict[tuple[date, str], _RateSums] = defaultdict(_RateSums)
    # Images usually have several captions over time; each scene is rebuilt once.
    scenes: dict[int, Scene] = {}
    for created, captioner, words, text, image_id, record in rows.iterator(chunk_size=2_000):
        if not words:
            continue
        token_rate, sentence_rate, any_bad = caption_hallucination(words, threshold=project.threshold)
        group = sums[(timezone.localdate(created), captioner)]
        group.captions += 1
        group.token_rate += token_rate
        group.sentence_rate += sentence_rate
        group.bad_captions += any_bad
        if record is not None:
            scene = scenes.get(image_id)
            if scene is None:
                scene = scenes[image_id] = scene_from_dict(record)
            exact = caption_rates(scene, text)
            group.exact_captions += 1
            group.exact_token_rate += exact["token_rate"]
            group.exact_sentence_rate += exact["sentence_rate"]
            group.exact_bad_captions += exact["response_bad"]
    return [
        HallucinationDay(
            day=day,
            captioner=captioner,
            captions=group.captions,
            H_T=group.token_rate / group.captions,
            H_S=group.sentence_rate / group.captions,
            H_R=group.bad_captions / group.captions,
            exact_captions=group.exact_captions,
            exact_H_T=group.exact(group.exact_token_rate),
            exact_H_S=group.exact(group.exact_sentence_rate),
            exact_H_R=group.exact(group.exact_bad_captions),
        )
        for (day, captioner), group in sorted(sums.items())
    ]


def model_versions_all() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("kind", "-created", "-id")


def model_version_headline(metrics: dict) -> list[tuple[str, float]]:
    """The headline numbers a version's metrics hold, top level first, then an evaluation's "overall"."""
    overall = metrics.get("overall") if isinstance(metrics.get("overall"), dict) else {}
    headline = []
    for name in HEADLINE_METRICS:
        value = metrics.get(name, overall.get(name))
        if isinstance(value, int | float) and not isinstance(value, bool):
            headline.append((name, float(value)))
    return headline


# The page's charts, drawn as inline SVG by the template from these coordinates (user units), on the
# speed-up report's canvas.
PLOT_HEIGHT = 180
X_TICKS_MAX = 6


@dataclass(frozen=True)
class RateSeries:
    captioner: str
    colour: str
    points: str  # SVG polyline points, "x,y x,y …"
    dots: list[tuple[float, float, str]]  # x, y, tooltip


@dataclass(frozen=True)
class RateChart:
    rate: str
    title: str
    series: list[RateSeries]


@dataclass(frozen=True)
class DayBar:
    x: float
    y: float
    width: float
    height: float
    tooltip: str


@dataclass(frozen=True)
class DashboardCharts:
    width: int
    height: int
    left: int
    right_edge: int
    top: int
    axis_y: int
    corrections_bars: list[DayBar]
    corrections_x_ticks: list[ChartTick]
    corrections_y_ticks: list[ChartTick]
    rate_x_ticks: list[ChartTick]
    rate_y_ticks: list[ChartTick]
    rates: list[RateChart]


def dashboard_charts(dashboard: ProjectDashboard) -> DashboardCharts:
    """Where every mark goes: corrections per day as bars, and one line chart per rate, a line per captioner."""
    right_edge = CHART_WIDTH - CHART_RIGHT
    axis_y = CHART_TOP + PLOT_HEIGHT
    plot_width = right_edge - CHART_LEFT

    def y_share(share: float) -> float:
        return round(axis_y - PLOT_HEIGHT * share, 1)

    per_day = dashboard.corrections_per_day
    slot = plot_width / max(len(per_day), 1)
    most = max((day.corrections for day in per_day), default=0)
    bars_max = _round_up(most)
    bars = [
        DayBar(
            x=round(CHART_LEFT + index * slot + slot * 0.15, 1),
            y=y_share(day.corrections / bars_max),
            width=round(slot * 0.7, 1),
            height=round(PLOT_HEIGHT * day.corrections / bars_max, 1),
            tooltip=f"{day.day.isoformat()}: {day.corrections} correction{'' if day.corrections == 1 else 's'}",
        )
        for index, day in enumerate(per_day)
    ]
    bar_ticks = [
        ChartTick(round(CHART_LEFT + (i + 0.5) * slot, 1), per_day[i].day.strftime("%d %b"))
        for i in _every(len(per_day))
    ]

    days = sorted({row.day for row in dashboard.hallucination})
    day_index = {day: index for index, day in enumerate(days)}

    def x_day(day: date) -> float:
        if len(days) == 1:
            return round(CHART_LEFT + plot_width / 2, 1)
        return round(CHART_LEFT + plot_width * day_index[day] / (len(days) - 1), 1)

    captioners = sorted({row.captioner for row in dashboard.hallucination})
    rates = []
    for rate in RATES:
        series = []
        for index, captioner in enumerate(captioners):
            dots = [
                (
                    x_day(row.day),
                    y_share(getattr(row, rate)),
                    f"{row.day.isoformat()}: {rate} {getattr(row, rate):.1%} over {row.captions} "
                    f"caption{'' if row.captions == 1 else 's'}",
                )
                for row in dashboard.hallucination
                if row.captioner == captioner
            ]
            series.append(
                RateSeries(
                    captioner=captioner or "unnamed captioner",
                    colour=SERIES_COLOURS[index % len(SERIES_COLOURS)],
                    points=" ".join(f"{x},{y}" for x, y, _ in dots),
                    dots=dots,
                )
            )
        rates.append(RateChart(rate=rate, title=RATE_TITLES[rate], series=series))
    return DashboardCharts(
        width=CHART_WIDTH,
        height=axis_y + CHART_BOTTOM,
        left=CHART_LEFT,
        right_edge=right_edge,
        top=CHART_TOP,
        axis_y=axis_y,
        corrections_bars=bars,
        corrections_x_ticks=bar_ticks,
        corrections_y_ticks=[ChartTick(y_share(value / bars_max), f"{value:g}") for value in _count_ticks(bars_max)],
        rate_x_ticks=[ChartTick(x_day(days[i]), days[i].strftime("%d %b")) for i in _every(len(days))],
        rate_y_ticks=[ChartTick(y_share(share), f"{share:.0%}") for share in (0, 0.25, 0.5, 0.75, 1)],
        rates=rates,
    )


def _every(count: int) -> list[int]:
    """At most X_TICKS_MAX evenly spaced indices of `count` days, the first one included."""
    step = max(1, -(-count // X_TICKS_MAX))
    return list(range(0, count, step))


def _round_up(count: int) -> int:
    """The bar axis ends on a multiple of 5 (at least 5), so its ticks are whole numbers."""
    return max(5, -(-count // 5) * 5)


def _count_ticks(axis_max: int) -> list[int]:
    step = axis_max // 5
    return [step * index for index in range(6)]
