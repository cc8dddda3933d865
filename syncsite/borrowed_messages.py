"""Messages of Django's admin and of django-q2 that their own Czech catalogues lack.

Listed here so that `makemessages` keeps them in this project's catalogue, which Django
reads before the packages' own (LOCALE_PATHS): the admin index's table headers and the
background tasks' names then read in Czech too. Nothing imports this module.
"""

from django.utils.translation import gettext_noop

MESSAGES = [
    # django/contrib/admin/templates/admin/app_list.html (Django 5.2)
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    gettext_noop("Model name"),
    # django/contrib/admin/helpers.py: Django's Czech "Přidat %(verbose_name)s" puts the
    # capitalised nominative ("Přidat Poštovní složka") where Czech needs the accusative;
    # a colon lets the name stand as it is.
    gettext_noop("Add another %(verbose_name)s"),
    # django/contrib/admin/templates/admin/auth/user/add_form.html
    gettext_noop("After you’ve created a user, you’ll be able to edit more user options."),
    # django_q/models.py
    gettext_noop("Task"),
    gettext_noop("Tasks"),
    gettext_noop("Successful task"),
    gettext_noop("Successful tasks"),
    gettext_noop("Failed task"),
    gettext_noop("Failed tasks"),
    gettext_noop("Scheduled task"),
    gettext_noop("Scheduled tasks"),
    gettext_noop("Queued task"),
    gettext_noop("Queued tasks"),
]
