"""Production security settings: `check --deploy`, headers, content security policy, cookies,
and login throttling (django-axes)."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.views.defaults import server_error

from tests.factories import PolicyFactory

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_production_settings():
    """A fresh process, because settings are read from the environment once, at import."""
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
                                                            "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
                                                            "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    env.update({"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "gavel.example.com",
                "CSRF_TRUSTED_ORIGINS": "https://gavel.example.com", "SECURE_SSL_REDIRECT": "1",
                "GAVEL_OPA_TOKEN": secrets.token_urlsafe(32)})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_pages_carry_the_security_headers_and_a_strict_csp(client, make_user):
    client.force_login(make_user("auditor"))
    response = client.get("/audit/", secure=True)
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    csp = {d.split()[0]: d.split()[1:] for d in response["Content-Security-Policy"].split("; ")}
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert "unsafe" not in " ".join(csp["script-src"] + csp["style-src"] + csp["default-src"])
    assert csp["style-src-attr"] == ["'unsafe-inline'"]  # style attributes only (plotly.js)
    # htmx must not inject its indicator <style>, which this CSP would block.
    assert '"includeIndicatorStyles": false' in response.content.decode()
    if not settings.DEBUG:
        assert int(response["Strict-Transport-Security"].split("max-age=")[1].split(";")[0]) >= 31536000


@pytest.mark.django_db
def test_api_answers_carry_the_headers_too(client, make_user):
    response = client.get("/api/v1/policies/")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Token")
    assert response["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in response


@pytest.mark.django_db
@pytest.mark.skipif(settings.DEBUG, reason="secure cookies are a production setting")
def test_session_and_csrf_cookies_are_secure_and_http_only(client, make_user):
    make_user("auditor", username="ana")
    form = client.get("/login/")
    csrf = form.cookies[settings.CSRF_COOKIE_NAME]
    assert csrf["secure"] and csrf["httponly"] and csrf["samesite"] == "Lax"
    response = client.post("/login/", {"username": "ana", "password": "correct horse battery staple"})
    assert response.status_code == 302
    session = response.cookies[settings.SESSION_COOKIE_NAME]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"


@pytest.mark.django_db
def test_login_is_throttled_per_username_and_address(client, make_user):
    make_user("auditor", username="ana")
    make_user("auditor", username="bob")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/login/", {"username": "ana", "password": "wrong"}).status_code == 200
    locked = client.post("/login/", {"username": "ana", "password": "wrong"})
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    # Even the right password is refused while locked...
    right = client.post("/login/", {"username": "ana", "password": "correct horse battery staple"})
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    # ...but another account from the same address is not.
    other = client.post("/login/", {"username": "bob", "password": "correct horse battery staple"})
    assert other.status_code == 302 and other.url == "/"


@pytest.mark.django_db
def test_a_successful_login_resets_the_count(client, make_user):
    make_user("auditor", username="ana")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "ana", "password": "wrong"})
    assert client.post("/login/", {"username": "ana", "password": "correct horse battery staple"}).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post("/login/", {"username": "ana", "password": "wrong"}).status_code == 200


@pytest.mark.browser
def test_no_page_violates_the_csp_in_a_browser(page, live_server, make_user, transactional_db):
    """Every main page, in Chromium, with the CSP enforced: no violation is reported."""
    make_user("security_admin", username="sam")
    author = make_user("policy_author", username="pat")
    PolicyFactory(name="budget", author=author)
    violations = []
    page.on("console", lambda m: violations.append(f"{page.url}: {m.text[:160]}")
            if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: violations.append(f"{page.url}: {e}"))
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    for path in ["/", "/policies/", "/policies/budget/", "/policies/budget/v1/", "/policies/budget/v1/summary/",
                 "/audit/", "/audit/dashboard/", "/approvals/", "/rollout/", "/exceptions/", "/exceptions/new/",
                 "/environments/"]:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status < 400, path
        page.wait_for_load_state("networkidle")
    assert not violations, violations


def test_a_server_error_is_answered_in_the_consoles_words(rf):
    """Django renders 500.html with no request and no context: it must stand on its own."""
    response = server_error(rf.get("/audit/"))
    page = response.content.decode()
    assert response.status_code == 500 and 'data-testid="server-error"' in page
    assert "Gavel could not show this page" in page and "/static/gavel/gavel.css" in page
