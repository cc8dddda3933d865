"""The user pages, at the site's root (the admin stays under /admin/)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from portal import dashboard, duplicates, history, settings_page
from security.forms import ThrottledAuthenticationForm

app_name = "portal"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("status/", dashboard.status, name="status"),
    path("profiles/<int:pk>/sync-now/", dashboard.sync_now, name="sync_now"),
    path("profiles/<int:pk>/analyze/", dashboard.analyze, name="analyze"),
    path("history/", history.history, name="history"),
    path("history/export.csv", history.history_csv, name="history_csv"),
    path("runs/<int:pk>/", history.run_detail, name="run"),
    path("runs/<int:pk>/items.csv", history.run_items_csv, name="run_items_csv"),
    path("duplicates/", duplicates.duplicates, name="duplicates"),
    path("duplicates/export.csv", duplicates.duplicates_csv, name="duplicates_csv"),
    path("duplicates/decide/", duplicates.decide_selected, name="decide_selected"),
    path("duplicates/<int:pk>/link/", duplicates.link, name="link"),
    path("duplicates/<int:pk>/keep-apart/", duplicates.keep_apart, name="keep_apart"),
    path("my-settings/", settings_page.my_settings, name="my_settings"),
    path("my-settings/<int:pk>/", settings_page.save, name="save_own_settings"),
    path("my-settings/<int:pk>/folders/<str:kind>/", settings_page.folders, name="own_folders"),
    # Signing in and out and the password, with Django's views and our own templates.
    path("login/", auth_views.LoginView.as_view(
        template_name="portal/login.html", authentication_form=ThrottledAuthenticationForm,
        redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", auth_views.PasswordChangeView.as_view(
        template_name="portal/password_change.html",
        success_url=reverse_lazy("portal:password_changed")), name="password_change"),
    path("password/changed/", auth_views.PasswordChangeDoneView.as_view(
        template_name="portal/password_changed.html"), name="password_changed"),
]
