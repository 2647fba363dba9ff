"""The activity log: every change made through the console or the API is kept with who made it,
when, and each field before -> after; Postgres itself refuses to change or delete an entry."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from activity import entries
from activity.models import CanarySettingEvent, KillSwitchChangeEvent, PolicyExceptionEvent, UserRoleEvent
from console.celery import app as celery_app
from fleet import credentials as opa_credentials
from fleet.models import Environment, OpaInstance
from rollout import canary
from rollout import exceptions as policy_exceptions
from rollout import services as rollout_services
from rollout.models import KillSwitchChange, PolicyException
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending_exception(make_user):
    return policy_exceptions.request_exception(
        policy=PolicyFactory(name="budget"), environment=Environment.objects.default(),
        match=[{"field": "user.id", "value": "dana"}], justification="month end", ticket="SEC-1",
        expires_at=timezone.now() + timedelta(days=3), requested_by=make_user("security_admin"),
    )


def updates_of(obj):
    return [row for row in entries.rows(entries.log().tracks(obj)) if row.action == "update"]


def changed(row):
    return {change.field: (change.before, change.after) for change in row.changes}


def test_a_change_through_a_page_is_logged_with_its_actor_and_before_after(client, make_user, pending_exception):
    admin = make_user("security_admin", username="erin")
    client.force_login(admin)

    client.post(f"/exceptions/{pending_exception.pk}/approve/", {"comment": "ticket checked", "confirmed": "yes"})

    [row] = updates_of(pending_exception)
    assert row.actor == "erin" and row.via == f"/exceptions/{pending_exception.pk}/approve/"
    approved = PolicyException.objects.get(pk=pending_exception.pk)
    assert changed(row)["approved_by_id"] == (None, f"erin (#{admin.pk})")
    assert changed(row)["approved_at"][0] is None and changed(row)["approved_at"][1]
    assert set(changed(row)) == {"approved_by_id", "approved_at", "decision_comment"}
    assert {c.label for c in row.changes} >= {"approved by", "decision comment"}
    assert approved.approved_by == admin


def test_a_change_through_the_api_with_a_token_is_logged_with_the_tokens_user(make_user, pending_exception):
    admin = make_user("security_admin", username="frank")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")

    policy_exceptions.approve_exception(pending_exception, comment="ok", approved_by=UserFactory(role="security_admin"))
    assert api.post(f"/api/v1/exceptions/{pending_exception.pk}/revoke/", {"reason": "incident over"},
                    format="json").status_code == 200

    row = updates_of(pending_exception)[0]  # newest first
    assert changed(row)["revoked_by_id"] == (None, f"frank (#{admin.pk})")
    assert changed(row)["revoke_reason"] == ("", "incident over")
    assert row.actor == "frank"
    assert row.via == f"/api/v1/exceptions/{pending_exception.pk}/revoke/"
    before, after = changed(row)["revoked_at"]
    assert before is None and after


def test_a_role_change_is_logged_as_a_link_added_and_removed(make_user):
    user = make_user(username="gina")
    reviewer = Group.objects.get(name="reviewer")

    user.groups.add(reviewer)
    user.groups.remove(reviewer)

    rows = entries.rows(entries.log().across(UserRoleEvent).filter(pgh_data__user_id=user.pk))
    assert [row.action for row in rows] == ["remove", "add"]  # newest first
    assert changed(rows[1])["group_id"] == (None, f"Reviewer (#{reviewer.pk})")  # the role's label
    assert changed(rows[1])["user_id"] == (None, f"gina (#{user.pk})")
    assert changed(rows[0])["group_id"] == (f"Reviewer (#{reviewer.pk})", None)


def test_a_change_a_worker_makes_names_the_task():
    @celery_app.task(name="tests.activity.engage_kill_switch")
    def engage_kill_switch(user_id):
        KillSwitchChange.objects.create(environment=Environment.objects.default(), engaged=True,
                                        changed_by_id=user_id, reason="drift escalated")

    admin = UserFactory(role="security_admin")
    engage_kill_switch.apply(args=[admin.pk])

    [row] = entries.rows(entries.log().across(KillSwitchChangeEvent))
    assert row.actor == "" and row.via == "task tests.activity.engage_kill_switch"
    assert row.actor_label == "Gavel's worker (tests.activity.engage_kill_switch)"
    assert changed(row)["reason"] == (None, "drift escalated")
    assert changed(row)["engaged"] == (None, True) and row.object == Environment.objects.default().name


def test_a_rollout_change_reads_as_before_and_after_of_the_same_rollout(make_user):
    admin = make_user("security_admin", username="sam")
    policy, environment = PolicyFactory(name="budget"), Environment.objects.default()
    rollout_services.change_rollout(policy, environment, canary.Rollout(mode="dry-run", enforce_percentage=75),
                                    changed_by=admin, reason="start")
    rollout_services.change_rollout(policy, environment, canary.Rollout(mode="dry-run", enforce_percentage=50),
                                    changed_by=admin, reason="too many denials")
    newest = entries.rows(entries.log().across(CanarySettingEvent))[0]
    assert newest.action == "change" and newest.object == f"budget in {environment.name}"
    assert changed(newest) == {"enforce_percentage": (75, 50), "reason": (None, "too many denials")}
    assert [c.label for c in newest.changes] == ["enforce percentage", "reason"]
    assert (entries.shown(75, "enforce_percentage"), entries.shown(True, "engaged")) == ("75 %", "engaged")


def test_secrets_never_reach_the_log(make_user):
    environment = Environment.objects.default()
    environment.set_bundle_token("bundle-secret")
    OpaInstance.objects.create(environment=environment, name="opa-a", url="http://10.0.0.5:8181", token="opa-secret")
    make_user(username="hank", password="a password nobody logs")

    with connection.cursor() as cursor:
        cursor.execute("SELECT string_agg(row_to_json(e)::text, ' ') FROM activity_environmentevent e")
        environments = cursor.fetchone()[0] or ""
        cursor.execute("SELECT string_agg(row_to_json(e)::text, ' ') FROM activity_opainstanceevent e")
        instances = cursor.fetchone()[0]
        cursor.execute("SELECT string_agg(row_to_json(e)::text, ' ') FROM activity_userevent e")
        users = cursor.fetchone()[0]
    assert "opa-a" in instances and "opa-secret" not in instances
    assert '"token"' not in instances and '"other_token"' not in instances  # only the rotation's state and time
    assert "bundle_token" not in environments
    assert "hank" in users and "password" not in users


def test_decommissioning_an_instance_is_logged_with_who_and_when_and_its_revoked_token(client, make_user):
    instance = OpaInstance.objects.create(environment=Environment.objects.default(), name="opa-b",
                                          url="http://10.0.0.6:8181")
    credential, _ = opa_credentials.issue_token(instance)
    admin = make_user("security_admin", username="erin")
    client.force_login(admin)

    client.post(f"/environments/{instance.environment.name}/instances/opa-b/decommission/", {"confirm": "opa-b"})

    [row] = updates_of(instance)
    assert row.actor == "erin" and row.via.endswith("/instances/opa-b/decommission/")
    assert changed(row)["decommissioned_by_id"] == (None, f"erin (#{admin.pk})")
    assert changed(row)["decommissioned_at"][0] is None and changed(row)["decommissioned_at"][1]
    [revoked] = updates_of(credential)
    assert changed(revoked)["revoked_by_id"] == (None, f"erin (#{admin.pk})")


def test_the_database_refuses_to_change_or_delete_an_entry(pending_exception):
    event = PolicyExceptionEvent.objects.get(pgh_obj=pending_exception, pgh_label="create")

    for attempt in (lambda: PolicyExceptionEvent.objects.filter(pk=event.pk).update(ticket="SEC-666"),
                    lambda: PolicyExceptionEvent.objects.filter(pk=event.pk).delete(),
                    lambda: event.delete()):
        with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
            attempt()
    assert PolicyExceptionEvent.objects.get(pk=event.pk).ticket == "SEC-1"


def test_the_database_refuses_to_truncate_the_log(pending_exception):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        # The production default: only the test suite's flush may truncate (tests/conftest.py).
        cursor.execute("SELECT set_config('gavel.activity_truncate', '', true)")
        cursor.execute("TRUNCATE activity_policyexceptionevent")
    assert PolicyExceptionEvent.objects.filter(pgh_obj=pending_exception).exists()
