"""The CRM change cursor becomes opaque text: each CRM backend encodes its own position."""

from django.db import migrations, models


def to_text(apps, schema_editor):
    FolderState = apps.get_model("engine", "FolderState")
    # "0" was "never read", which is "" now: a first run must still know itself as one.
    FolderState.objects.filter(crm_cursor="0").update(crm_cursor="")


def to_number(apps, schema_editor):
    FolderState = apps.get_model("engine", "FolderState")
    FolderState.objects.filter(crm_cursor="").update(crm_cursor="0")


class Migration(migrations.Migration):

    dependencies = [
        ("engine", "0009_labels_in_czech"),
    ]

    operations = [
        migrations.AlterField(
            model_name="folderstate",
            name="crm_cursor",
            field=models.CharField(blank=True, default="", max_length=2000),
        ),
        migrations.RunPython(to_text, to_number),
    ]
