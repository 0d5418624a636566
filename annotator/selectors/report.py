"""The speed-up report: does TLDR's word highlighting make correcting captions faster, and is the work as good?

TLDR (Fu et al., ICLR 2025) reports about 3.4× faster annotation with token highlights (110.7 s →
32.8 s per caption). A project that shows each annotator all three arms measures the same thing:
the median active seconds per caption in each arm, and the ratios binary/tokens and none/tokens
(ratio of medians, because a few captions left open during a long think would drag a mean). Each
ratio gets a percentile-bootstrap 95 % interval that resamples captions within each arm, seeded so
the same corrections always give the same report.

Quality is reported beside speed, because a faster arm that produces worse corrections is no gain:
where a caption was corrected by more than one person, how often they wrote the same text and gave
each original word the same label. Where a caption's image was rendered from a shapeworld scene, the
scene is exact ground truth and the parser judges against it: the share of corrected captions with
no hallucinated or unparsed content word, and how often the annotator's good/bad label of each
original word matches the parser's. A project without any scene reports this as unavailable rather
than guessed.

The numbers come from two queries of plain values (no model instances): the timing columns of every
correction, read in order from one index (`correction_report_order`), then the texts and labels of
the captions that more than one person corrected, which the first query's task ids name. The
bootstrap costs the same for any number of captions.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

import numpy as np
from django.contrib.auth import get_user_model
from django.db import NotSupportedError
from django.db.models import F, Func, Lookup, TextField

from annotator.models import Arm, Correction, Image, Project
from shapeworld.hallucination import word_is_bad
from shapeworld.parser import caption_label
from shapeworld.scene import Scene, scene_from_dict

ARMS_SLOWER: tuple[str, ...] = (Arm.BINARY, Arm.NONE)
ARMS: tuple[str, ...] = (Arm.TOKENS, *ARMS_SLOWER)
MIN_CORRECTIONS_PER_ARM = 5
BOOTSTRAP_RESAMPLES = 2_000
BOOTSTRAP_SEED = 20250122
CONFIDENCE = 0.95
# The learning effect in bins of this many tasks: an annotator's 1st–10th correction, 11th–20th, …
LEARNING_BIN_TASKS = 10
GROUND_TRUTH_UNAVAILABLE = "unavailable: no image of this project was rendered from a shapeworld scene"


@dataclass(frozen=True)
class ArmTiming:
    """One arm's time per caption: how many corrections, their median and spread, and time per 10 words."""

    arm: str
    corrections: int
    median_seconds: float | None
    # The spread the distribution chart draws: 5th, 25th, 75th and 95th percentiles.
    p5_seconds: float | None
    q1_seconds: float | None
    q3_seconds: float | None
    p95_seconds: float | None
    # Long captions take longer whatever the arm; per 10 words of the original caption compares
    # arms (and projects) whose captions differ in length.
    median_seconds_per_10_words: float | None


@dataclass(frozen=True)
class SpeedUp:
    """How many times slower `arm` is than the token arm; None with the reason when it cannot be said."""

    arm: str
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str


@dataclass(frozen=True)
class TimingSummary:
    corrections: int
    arms: list[ArmTiming]
    speed_ups: list[SpeedUp]


@dataclass(frozen=True)
class AnnotatorTiming:
    annotator_id: int
    annotator: str
    timing: TimingSummary


@dataclass(frozen=True)
class LearningBin:
    """An annotator's `first_task`-th to `last_task`-th correction in the project (counting from 1)."""

    first_task: int
    last_task: int
    corrections: int
    median_seconds: float


@dataclass(frozen=True)
class LearningCurve:
    """Time against task index: `annotator` is None for everyone pooled by task index."""

    annotator_id: int | None
    annotator: str | None
    bins: list[LearningBin]


@dataclass(frozen=True)
class Agreement:
    """Agreement between annotators on the captions that more than one of them corrected."""

    captions_with_overlap: int
    pairs: int
    # Share of pairs whose corrected texts are equal once whitespace and case are normalised.
    text_agreement: float | None
    # Share of original words that both people of a pair labelled the same (good or bad).
    word_label_agreement: float | None
    words_compared: int
    # What the ground-truth numbers below cover, or why there are none.
    ground_truth: str
    # Corrections whose image has a scene; the parser judges them against it.
    ground_truth_corrections: int
    # Share of those corrected captions with no hallucinated or unparsed content word.
    ground_truth_clean_share: float | None
    # Share of original words whose annotator label (good/bad) matches the parser's exact one.
    ground_truth_word_label_agreement: float | None
    ground_truth_words_compared: int


@dataclass(frozen=True)
class ProjectReport:
    project_id: int
    project_name: str
    generated_at: datetime
    min_corrections_per_arm: int
    bootstrap_resamples: int
    confidence: float
    learning_bin_tasks: int
    pooled: TimingSummary
    annotators: list[AnnotatorTiming]
    learning: list[LearningCurve]
    agreement: Agreement


@dataclass(frozen=True)
class Timings:
    """The columns the timing numbers need, one entry per correction, each annotator's in submission order.

    Columns rather than one object per correction: a report of 100,000 corrections is a few masks
    and sorts in numpy instead of 100,000 Python objects filtered once per arm and annotator.
    """

    annotator_ids: np.ndarray  # [n] int
    arms: np.ndarray  # [n] str
    seconds: np.ndarray  # [n] float, active seconds
    words: np.ndarray  # [n] int, words of the original caption
    task_ids: np.ndarray  # [n] int: which captions more than one person corrected

    @classmethod
    def from_rows(cls, rows: list[tuple[int, str, float, int, int]]) -> Timings:
        """From (annotator id, arm, active seconds, words, task id) rows, in submission order per annotator."""
        n = len(rows)
        annotator_ids, arms, seconds, words, task_ids = zip(*rows, strict=True) if rows else ((), (), (), (), ())
        return cls(
            np.fromiter(annotator_ids, dtype=np.int64, count=n),
            np.array(arms, dtype=str),
            np.fromiter(seconds, dtype=float, count=n),
            np.fromiter(words, dtype=np.int64, count=n),
            np.fromiter(task_ids, dtype=np.int64, count=n),
        )

    def __len__(self) -> int:
        return int(self.seconds.size)

    def part(self, rows: slice | np.ndarray) -> Timings:
        return Timings(
            self.annotator_ids[rows], self.arms[rows], self.seconds[rows], self.words[rows], self.task_ids[rows]
        )

    def overlapping_task_ids(self) -> list[int]:
        """The tasks with more than one correction: the only ones whose texts and labels are fetched."""
        tasks, counts = np.unique(self.task_ids, return_counts=True)
        return tasks[counts > 1].tolist()

    def annotator_slices(self) -> dict[int, slice]:
        """Where each annotator's rows are: they are contiguous, because the query orders by annotator."""
        if not len(self):
            return {}
        starts = np.flatnonzero(np.r_[True, self.annotator_ids[1:] != self.annotator_ids[:-1]])
        ends = np.r_[starts[1:], len(self)]
        return {int(self.annotator_ids[s]): slice(int(s), int(e)) for s, e in zip(starts, ends, strict=True)}


def project_report(*, project: Project, now: datetime) -> ProjectReport:
    """Every number of the report of one project, pooled and per annotator."""
    rows = (
        Correction.objects.filter(project=project)
        .order_by("annotator_id", "submitted_at", "id")
        .values_list("annotator_id", "arm", "active_seconds", "original_words", "task_id")
    )
    # One fetch rather than a server-side cursor: half the time, and the report keeps every row anyway.
    timings = Timings.from_rows(list(rows))
    slices = timings.annotator_slices()
    names = dict(get_user_model().objects.filter(pk__in=list(slices)).values_list("pk", "username"))
    annotator_ids = sorted(slices, key=lambda annotator_id: (names[annotator_id].casefold(), annotator_id))
    return ProjectReport(
        project_id=project.pk,
        project_name=project.name,
        generated_at=now,
        min_corrections_per_arm=MIN_CORRECTIONS_PER_ARM,
        bootstrap_resamples=BOOTSTRAP_RESAMPLES,
        confidence=CONFIDENCE,
        learning_bin_tasks=LEARNING_BIN_TASKS,
        pooled=timing_summary(timings),
        annotators=[
            AnnotatorTiming(annotator_id, names[annotator_id], timing_summary(timings.part(slices[annotator_id])))
            for annotator_id in annotator_ids
        ],
        learning=[
            LearningCurve(None, None, learning_bins(timings)),
            *(
                LearningCurve(annotator_id, names[annotator_id], learning_bins(timings.part(slices[annotator_id])))
                for annotator_id in annotator_ids
            ),
        ],
        agreement=agreement_between_annotators(project=project, task_ids=timings.overlapping_task_ids()),
    )


def timing_summary(timings: Timings) -> TimingSummary:
    """Per arm time, and each slower arm's speed-up over the token arm."""
    in_arm = {arm: timings.arms == arm for arm in ARMS}
    seconds = {arm: timings.seconds[in_arm[arm]] for arm in ARMS}
    counted = {arm: in_arm[arm] & (timings.words > 0) for arm in ARMS}
    per_10_words = {arm: 10 * timings.seconds[counted[arm]] / timings.words[counted[arm]] for arm in ARMS}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    return TimingSummary(
        corrections=len(timings),
        arms=[_arm_timing(arm, seconds[arm], per_10_words[arm]) for arm in ARMS],
        speed_ups=[speed_up(arm=arm, slower=seconds[arm], tokens=seconds[Arm.TOKENS], rng=rng) for arm in ARMS_SLOWER],
    )


def _arm_timing(arm: str, seconds: np.ndarray, per_10_words: np.ndarray) -> ArmTiming:
    if not seconds.size:
        return ArmTiming(arm, 0, None, None, None, None, None, None)
    p5, q1, median, q3, p95 = (float(value) for value in np.percentile(seconds, [5, 25, 50, 75, 95]))
    return ArmTiming(
        arm=arm,
        corrections=int(seconds.size),
        median_seconds=median,
        p5_seconds=p5,
        q1_seconds=q1,
        q3_seconds=q3,
        p95_seconds=p95,
        median_seconds_per_10_words=float(np.median(per_10_words)) if per_10_words.size else None,
    )


def speed_up(*, arm: str, slower: np.ndarray, tokens: np.ndarray, rng: np.random.Generator) -> SpeedUp:
    """median(slower) / median(tokens) with a percentile-bootstrap interval; None and why if too little data."""
    for name, sample in ((arm, slower), (Arm.TOKENS, tokens)):
        if sample.size < MIN_CORRECTIONS_PER_ARM:
            reason = (
                f"the {name} arm has {sample.size} correction{'' if sample.size == 1 else 's'}; "
                f"a ratio needs at least {MIN_CORRECTIONS_PER_ARM} in each arm"
            )
            return SpeedUp(arm, None, None, None, reason)
    tokens_median = float(np.median(tokens))
    if tokens_median <= 0:
        return SpeedUp(arm, None, None, None, "the tokens arm's median time is 0 s: no ratio can be taken")
    ratios = bootstrap_medians(slower, rng=rng) / np.maximum(bootstrap_medians(tokens, rng=rng), 1e-9)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return SpeedUp(arm, float(np.median(slower)) / tokens_median, float(low), float(high), "")


def bootstrap_medians(
    sample: np.ndarray, *, rng: np.random.Generator, resamples: int = BOOTSTRAP_RESAMPLES
) -> np.ndarray:
    """The medians of `resamples` resamples (with replacement) of `sample`, in O(resamples) whatever its size.

    Drawing n indices floor(n·U) with U uniform is resampling with replacement, and floor is monotone,
    so the j-th smallest resampled value is sorted[floor(n·U₍ⱼ₎)], with U₍ⱼ₎ the j-th order statistic of
    n uniforms: Beta(j, n − j + 1). The next one, given U₍ⱼ₎, is the smallest of the n − j uniforms
    above it: U₍ⱼ₊₁₎ = U₍ⱼ₎ + (1 − U₍ⱼ₎)·Beta(1, n − j). This is the plain bootstrap's distribution
    exactly, without the resamples × n matrix that 30,000 captions per arm would make 480 MB.
    """
    ordered = np.sort(sample)
    n = ordered.size
    j = (n + 1) // 2  # the median's order statistic (the lower middle one when n is even)
    lower = rng.beta(j, n - j + 1, size=resamples)
    lower_values = ordered[np.minimum((n * lower).astype(np.int64), n - 1)]
    if n % 2:
        return lower_values
    upper = lower + (1 - lower) * rng.beta(1, n - j, size=resamples)
    upper_values = ordered[np.minimum((n * upper).astype(np.int64), n - 1)]
    return (lower_values + upper_values) / 2


def learning_bins(timings: Timings) -> list[LearningBin]:
    """Median time of the n-th correction of each annotator (in submission order), in bins of task index."""
    if not len(timings):
        return []
    task_index = np.arange(len(timings))
    for rows in timings.annotator_slices().values():
        task_index[rows] -= rows.start
    bins = task_index // LEARNING_BIN_TASKS
    # Sorted by bin, then by time within each bin: a bin's median is the middle of its run of rows.
    order = np.lexsort((timings.seconds, bins))
    numbers, starts, counts = np.unique(bins[order], return_index=True, return_counts=True)
    seconds = timings.seconds[order]
    medians = (seconds[starts + (counts - 1) // 2] + seconds[starts + counts // 2]) / 2
    return [
        LearningBin(
            first_task=int(number) * LEARNING_BIN_TASKS + 1,
            last_task=(int(number) + 1) * LEARNING_BIN_TASKS,
            corrections=int(count),
            median_seconds=float(middle),
        )
        for number, count, middle in zip(numbers, counts, medians, strict=True)
    ]


def agreement_between_annotators(*, project: Project, task_ids: list[int]) -> Agreement:
    """Every pair of people who corrected the same caption: same text, and same label word by word.

    `task_ids`: the project's captions with more than one correction (`Timings.overlapping_task_ids`).
    """
    corrections = (
        Correction.objects.filter(IdIn(F("task_id"), task_ids)).order_by("task_id", "id")
        if task_ids
        else Correction.objects.none()
    ).values_list("task_id", "corrected_text", WordLabelList("word_labels"))
    by_caption: dict[int, list[tuple[str, list[str]]]] = defaultdict(list)
    for task_id, corrected_text, labels_json in corrections:
        by_caption[task_id].append((corrected_text, labels_in_order(labels_json)))

    pairs = same_text = words_compared = words_agreeing = 0
    for caption_corrections in by_caption.values():
        for (text_a, labels_a), (text_b, labels_b) in combinations(caption_corrections, 2):
            pairs += 1
            same_text += text_a == text_b or _normalised(text_a) == _normalised(text_b)
            # Both label the words of the one original caption; a different count means the caption
            # was edited between the two corrections, and its words cannot be paired up.
            if len(labels_a) == len(labels_b):
                words_compared += len(labels_a)
                if labels_a == labels_b:  # most pairs: no word-by-word count needed
                    words_agreeing += len(labels_a)
                else:
                    words_agreeing += sum(a == b for a, b in zip(labels_a, labels_b, strict=True))
    truth = agreement_with_ground_truth(project=project)
    return Agreement(
        captions_with_overlap=len(by_caption),
        pairs=pairs,
        text_agreement=same_text / pairs if pairs else None,
        word_label_agreement=words_agreeing / words_compared if words_compared else None,
        words_compared=words_compared,
        ground_truth=truth.note,
        ground_truth_corrections=truth.corrections,
        ground_truth_clean_share=truth.clean_share,
        ground_truth_word_label_agreement=truth.word_label_agreement,
        ground_truth_words_compared=truth.words_compared,
    )


@dataclass(frozen=True)
class GroundTruthAgreement:
    """How the corrections of images with a scene fare against the parser's exact verdict."""

    note: str
    corrections: int
    clean_share: float | None
    word_label_agreement: float | None
    words_compared: int


def agreement_with_ground_truth(*, project: Project) -> GroundTruthAgreement:
    """Judge every correction whose image has a scene by the parser: is the corrected caption clean, and
    did the annotator flag the same original words the parser finds hallucinated or unparsed?

    Only corrections with a scene are fetched, streamed, and each scene is parsed once per image.
    Words are paired by character span (the annotator's labels and the parser's come from one word
    splitter); a labelled word the parser has no span for is left out rather than guessed.
    """
    if not Image.objects.filter(project=project, scene__isnull=False).exists():
        return GroundTruthAgreement(GROUND_TRUTH_UNAVAILABLE, 0, None, None, 0)
    rows = (
        Correction.objects.filter(project=project, task__caption__image__scene__isnull=False)
        .order_by()
        .values_list(
            "task__caption__image_id",
            "task__caption__image__scene",
            "original_text",
            "corrected_text",
            "word_labels",
        )
    )
    scenes: dict[int, Scene] = {}
    corrections = clean = words_compared = words_agreeing = 0
    for image_id, record, original_text, corrected_text, word_labels in rows.iterator(chunk_size=2_000):
        scene = scenes.get(image_id)
        if scene is None:
            scene = scenes[image_id] = scene_from_dict(record)
        corrections += 1
        clean += not any(word_is_bad(word) for word in caption_label(scene, corrected_text))
        exact_bad = {(word.start, word.end): word_is_bad(word) for word in caption_label(scene, original_text)}
        for word in word_labels:
            is_bad = exact_bad.get((word["start"], word["end"]))
            if is_bad is not None:
                words_compared += 1
                words_agreeing += (word["label"] == "bad") == is_bad
    return GroundTruthAgreement(
        note=f"judged by the parser against the scenes of {corrections} corrected caption"
        f"{'' if corrections == 1 else 's'}",
        corrections=corrections,
        clean_share=clean / corrections if corrections else None,
        word_label_agreement=words_agreeing / words_compared if words_compared else None,
        words_compared=words_compared,
    )


class IdIn(Lookup):
    """`column IN ids`, with the ids sent as one array on PostgreSQL (`= ANY(%s)`).

    The report asks for the 10,000 overlapping captions of a 100,000-correction project by id: as
    10,000 bound parameters, PostgreSQL spent more time parsing and planning the list than reading
    the rows. Other databases get the plain IN list. `ids` must not be empty.
    """

    lookup_name = "id_in"
    prepare_rhs = False

    def as_sql(self, compiler, connection) -> tuple[str, list]:
        column, params = self.process_lhs(compiler, connection)
        return f"{column} IN ({', '.join(['%s'] * len(self.rhs))})", [*params, *self.rhs]

    def as_postgresql(self, compiler, connection) -> tuple[str, list]:
        column, params = self.process_lhs(compiler, connection)
        return f"{column} = ANY(%s)", [*params, list(self.rhs)]


class WordLabelList(Func):
    """A correction's word labels alone, as the text of a JSON array: `["good", "bad", …]`.

    Agreement needs only the labels, in order; the stored word objects (text, span, label) are ten
    times larger, and reading them for 20,000 corrections was most of the agreement's time.
    """

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError(f"the report reads word labels on PostgreSQL and SQLite, not {connection.vendor}")

    def as_postgresql(self, compiler, connection, **extra):
        template = "jsonb_path_query_array(%(expressions)s, '$[*].label')::text"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler, connection, **extra):
        template = "(SELECT json_group_array(json_extract(value, '$.label')) FROM json_each(%(expressions)s))"
        return super().as_sql(compiler, connection, template=template, **extra)


_LABEL = re.compile(r'"(good|bad)"')


def labels_in_order(labels_json: str) -> list[str]:
    """The labels of a `WordLabelList` text, in order; a regex is three times faster than json.loads here."""
    return _LABEL.findall(labels_json)


def _normalised(text: str) -> str:
    return " ".join(text.split()).casefold()


CSV_HEADER = ["section", "annotator", "arm", "tasks", "measure", "value", "ci_low", "ci_high", "corrections", "note"]


def report_csv_rows(report: ProjectReport) -> list[list[str]]:
    """The report as one long table (a header, then one measure a row), for a spreadsheet or pandas."""
    rows = [CSV_HEADER]
    summaries = [("pooled", "", report.pooled)]
    summaries += [("annotator", person.annotator, person.timing) for person in report.annotators]
    for section, annotator, summary in summaries:
        for arm in summary.arms:
            for measure, value in (
                ("median_seconds", arm.median_seconds),
                ("median_seconds_per_10_words", arm.median_seconds_per_10_words),
            ):
                rows.append(_csv_row(section, annotator, arm=arm.arm, measure=measure, value=value, n=arm.corrections))
        for ratio in summary.speed_ups:
            rows.append(
                _csv_row(
                    section,
                    annotator,
                    arm=f"{ratio.arm}/tokens",
                    measure="speed_up",
                    value=ratio.ratio,
                    ci=(ratio.ci_low, ratio.ci_high),
                    note=ratio.reason,
                )
            )
    for curve in report.learning:
        for learning_bin in curve.bins:
            rows.append(
                _csv_row(
                    "learning",
                    curve.annotator or "",
                    tasks=f"{learning_bin.first_task}-{learning_bin.last_task}",
                    measure="median_seconds",
                    value=learning_bin.median_seconds,
                    n=learning_bin.corrections,
                )
            )
    agreement = report.agreement
    pairs_note = f"{agreement.pairs} pairs on {agreement.captions_with_overlap} captions"
    rows += [
        _csv_row("agreement", measure="text_agreement", value=agreement.text_agreement, note=pairs_note),
        _csv_row(
            "agreement",
            measure="word_label_agreement",
            value=agreement.word_label_agreement,
            note=f"{agreement.words_compared} words compared",
        ),
        _csv_row("agreement", measure="ground_truth_agreement", note=agreement.ground_truth),
        _csv_row(
            "agreement",
            measure="ground_truth_clean_share",
            value=agreement.ground_truth_clean_share,
            n=agreement.ground_truth_corrections,
        ),
        _csv_row(
            "agreement",
            measure="ground_truth_word_label_agreement",
            value=agreement.ground_truth_word_label_agreement,
            note=f"{agreement.ground_truth_words_compared} words compared",
        ),
    ]
    return rows


def _csv_row(
    section: str,
    annotator: str = "",
    *,
    arm: str = "",
    tasks: str = "",
    measure: str,
    value: float | None = None,
    ci: tuple[float | None, float | None] = (None, None),
    n: int | None = None,
    note: str = "",
) -> list[str]:
    cells = [section, annotator, arm, tasks, measure, _cell(value), _cell(ci[0]), _cell(ci[1])]
    return [_spreadsheet_safe(cell) for cell in [*cells, "" if n is None else str(n), note]]


def _cell(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _spreadsheet_safe(cell: str) -> str:
    """A username such as `=HYPERLINK(…)` must stay text: spreadsheets run cells that start like a formula."""
    return f"'{cell}" if cell[:1] in ("=", "+", "-", "@") and not _is_number(cell) else cell


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# The page's two charts, drawn as inline SVG by the template from these coordinates (user units).
CHART_WIDTH = 640
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 110, 20, 16, 36
BOX_ROW_HEIGHT = 44
LEARNING_PLOT_HEIGHT = 220
SERIES_COLOURS = ("#4338ca", "#b45309", "#047857", "#be123c", "#0e7490", "#7c3aed", "#4d7c0f", "#9f1239")


@dataclass(frozen=True)
class ChartTick:
    position: float
    label: str


@dataclass(frozen=True)
class ArmBox:
    """One arm's row in the distribution chart: whiskers at the 5th/95th percentile, box at the quartiles."""

    label: str
    corrections: int
    y: float
    box_top: float
    box_height: float
    box_bottom: float
    x_p5: float
    x_q1: float
    box_width: float
    x_median: float
    x_p95: float
    median_seconds: float


@dataclass(frozen=True)
class LearningSeries:
    name: str
    colour: str
    is_pooled: bool
    points: str  # SVG polyline points, "x,y x,y …"
    dots: list[tuple[float, float, str]]  # x, y, tooltip


@dataclass(frozen=True)
class ReportCharts:
    width: int
    left: int
    right_edge: int
    top: int
    distribution_height: int
    distribution_axis_y: int
    distribution_ticks: list[ChartTick]
    boxes: list[ArmBox]
    learning_height: int
    learning_axis_y: int
    learning_x_ticks: list[ChartTick]
    learning_y_ticks: list[ChartTick]
    series: list[LearningSeries]


def report_charts(report: ProjectReport) -> ReportCharts:
    """Where every mark of the two charts goes: time distribution per arm, and time against task index."""
    right_edge = CHART_WIDTH - CHART_RIGHT
    arms = [arm for arm in report.pooled.arms if arm.corrections]
    seconds_max = _axis_max(max((arm.p95_seconds or 0 for arm in arms), default=0))

    def x_seconds(seconds: float) -> float:
        return round(CHART_LEFT + (right_edge - CHART_LEFT) * min(seconds, seconds_max) / seconds_max, 1)

    boxes = []
    for index, arm in enumerate(arms):
        y = CHART_TOP + index * BOX_ROW_HEIGHT + BOX_ROW_HEIGHT / 2
        x_q1 = x_seconds(arm.q1_seconds or 0)
        boxes.append(
            ArmBox(
                label=Arm(arm.arm).label,
                corrections=arm.corrections,
                y=y,
                box_top=y - BOX_ROW_HEIGHT / 4,
                box_height=BOX_ROW_HEIGHT / 2,
                box_bottom=y + BOX_ROW_HEIGHT / 4,
                x_p5=x_seconds(arm.p5_seconds or 0),
                x_q1=x_q1,
                box_width=round(x_seconds(arm.q3_seconds or 0) - x_q1, 1),
                x_median=x_seconds(arm.median_seconds or 0),
                x_p95=x_seconds(arm.p95_seconds or 0),
                median_seconds=arm.median_seconds or 0,
            )
        )
    distribution_axis_y = CHART_TOP + len(boxes) * BOX_ROW_HEIGHT

    curves = [curve for curve in report.learning if curve.bins]
    tasks_max = max((curve.bins[-1].last_task for curve in curves), default=LEARNING_BIN_TASKS)
    learning_seconds_max = _axis_max(max((b.median_seconds for curve in curves for b in curve.bins), default=0))
    learning_axis_y = CHART_TOP + LEARNING_PLOT_HEIGHT

    def x_task(task: float) -> float:
        return round(CHART_LEFT + (right_edge - CHART_LEFT) * task / tasks_max, 1)

    def y_seconds(seconds: float) -> float:
        return round(learning_axis_y - LEARNING_PLOT_HEIGHT * seconds / learning_seconds_max, 1)

    series = []
    for index, curve in enumerate(curves):
        dots = [
            (
                x_task((b.first_task + b.last_task) / 2),
                y_seconds(b.median_seconds),
                f"tasks {b.first_task}–{b.last_task}: median {b.median_seconds:.1f} s over {b.corrections}",
            )
            for b in curve.bins
        ]
        series.append(
            LearningSeries(
                name=curve.annotator or "all annotators",
                colour="#111827" if curve.annotator is None else SERIES_COLOURS[(index - 1) % len(SERIES_COLOURS)],
                is_pooled=curve.annotator is None,
                points=" ".join(f"{x},{y}" for x, y, _ in dots),
                dots=dots,
            )
        )
    return ReportCharts(
        width=CHART_WIDTH,
        left=CHART_LEFT,
        right_edge=right_edge,
        top=CHART_TOP,
        distribution_height=distribution_axis_y + CHART_BOTTOM,
        distribution_axis_y=distribution_axis_y,
        distribution_ticks=[ChartTick(x_seconds(value), f"{value:g} s") for value in _ticks(seconds_max)],
        boxes=boxes,
        learning_height=learning_axis_y + CHART_BOTTOM,
        learning_axis_y=learning_axis_y,
        learning_x_ticks=[ChartTick(x_task(value), f"{value:g}") for value in _ticks(tasks_max)],
        learning_y_ticks=[ChartTick(y_seconds(value), f"{value:g} s") for value in _ticks(learning_seconds_max)],
        series=series,
    )


def _axis_max(value: float) -> float:
    """The axis ends on a round number a little above the data, so the marks fill the chart."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if step * power >= value)


def _ticks(axis_max: float) -> list[float]:
    """Four to ten ticks from 0, a round step (1, 2 or 5 times a power of ten) apart."""
    power = 10 ** math.floor(math.log10(axis_max / 5))
    step = next(multiple * power for multiple in (1, 2, 5, 10) if multiple * power >= axis_max / 5)
    return [round(step * index, 6) for index in range(int(axis_max / step + 1e-9) + 1)]
