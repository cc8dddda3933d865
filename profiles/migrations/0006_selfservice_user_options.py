"""Which options of their own profiles an organization's users may change themselves ("My sync
settings"). None for every organization, so nothing changes until an administrator ticks some.
"""

import profiles.models.self_service
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('profiles', '0005_contact_scope'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='self_service',
            field=profiles.models.self_service.UserOptionsField(blank=True, default=list, help_text="The options each user may change on their own profile's page, “My sync settings”, with the same checks as here. None ticked: only administrators change profiles. Every change a user makes is recorded in the audit log.", verbose_name='users may change'),
        ),
    ]
