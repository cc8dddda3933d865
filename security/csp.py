"""A Content-Security-Policy header on the user pages.

The user pages load their script and stylesheet from /static/ and have no inline script or
style, so the policy allows nothing but this site's own files: an injected <script> or
style attribute does not run. The Django admin is left out: its templates (and the sync
profile page's own) still use inline styles, and it is reached by administrators only.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

USER_PAGES_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def _is_admin(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return "admin" in match.namespaces
    # Not resolved (a 404, or an answer from middleware before the view): judge by the path.
    return request.path_info.startswith("/admin/")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response and not _is_admin(request):
            response[HEADER] = USER_PAGES_POLICY
        return response
