# A CRM e-mail is its Message-ID and a fingerprint of its sender, date and subject: a different
# message reusing a Message-ID becomes an e-mail of its own instead of being merged.

from django.db import migrations, models

from crm.models import email_fingerprint

BATCH = 1000


def fingerprint_the_filed_emails(apps, schema_editor):
    """E-mails filed before get the fingerprint of what they hold (the values an import stores),
    so that their messages, read again in another mailbox, are still found as them."""
    Email = apps.get_model("crm", "Email")
    emails = Email.objects.using(schema_editor.connection.alias)
    batch = []
    for email in emails.only("pk", "sender_address", "sent_at", "subject").iterator(BATCH):
        email.fingerprint = email_fingerprint(email.sender_address, email.sent_at, email.subject)
        batch.append(email)
        if len(batch) == BATCH:
            emails.bulk_update(batch, ["fingerprint"])
            batch = []
    emails.bulk_update(batch, ["fingerprint"])


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0002_initial'),
        ('profiles', '0004_organization_attachment_roots'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='email',
            name='unique_message_id_per_organization',
        ),
        migrations.AddField(
            model_name='email',
            name='fingerprint',
            field=models.CharField(blank=True, editable=False, help_text='Of its sender, date and subject: tells apart different messages that share a Message-ID.', max_length=64, verbose_name='fingerprint'),
        ),
        migrations.AddConstraint(
            model_name='email',
            constraint=models.UniqueConstraint(condition=models.Q(('message_id__isnull', False)), fields=('organization', 'message_id', 'fingerprint'), name='unique_message_per_organization'),
        ),
        # Last: the rows are unique by their Message-ID alone until then, so by the new key too.
        migrations.RunPython(fingerprint_the_filed_emails, migrations.RunPython.noop),
    ]
