"""Fill 0008's report columns: each correction's project from its task, its words from its original text."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

BATCH = 2_000


def columns_fill(apps, schema_editor):
    Correction = apps.get_model("annotator", "Correction")
    Task = apps.get_model("annotator", "Task")
    Correction.objects.update(project_id=Subquery(Task.objects.filter(pk=OuterRef("task_id")).values("project_id")[:1]))
    batch = []
    for correction in Correction.objects.only("id", "original_text").iterator(chunk_size=BATCH):
        correction.original_words = len(correction.original_text.split())  # models.caption_words
        batch.append(correction)
        if len(batch) == BATCH:
            Correction.objects.bulk_update(batch, ["original_words"])
            batch = []
    Correction.objects.bulk_update(batch, ["original_words"])


class Migration(migrations.Migration):
    dependencies = [
        ("annotator", "0008_correction_report_columns"),
    ]

    operations = [
        migrations.RunPython(columns_fill, migrations.RunPython.noop),
    ]
