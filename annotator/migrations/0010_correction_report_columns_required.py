"""The report columns of 0008, filled by 0009, become required; the report's index-only scan gets its index."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotator", "0009_correction_report_columns_fill"),
    ]

    operations = [
        migrations.AlterField(
            model_name="correction",
            name="original_words",
            field=models.PositiveIntegerField(help_text="caption_words(original_text)"),
        ),
        migrations.AlterField(
            model_name="correction",
            name="project",
            field=models.ForeignKey(
                help_text="the task's project",
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotator.project",
            ),
        ),
        migrations.AddIndex(
            model_name="correction",
            index=models.Index(
                fields=["project", "annotator", "submitted_at", "id"],
                include=("arm", "active_seconds", "original_words", "task"),
                name="correction_report_order",
            ),
        ),
    ]
