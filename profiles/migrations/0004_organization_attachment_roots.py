# Each organization gets attachment roots of its own, inside the server-wide ATTACHMENT_ROOTS.

import os

from django.conf import settings
from django.db import migrations, models


def give_the_only_organization_the_server_roots(apps, schema_editor):
    """A server with one organization keeps saving attachments where it did: that organization
    gets the server-wide roots. With several, nobody can tell which folders were whose, so none
    gets roots (profiles saving attachments then fail with a message to ask the operator)
    until a superuser sets them; `manage.py check --database default` lists such organizations."""
    Organization = apps.get_model("profiles", "Organization")
    organizations = list(Organization.objects.using(schema_editor.connection.alias)[:2])
    roots = [root for root in settings.ATTACHMENT_ROOTS if root and os.path.isabs(root)]
    if len(organizations) == 1 and roots:
        (organization,) = organizations
        organization.attachment_roots = "\n".join(roots)
        organization.save(update_fields=["attachment_roots"])


class Migration(migrations.Migration):

    dependencies = [
        ('profiles', '0003_connection_kind_label'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='attachment_roots',
            field=models.TextField(blank=True, help_text="Folders on the share, one full path per line, under which this organization's profiles may save attachments. Each lies inside the server's ATTACHMENT_ROOTS and apart from every other organization's roots. Only a superuser sets them.", verbose_name='attachment roots'),
        ),
        migrations.AlterField(
            model_name='mailsettings',
            name='attachment_directory',
            field=models.CharField(blank=True, help_text="A folder on the share, inside one of the organization's attachment roots.", max_length=1000, verbose_name='attachment directory'),
        ),
        migrations.RunPython(give_the_only_organization_the_server_roots, migrations.RunPython.noop),
    ]
