"""Security admins manage people and their roles in the console; the activity log keeps it."""
import pytest
from django.contrib.auth.models import User

from activity import entries

pytestmark = pytest.mark.django_db


def test_an_admin_adds_a_user_whose_password_is_shown_once(client, make_user):
    admin = make_user("security_admin", username="sam")
    client.force_login(admin)
    response = client.post("/users/new/", {"username": "rita", "email": "", "roles": ["reviewer"]})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password = response.context["password"]
    rita = User.objects.get(username="rita")
    assert rita.check_password(password) and [g.name for g in rita.groups.all()] == ["reviewer"]
    assert password not in client.get(f"/users/{rita.pk}/").content.decode()
    assert "taken" in client.post("/users/new/", {"username": "RITA"}).content.decode()

    client.post(f"/users/{rita.pk}/", {"roles": ["auditor"]})
    client.post(f"/users/{rita.pk}/active/", {"active": "no"})
    rita.refresh_from_db()
    assert not rita.is_active and [g.name for g in rita.groups.all()] == ["auditor"]

    logged = entries.rows(entries.log())
    assert {(row.model, row.action, row.actor) for row in logged} >= {
        ("user", "create", "sam"), ("user", "update", "sam"), ("user-role", "add", "sam"),
        ("user-role", "remove", "sam")}
    assert all("password" not in change.field for row in logged for change in row.changes)


def test_nobody_changes_their_own_roles_or_locks_themselves_out(client, make_user):
    admin = make_user("security_admin")
    client.force_login(admin)
    assert 'data-testid="own-account"' in client.get(f"/users/{admin.pk}/").content.decode()
    refused = client.post(f"/users/{admin.pk}/", {"roles": []}, follow=True).content.decode()
    assert "Nobody changes their own roles" in refused
    client.post(f"/users/{admin.pk}/active/", {"active": "no"})
    admin.refresh_from_db()
    assert admin.is_active and admin.groups.filter(name="security_admin").exists()
