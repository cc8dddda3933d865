from django.db import migrations, models


class Migration(migrations.Migration):
    """Folders synced before imports and matches were stamped are stamped once (False for
    them); a folder's state made from now on starts True."""

    dependencies = [("engine", "0006_pending_creations")]

    operations = [
        migrations.AddField(model_name="folderstate", name="stamps_checked",
                            field=models.BooleanField(default=False)),
        migrations.AlterField(model_name="folderstate", name="stamps_checked",
                              field=models.BooleanField(default=True)),
    ]
