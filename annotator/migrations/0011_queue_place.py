"""QueuePlace: each annotator's count of tasks served per project, filled from the assignments so far."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count


def served_fill(apps, schema_editor):
    """What "next" counted before: the annotator's assignments in the project that were not skipped."""
    Assignment = apps.get_model("annotator", "Assignment")
    QueuePlace = apps.get_model("annotator", "QueuePlace")
    served = (
        Assignment.objects.exclude(status="skipped")
        .values("task__project_id", "annotator_id")
        .annotate(served=Count("id"))
        .order_by()
    )
    QueuePlace.objects.bulk_create(
        (
            QueuePlace(project_id=row["task__project_id"], annotator_id=row["annotator_id"], served=row["served"])
            for row in served
        ),
        batch_size=2_000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("annotator", "0010_correction_report_columns_required"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuePlace",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("served", models.PositiveIntegerField(default=0)),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to=settings.AUTH_USER_MODEL
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotator.project",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "annotator"), name="queue_place_one_per_annotator_and_project"
                    )
                ],
            },
        ),
        migrations.RunPython(served_fill, migrations.RunPython.noop),
    ]
