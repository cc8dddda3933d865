"""Smoke test of a production installation: the web unit's gunicorn with production settings.

Requests go straight to gunicorn with the headers nginx.conf adds, as if a browser came
through nginx over TLS (test_nginx.py puts the real nginx in front when it is installed).
gunicorn serves no static files — nginx does, from STATIC_ROOT — so what is checked of them
here is that the pages link into what collectstatic collected.
"""

from __future__ import annotations

from tests.deploy.installation import HOST, Installation, Response, sign_in, wait_for_log

# What nginx.conf adds to every request it passes on, for a browser on HTTPS.
THROUGH_NGINX = {"Host": HOST, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def _collected(installation: Installation, page: Response, static_path: str) -> bool:
    """The page links to `static_path` and collectstatic put that file where nginx looks."""
    return (f'"/static/{static_path}"' in page.text
            and (installation.static_root / static_path).is_file())


def test_the_login_page_is_served_with_its_form_and_a_secure_csrf_cookie(
    installation: Installation,
) -> None:
    page = installation.request("GET", "/login/", THROUGH_NGINX)

    assert page.status == 200, page.text[:2000]
    assert '<form method="post" action="/login/"' in page.text
    assert 'name="username"' in page.text and 'name="password"' in page.text
    assert 'name="csrfmiddlewaretoken"' in page.text
    assert "csrftoken" in page.cookies
    assert page.cookies["csrftoken"]["secure"], "the CSRF cookie lacks the Secure flag"
    assert _collected(installation, page, "portal/portal.css")


def test_the_admin_asks_to_sign_in_and_its_styles_were_collected(
    installation: Installation,
) -> None:
    index = installation.request("GET", "/admin/", THROUGH_NGINX)
    assert index.status == 302
    assert index.headers["Location"] == "/admin/login/?next=/admin/"

    login = installation.request("GET", "/admin/login/?next=/admin/", THROUGH_NGINX)
    assert login.status == 200, login.text[:2000]
    assert "Exchange ↔ CRM sync server" in login.text
    assert _collected(installation, login, "admin/css/base.css")


def test_the_administrator_signs_in_and_gets_a_secure_session(
    installation: Installation,
) -> None:
    signed_in = sign_in(installation.request, THROUGH_NGINX, installation.admin_password)

    assert signed_in.status == 302, signed_in.text[:2000]
    assert signed_in.headers["Location"] == "/"
    session = signed_in.cookies["sessionid"]
    assert session["secure"], "the session cookie lacks the Secure flag"
    assert session["httponly"]
    dashboard = installation.request(
        "GET", "/", {**THROUGH_NGINX, "Cookie": f"sessionid={session.value}"})
    assert dashboard.status == 200, dashboard.text[:2000]
    assert 'action="/logout/"' in dashboard.text


def test_a_wrong_password_is_refused_with_the_form_again(installation: Installation) -> None:
    refused = sign_in(installation.request, THROUGH_NGINX, "not-the-password")
    assert refused.status == 200
    assert 'role="alert"' in refused.text
    assert "sessionid" not in refused.cookies


def test_a_request_for_another_host_is_refused(installation: Installation) -> None:
    response = installation.request("GET", "/login/", {**THROUGH_NGINX, "Host": "evil.example"})
    assert response.status == 400


def test_debug_is_off_and_gunicorn_serves_no_static_files(installation: Installation) -> None:
    missing = installation.request("GET", "/no-such-page/", THROUGH_NGINX)
    assert missing.status == 404
    assert "URLconf" not in missing.text   # Django's debug page lists the URL patterns
    # Without DEBUG, Django serves no static files: nginx must (location /static/).
    assert (installation.static_root / "portal" / "portal.css").is_file()
    assert installation.request("GET", "/static/portal/portal.css", THROUGH_NGINX).status == 404


def test_plain_http_is_sent_to_https(installation: Installation) -> None:
    response = installation.request("GET", "/login/", {**THROUGH_NGINX,
                                                       "X-Forwarded-Proto": "http"})
    assert response.status == 301
    assert response.headers["Location"] == f"https://{HOST}/login/"


def test_the_health_check_answers_a_local_probe_over_plain_http(
    installation: Installation,
) -> None:
    # As docs/deploy.md has a monitoring agent on the machine ask it: no nginx, no TLS.
    health = installation.request("GET", "/healthz", {"Host": HOST})
    assert health.status == 503   # no worker runs in this installation
    assert '"worker"' in health.text


def test_gunicorn_logs_each_request_for_the_journal(installation: Installation) -> None:
    installation.request("GET", "/login/?from=the-log-test", THROUGH_NGINX)
    # The access log line is written after the answer is sent: wait for it.
    wait_for_log(installation.process, installation.log, r"GET /login/\?from=the-log-test")
