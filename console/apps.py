from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The administrator's screens: the Django admin for organizations, connections and sync
    profiles, the folder, category and attachment pickers, and "Test connection".

    The models stay in `profiles`, so their admin URLs, permissions and template paths keep
    the `profiles` label; this app has no models (and so no name in the admin index). It is
    apart from `profiles` because its screens reach a mailbox and the share through the engine
    and the e-mail import, which read the configuration models: those must not import back.
    """

    name = "console"
