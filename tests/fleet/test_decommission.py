"""Decommissioning an OPA instance: an operator replaces a server, and the old one, switched off,
must stop holding up publishing, rollback, retirement and drift checks, and its tokens must stop
working, while its publications, drift alerts and decisions stay. Re-adding the name brings it
back in service."""
import io
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from core.opa.client import OpaUnreachable, opa_client
from fleet import credentials as opa_credentials
from fleet import drift, instances
from fleet.models import DriftAlert, Environment, OpaCredential, OpaInstance
from fleet.tasks import check_instance_drift
from policies import review, services
from policies.models import Publication, PublishEvent
from tests.factories import DecisionFactory, EnvironmentFactory, OpaInstanceFactory, PolicyFactory
from tests.fleet.test_opa_tokens import bearer, status_report, upload
from tests.policies.test_review import api_for
from tests.support import stack, wait_until


def finished(publication) -> list[Publication]:
    group = Publication.objects.filter(group=publication.group)
    wait_until(lambda: all(p.is_finished for p in group.all()), message=f"the publications of {publication.group}")
    return list(group.select_related("instance").order_by("pk"))


def second_version(policy):
    v1 = policy.latest_version
    return services.save_version(policy, source=v1.source + "\n# v2\n", author=v1.author, message="v2")


# --- Against real OPA servers -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_switched_off_instance_once_decommissioned_blocks_neither_retire_nor_publish_nor_drift(
        opa, celery_worker, make_user, tmp_path, settings):
    admin = make_user("security_admin")
    staging = Environment.objects.create(name="staging")
    live = OpaInstance.objects.create(environment=staging, name="live", url=opa)
    port = stack.free_port()
    doomed_opa = stack.start_opa(tmp_path / "doomed", port, "http://127.0.0.1:9/unused", settings.GAVEL_OPA_TOKEN,
                                 {"instance": "doomed"})
    try:
        doomed = OpaInstance.objects.create(environment=staging, name="doomed", url=f"http://127.0.0.1:{port}")
        policy = PolicyFactory(name="budget")
        v1 = policy.latest_version
        group = finished(services.request_publication(v1, requested_by=admin, environment=staging))
        assert {p.instance.name: p.status for p in group} == {"live": "ok", "doomed": "ok"}
        assert policy.active_version_in(staging) == v1
    finally:
        stack.stop_process(doomed_opa, "the doomed OPA")  # switched off for good

    # In service, the dead server holds retirement up: every instance must answer first.
    with pytest.raises(OpaUnreachable, match="decommission it on the environments page"):
        review.retire(policy, retired_by=admin, reason="unused")

    instances.decommission(doomed, by=admin)

    # A new publish goes to the live instance only, and completes.
    v2 = second_version(policy)
    group = finished(services.request_publication(v2, requested_by=admin, environment=staging))
    assert [(p.instance.name, p.status) for p in group] == [("live", "ok")]
    assert policy.active_version_in(staging) == v2

    # Drift checks leave it out, and one queued before it was decommissioned does nothing.
    assert [i.name for e, i in drift.drift_targets() if e == staging] == ["live"]
    assert check_instance_drift(staging.pk, doomed.pk) == 0
    assert check_instance_drift(staging.pk, live.pk) == 0  # the live one runs v2
    assert not DriftAlert.objects.exists()

    # Retirement no longer waits for it, and removes the policy from the live instance.
    review.retire(policy, retired_by=admin, reason="replaced by budget_v2")
    policy.refresh_from_db()
    assert policy.retired_at is not None
    with opa_client(opa) as opa_at:
        assert opa_at.get_policy("gavel/budget") is None and opa_at.get_policy("gavel_entry/budget") is None
    # Its history stays.
    assert list(doomed.publications.values_list("version__number", "status")) == [(1, "ok")]


@pytest.mark.django_db(transaction=True)
def test_a_publish_waiting_for_a_dead_instance_completes_once_it_is_decommissioned(opa, celery_worker, make_user):
    staging = Environment.objects.create(name="staging")
    live = OpaInstance.objects.create(environment=staging, name="live", url=opa)
    dead = OpaInstance.objects.create(environment=staging, name="dead", url=f"http://127.0.0.1:{stack.free_port()}")
    policy = PolicyFactory(name="budget")
    admin = make_user("security_admin")
    # Made directly (no worker), as request_publication would make them.
    group_id = uuid.uuid4()
    to_live, to_dead = [Publication.objects.create(version=policy.latest_version, requested_by=admin, target_url=i.url,
                                                   environment=staging, instance=i, group=group_id)
                        for i in (live, dead)]
    assert services.attempt_publication(to_live).status == Publication.Status.OK
    with pytest.raises(OpaUnreachable):
        services.attempt_publication(to_dead)
    assert policy.active_version_in(staging) is None  # waiting for the dead one

    instances.decommission(dead, by=admin)

    assert policy.active_version_in(staging) == policy.latest_version
    to_dead.refresh_from_db()
    assert to_dead.status == Publication.Status.FAILED and "decommissioned" in to_dead.detail
    event = PublishEvent.objects.get(action=PublishEvent.Action.PUBLISHED)
    assert opa in event.reason and dead.url not in event.reason
    # The worker's next retry of it finds nothing to do.
    assert services.attempt_publication(to_dead).attempts == to_dead.attempts


# --- Tokens -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_its_tokens_are_refused_once_decommissioned_while_the_other_instances_work(client):
    prod = EnvironmentFactory(name="prod")
    keep, gone = (OpaInstanceFactory(environment=prod, name=name) for name in ("opa-a", "opa-b"))
    _, keep_token = opa_credentials.issue_token(keep)
    _, gone_token = opa_credentials.issue_token(gone)
    assert upload(client, gone_token)[0].status_code == 204

    instances.decommission(gone)

    assert upload(client, gone_token)[0].status_code == 401  # a token copied off the retired box
    assert status_report(client, gone_token, {"instance": "opa-b"}).status_code == 401
    assert upload(client, keep_token)[0].status_code == 204
    assert {c.state for c in gone.credentials.all()} == {OpaCredential.State.REVOKED}
    with pytest.raises(instances.InstanceDecommissioned, match="add it again"):
        opa_credentials.issue_token(gone)


# --- The environments page and the API --------------------------------------------------------


@pytest.fixture
def staging():
    environment = EnvironmentFactory(name="staging")
    OpaInstanceFactory(environment=environment, name="opa-a", url="http://10.0.0.5:8181")
    gone = OpaInstanceFactory(environment=environment, name="opa-b", url="http://10.0.0.6:8181")
    opa_credentials.issue_token(gone)
    return environment


DECOMMISSION = "/environments/staging/instances/opa-b/decommission/"


@pytest.mark.django_db
def test_the_page_decommissions_after_the_name_is_typed_and_lists_it_apart(client, make_user, staging):
    for role in ("policy_author", "auditor"):
        client.force_login(make_user(role))
        assert client.post(DECOMMISSION, {"confirm": "opa-b"}).status_code == 403
        assert 'data-testid="decommission-opa-b"' not in client.get(reverse("fleet:environments")).content.decode()
    admin = make_user("security_admin", username="erin")
    client.force_login(admin)
    assert 'data-testid="decommission-opa-b"' in client.get(reverse("fleet:environments")).content.decode()

    wrong = client.post(DECOMMISSION, {"confirm": "opa-a"}, follow=True).content.decode()
    assert "Type the instance&#x27;s name, opa-b, to decommission it." in wrong
    assert not OpaInstance.objects.decommissioned().exists()

    page = client.post(DECOMMISSION, {"confirm": "opa-b"}, follow=True).content.decode()
    assert "staging/opa-b decommissioned" in page
    gone = OpaInstance.objects.get(name="opa-b")
    assert gone.decommissioned_by == admin and gone.decommissioned_at is not None
    row = page.split('data-testid="decommissioned-instance-opa-b"')[1].split("</tr>")[0]
    assert "erin" in row and f"{gone.decommissioned_at:%Y-%m-%d %H:%M:%S}" in row
    assert 'data-testid="instance-opa-b"' not in page and 'data-testid="instance-opa-a"' in page
    assert "/instances/opa-b/tokens/" not in page and "/instances/opa-b/gavel-token/" not in page  # no token actions
    # A stale form for its tokens is refused with the reason.
    refused = client.post("/environments/staging/instances/opa-b/tokens/", follow=True).content.decode()
    assert "staging/opa-b was decommissioned on" in refused and gone.credentials.count() == 1


@pytest.mark.django_db
def test_re_adding_the_name_brings_it_back_in_service_with_its_history_and_a_new_token(client, make_user, staging):
    gone = OpaInstance.objects.get(name="opa-b")
    _, old_token = opa_credentials.issue_token(gone)
    instances.decommission(gone)
    client.force_login(make_user("security_admin"))

    page = client.post("/environments/staging/instances/", {"name": "opa-b", "url": "http://10.0.0.9:8181"})

    assert page.status_code == 200 and 'data-testid="returning"' in page.content.decode()
    back = OpaInstance.objects.get(name="opa-b")
    assert back.pk == gone.pk and back.decommissioned_at is None and back.url == "http://10.0.0.9:8181"
    new_token = page.content.decode().split('data-testid="new-token">')[1].split("<")[0]
    assert upload(client, new_token)[0].status_code == 204
    assert upload(client, old_token)[0].status_code == 401  # its old tokens stay revoked
    assert "opa-b" in [i.name for i in Environment.objects.get(name="staging").targets()]
    # An instance in service cannot be added twice.
    again = client.post("/environments/staging/instances/", {"name": "opa-b"}, follow=True).content.decode()
    assert "staging already has an instance named opa-b." in again


@pytest.mark.django_db
def test_the_api_decommissions_once_and_shows_who_and_when(make_user, staging):
    admin = make_user("security_admin", username="erin")
    api = api_for(admin)
    assert api_for(make_user("auditor")).post(f"/api/v1{DECOMMISSION}").status_code == 403

    first = api.post(f"/api/v1{DECOMMISSION}")
    again = api.post(f"/api/v1{DECOMMISSION}")

    assert first.status_code == again.status_code == 200
    assert first.json()["decommissioned_by"] == "erin" and first.json()["decommissioned_at"]
    assert again.json()["decommissioned_at"] == first.json()["decommissioned_at"]  # the first time counts
    assert api.post("/api/v1/environments/staging/instances/opa-b/tokens/").status_code == 400
    listed = {i["name"]: i["decommissioned_at"] for i in api.get("/api/v1/environments/staging/").json()["instances"]}
    assert listed["opa-a"] is None and listed["opa-b"] == first.json()["decommissioned_at"]
    back = api.post("/api/v1/environments/staging/instances/", {"name": "opa-b"}, format="json")
    assert back.status_code == 201 and back.json()["instance"]["decommissioned_at"] is None and back.json()["token"]


@pytest.mark.django_db
def test_decisions_it_shipped_stay_searchable_under_its_name(make_user, staging):
    shipped = DecisionFactory(environment="staging", instance="opa-b")
    instances.decommission(OpaInstance.objects.get(name="opa-b"))
    body = api_for(make_user("auditor")).get("/api/v1/decisions/", {"instance": "opa-b"}).json()
    listed = body["results"] if isinstance(body, dict) else body
    assert [d["decision_id"] for d in listed] == [shipped.decision_id]


# --- Side effects: drift alerts, pending publications, pull reports, the last instance ---------


@pytest.mark.django_db
def test_decommissioning_closes_its_drift_alerts_and_forgets_gavels_token_to_it(make_user, staging):
    from fleet import opa_authz

    gone = OpaInstance.objects.get(name="opa-b")
    opa_authz.bootstrap(gone)
    policy = PolicyFactory(name="budget")
    alert = DriftAlert.objects.create(environment=staging, instance=gone, target_url=gone.url, policy=policy,
                                      resource="gavel/budget", expected_hash="a" * 64, escalated=True)

    instances.decommission(gone, by=make_user("security_admin"))

    alert.refresh_from_db()
    gone.refresh_from_db()
    assert alert.resolved_at is not None
    assert (gone.token, gone.token_state) == ("", "")
    with pytest.raises(opa_authz.RotationRefused, match="decommissioned"):
        opa_authz.start_rotation(gone)


@pytest.mark.django_db
def test_an_environment_with_every_instance_decommissioned_refuses_to_publish(make_user):
    lonely = OpaInstanceFactory(environment=EnvironmentFactory(name="staging"), name="opa-a")
    instances.decommission(lonely)
    policy = PolicyFactory(name="budget")
    with pytest.raises(services.PublishRefused, match="staging has no OPA instance in service"):
        services.request_publication(policy.latest_version, requested_by=make_user("security_admin"),
                                     environment=lonely.environment)
    assert not Publication.objects.exists()


@pytest.mark.django_db
def test_a_decommissioned_pull_instance_still_reporting_confirms_nothing(client, make_user):
    edge = EnvironmentFactory(name="edge", delivery=Environment.Delivery.PULL)
    edge.set_bundle_token("edge-bundle-token")
    instances.decommission(OpaInstanceFactory(environment=edge, name="opa-1"))
    policy = PolicyFactory(name="budget")
    publication = services.request_publication(policy.latest_version, requested_by=make_user("security_admin"),
                                               environment=edge)
    report = {"labels": {"instance": "opa-1"}, "bundles": {"gavel": {"active_revision": "budget@1"}}}

    response = client.post(reverse("opa-status"), data=report, content_type="application/json",
                           **bearer("edge-bundle-token"))

    assert response.status_code == 204
    publication.refresh_from_db()
    assert publication.status == Publication.Status.QUEUED  # not confirmed by a server out of service
    reporter = OpaInstance.objects.get(name="opa-1")
    assert reporter.decommissioned_at is not None and reporter.last_status_at is not None  # not re-registered
    client.force_login(make_user("security_admin"))
    assert "still reporting" in client.get(reverse("fleet:environments")).content.decode()


# --- manage.py opa_environment ------------------------------------------------------------------


@pytest.mark.django_db
def test_remove_instance_decommissions_an_instance_that_was_published_to(make_user, staging):
    gone = OpaInstance.objects.get(name="opa-b")
    policy = PolicyFactory(name="budget")
    Publication.objects.create(version=policy.latest_version, target_url=gone.url, environment=staging, instance=gone,
                               status=Publication.Status.OK, requested_by=make_user("security_admin"))
    out = io.StringIO()

    call_command("opa_environment", "staging", "--remove-instance", "opa-b", stdout=out)

    gone.refresh_from_db()
    assert gone.decommissioned_at is not None and gone.publications.count() == 1
    assert "staging/opa-b decommissioned" in out.getvalue()
    assert "instances: opa-a (decommissioned: opa-b)" in out.getvalue()
    with pytest.raises(CommandError, match="staging has no instance named opa-z"):
        call_command("opa_environment", "staging", "--remove-instance", "opa-z", stdout=io.StringIO())
    with pytest.raises(CommandError, match="decommissioned"):
        call_command("opa_environment", "staging", "--instance-token", "opa-b", stdout=io.StringIO())

    call_command("opa_environment", "staging", "--add-instance", "opa-b", "http://10.0.0.9:8181", stdout=out)

    gone.refresh_from_db()
    assert gone.decommissioned_at is None and gone.url == "http://10.0.0.9:8181"
    assert "staging/opa-b is back in service" in out.getvalue()
