"""The group `annotator`: its members may work on the projects they belong to (admins are staff users)."""

from django.db import migrations


def annotator_group_create(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="annotator")


class Migration(migrations.Migration):
    dependencies = [("annotator", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(annotator_group_create, migrations.RunPython.noop)]
