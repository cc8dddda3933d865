"""A CRM connection per organization: every existing organization keeps syncing with the
built-in store, now named by its connection (kind "builtin", no settings, no secrets)."""

import django.db.models.deletion
from django.db import migrations, models


def connect_to_builtin_store(apps, schema_editor):
    Organization = apps.get_model("profiles", "Organization")
    CrmConnection = apps.get_model("profiles", "CrmConnection")
    CrmConnection.objects.bulk_create(
        CrmConnection(organization_id=pk, kind="builtin", settings={})
        for pk in Organization.objects.values_list("pk", flat=True))


class Migration(migrations.Migration):

    dependencies = [
        ('profiles', '0007_labels_in_czech'),
    ]

    operations = [
        migrations.CreateModel(
            name='CrmConnection',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(default='builtin', max_length=100, verbose_name='kind of CRM')),
                ('settings', models.JSONField(blank=True, default=dict, verbose_name='settings')),
                ('secret_token', models.TextField(blank=True, editable=False)),
                ('created', models.DateTimeField(auto_now_add=True, verbose_name='created')),
                ('updated', models.DateTimeField(auto_now=True, verbose_name='updated')),
                ('organization', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='crm_connection', to='profiles.organization', verbose_name='organization')),
            ],
            options={
                'verbose_name': 'CRM connection',
                'verbose_name_plural': 'CRM connections',
                'ordering': ['organization__name'],
            },
        ),
        migrations.RunPython(connect_to_builtin_store, migrations.RunPython.noop),
    ]
