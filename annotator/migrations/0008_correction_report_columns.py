"""Corrections carry their project and the word count of their original caption, for the speed-up report.

Added nullable here, filled by 0009 and made required by 0010: one step per migration, because
PostgreSQL refuses to index or alter a table whose rows the same transaction updated under a
deferred foreign key.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotator", "0007_job_training"),
    ]

    operations = [
        migrations.AddField(
            model_name="correction",
            name="original_words",
            field=models.PositiveIntegerField(help_text="caption_words(original_text)", null=True),
        ),
        migrations.AddField(
            model_name="correction",
            name="project",
            field=models.ForeignKey(
                help_text="the task's project",
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotator.project",
            ),
        ),
    ]
