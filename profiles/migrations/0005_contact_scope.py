"""The contact scope: by default a profile now holds its CRM user's persons (owned or assigned),
where before a profile without a classification branch held every person of its organization.

The upgrade removes no contact from anyone's mailbox: a profile with a branch keeps it (scope
"branch"); for the others, every person their mailbox holds (a link not given up) is assigned
to their CRM user, and a person created from a mailbox gets that mailbox's CRM user as owner.
No person gets a new revision: to the sync nothing has changed.
"""

import django.db.models.deletion
from django.db import migrations, models

OWNED, BRANCH = "owned", "branch"


def keep_what_mailboxes_hold(apps, schema_editor):
    ContactSettings = apps.get_model("profiles", "ContactSettings")
    Link = apps.get_model("engine", "Link")
    # Historical models: plain managers and no signals, so nothing here is journalled as a
    # change of the persons.
    Person = apps.get_model("crm", "Person")
    Assigned = Person.assigned_users.through
    ContactSettings.objects.filter(classification_node__isnull=False).update(scope=BRANCH)
    owned_scope = set(ContactSettings.objects.filter(scope=OWNED)
                      .values_list("profile_id", flat=True))
    links = list(Link.objects.filter(agenda="contacts").exclude(state="unlinked")
                 .values_list("profile_id", "profile__crm_user_id", "crm_key", "remote_id"))
    keys = sorted({int(key) for _, _, key, _ in links if key.isdigit()})
    origins: dict[int, str] = {}
    for start in range(0, len(keys), 500):
        origins.update(Person.objects.filter(pk__in=keys[start:start + 500])
                       .values_list("pk", "origin_item_id"))
    owners: dict[int, int] = {}
    assigned: set[tuple[int, int]] = set()
    for profile_id, crm_user_id, crm_key, remote_id in links:
        person_id = int(crm_key) if crm_key.isdigit() else None
        if person_id not in origins:
            continue   # gone from the CRM meanwhile
        if origins[person_id] and origins[person_id] == remote_id:
            owners.setdefault(person_id, crm_user_id)   # created from this mailbox
        elif profile_id in owned_scope:
            assigned.add((person_id, crm_user_id))
    by_owner: dict[int, list[int]] = {}
    for person_id, crm_user_id in owners.items():
        by_owner.setdefault(crm_user_id, []).append(person_id)
    for crm_user_id, person_ids in by_owner.items():
        for start in range(0, len(person_ids), 500):
            Person.objects.filter(pk__in=person_ids[start:start + 500]).update(
                owner_id=crm_user_id)
    Assigned.objects.bulk_create(
        [Assigned(person_id=p, crmuser_id=u) for p, u in sorted(assigned)
         if owners.get(p) != u],
        ignore_conflicts=True, batch_size=500)


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0004_person_owner'),
        ('engine', '0003_run_progress'),
        ('profiles', '0004_organization_attachment_roots'),
    ]

    operations = [
        migrations.AddField(
            model_name='contactsettings',
            name='scope',
            field=models.CharField(choices=[('owned', "The persons the profile's CRM user owns or is assigned to"), ('organization', 'The whole organization'), ('branch', 'A classification branch')], default='owned', help_text='A person leaving the chosen ones stops being synced; it is not deleted.', max_length=20, verbose_name='which CRM persons'),
        ),
        migrations.AddField(
            model_name='syncprofile',
            name='mass_create_min_items',
            field=models.PositiveIntegerField(default=50, help_text="A run, other than the profile's first, that would create more items than this in the CRM or in Exchange waits for an administrator's approval.", verbose_name='hold creations of more than (items)'),
        ),
        migrations.AlterField(
            model_name='contactsettings',
            name='classification_node',
            field=models.ForeignKey(blank=True, help_text='With “A classification branch”: the persons of this node and its sub-nodes are synced.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='crm.classificationnode', verbose_name='CRM classification branch'),
        ),
        migrations.RunPython(keep_what_mailboxes_hold, migrations.RunPython.noop),
    ]
