"""Environments with several OPA instances, drift and its escalation, against real OPA servers."""
import pytest
from django.urls import reverse
from django.utils import timezone

from core.opa.client import opa_client
from fleet import drift
from fleet.models import DriftAlert, Environment, OpaInstance
from fleet.tasks import check_instance_drift
from policies import services
from policies.models import Publication, PublishEvent
from rollout import runtime
from rollout.entrypoint import entry_source
from tests.factories import PolicyFactory
from tests.fleet.support import WebhookReceiver, extra_opa, forget_gavel_modules
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def wait_finished(publication):
    wait_until(lambda: Publication.objects.get(pk=publication.pk).is_finished, message=f"publication {publication.pk}")
    publication.refresh_from_db()
    return publication


@pytest.fixture
def second_opa(opa, tmp_path):
    with extra_opa(tmp_path, "http://127.0.0.1:9/unused", {"instance": "second"}) as url:
        yield url


@pytest.fixture
def webhook(settings):
    receiver = WebhookReceiver()
    settings.GAVEL_DRIFT_WEBHOOK_URL = receiver.url
    yield receiver
    receiver.close()


def test_publishing_to_an_environment_reaches_every_instance(opa, second_opa, celery_worker, make_user, client):
    staging = Environment.objects.create(name="staging")
    OpaInstance.objects.create(environment=staging, name="first", url=opa)
    OpaInstance.objects.create(environment=staging, name="second", url=second_opa)
    policy = PolicyFactory(name="budget")
    version = policy.latest_version

    first = services.request_publication(version, requested_by=make_user("security_admin"), environment=staging)

    group = Publication.objects.filter(group=first.group).order_by("pk")
    assert [p.instance.name for p in group] == ["first", "second"]
    for publication in group:
        assert wait_finished(publication).status == Publication.Status.OK, publication.detail
    for url in (opa, second_opa):
        with opa_client(url) as opa_at:
            assert opa_at.get_policy("gavel/budget")["raw"] == version.source
            assert opa_at.get_policy("gavel_entry/budget")["raw"] == entry_source(version)
            # the runtime config went to both instances too
            wait_until(lambda: opa_at.get_data("gavel_config/policies/budget") is not None, message="gavel_config")
    assert policy.active_version_in(staging) == version
    event = PublishEvent.objects.get(policy=policy, action=PublishEvent.Action.PUBLISHED)
    assert opa in event.reason and second_opa in event.reason

    client.force_login(make_user("security_admin"))
    page = client.get(reverse("policies:detail", args=["budget"])).content.decode()
    assert page.count('<span class="badge outcome-allow" data-testid="instance-match">matches</span>') == 2
    forget_gavel_modules(second_opa)


def test_the_version_moves_only_when_every_instance_confirmed(opa, make_user):
    staging = Environment.objects.create(name="staging")
    live = OpaInstance.objects.create(environment=staging, name="live", url=opa)
    dead = OpaInstance.objects.create(environment=staging, name="dead", url=f"http://127.0.0.1:{stack.free_port()}")
    policy = PolicyFactory(name="budget")
    admin = make_user("security_admin")
    # Made directly (no worker), as request_publication would make them.
    group = [Publication.objects.create(version=policy.latest_version, requested_by=admin, target_url=i.url,
                                        environment=staging, instance=i, group="6f0c3a4e-0000-4000-8000-000000000001")
             for i in (live, dead)]

    assert services.attempt_publication(group[0]).status == Publication.Status.OK
    with pytest.raises(services.OpaUnreachable):
        services.attempt_publication(group[1])

    assert policy.active_version_in(staging) is None  # one of two instances confirmed: not yet
    assert not PublishEvent.objects.filter(action=PublishEvent.Action.PUBLISHED).exists()


def test_an_environment_without_instances_publishes_to_its_own_opa(opa, celery_worker, make_user):
    """Backward compatible: no instances means one instance at the environment's target_url."""
    Environment.objects.create(name="dev")  # GAVEL_ENVIRONMENT, opa_url blank: OPA_URL
    policy = PolicyFactory(name="budget")
    publication = services.request_publication(policy.latest_version, requested_by=make_user("security_admin"))
    assert publication.target_url == opa and publication.instance is None
    assert wait_finished(publication).status == Publication.Status.OK
    assert services.opa_runs(policy.latest_version)


def _published(opa_url, make_user, **settings_kwargs):
    environment = Environment.objects.create(name="prod", opa_url=opa_url)
    policy = PolicyFactory(name="budget")
    publication = services.request_publication(policy.latest_version, requested_by=make_user("security_admin"),
                                               environment=environment)
    assert wait_finished(publication).status == Publication.Status.OK
    return environment, policy


def _tamper(url, number):
    with opa_client(url) as client:
        client.put_policy("gavel/budget", f'package gavel.budget\n\ndecision := {{"allow": true, "n": {number}}}\n')


def test_drift_is_detected_restored_and_escalated_when_it_keeps_coming_back(
        opa, celery_worker, make_user, client, settings, webhook):
    settings.GAVEL_DRIFT_MAX_REPUSH = 2
    environment, policy = _published(opa, make_user)
    version = policy.latest_version
    assert check_instance_drift(environment.pk, None) == 0  # OPA runs what Gavel published

    for round_ in (1, 2):
        _tamper(opa, round_)  # someone changes the policy straight in OPA
        [alert] = drift.check_instance(environment, environment.targets()[0])
        assert (alert.resource, alert.expected_hash, alert.escalated) == ("gavel/budget", version.sha256, False)
        assert alert.actual_hash and alert.actual_hash != version.sha256
        assert check_instance_drift(environment.pk, None) == 0  # idempotent while the re-push is on its way
        assert wait_finished(alert.repush).status == Publication.Status.OK
        assert services.opa_runs(version, opa)  # restored
        assert check_instance_drift(environment.pk, None) == 0
        alert.refresh_from_db()
        assert alert.resolved_at is not None

    _tamper(opa, 3)  # a third time within the window: a person must look
    [alert] = drift.check_instance(environment, environment.targets()[0])
    assert alert.escalated and alert.repush is None and alert.resolved_at is None
    assert check_instance_drift(environment.pk, None) == 0  # no new alert, no re-push
    assert not services.opa_runs(version, opa)
    assert DriftAlert.objects.count() == 3

    wait_until(lambda: len(webhook.received) == 3, message="three webhooks")
    assert [m["event"] for m in sorted(webhook.received, key=lambda m: m["alert"])] == ["drift", "drift",
                                                                                       "drift_escalated"]
    escalated = next(m for m in webhook.received if m["event"] == "drift_escalated")
    assert escalated["policy"] == "budget" and "escalated" in escalated["action"]

    client.force_login(make_user("security_admin"))
    page = client.get(reverse("fleet:environments")).content.decode()
    assert 'data-testid="open-drift"' in page and "escalated to a person" in page
    detail = client.get(reverse("policies:detail", args=["budget"])).content.decode()
    assert 'data-testid="instance-match">differs' in detail

    # The person publishes the version again; the next check closes the alert.
    assert wait_finished(services.request_publication(
        version, requested_by=make_user("security_admin"), environment=environment)).status == Publication.Status.OK
    check_instance_drift(environment.pk, None)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_check_that_read_opa_before_the_re_push_finished_opens_no_new_episode(opa, celery_worker, make_user):
    """A check reads OPA outside the environment's lock: it may read the tampered module, then find
    the re-push already confirmed. What it read is out of date, not a new drift."""
    environment, _ = _published(opa, make_user)
    instance = environment.targets()[0]
    _tamper(opa, 1)
    [alert] = drift.check_instance(environment, instance)

    read_at = timezone.now()
    loaded = drift.loaded_modules(instance)  # still the tampered module
    assert wait_finished(alert.repush).status == Publication.Status.OK

    assert drift.act_on(environment, instance, loaded, read_at) == []
    assert list(DriftAlert.objects.values_list("pk", flat=True)) == [alert.pk]
    assert drift.check_instance(environment, instance) == []  # a fresh read sees the restore
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_a_check_that_read_opa_before_the_drift_does_not_resolve_its_alert(opa, make_user, settings):
    settings.GAVEL_DRIFT_MAX_REPUSH = 0  # escalated at once: no re-push to wait for
    environment, _ = _published(opa, make_user)
    instance = environment.targets()[0]
    read_at = timezone.now()
    loaded = drift.loaded_modules(instance)  # what Gavel published
    _tamper(opa, 1)
    [alert] = drift.check_instance(environment, instance)
    assert alert.escalated

    assert drift.act_on(environment, instance, loaded, read_at) == []
    alert.refresh_from_db()
    assert alert.resolved_at is None  # still waiting for a person
    assert drift.check_instance(environment, instance) == []
    alert.refresh_from_db()
    assert alert.resolved_at is None


def test_a_removed_entrypoint_is_drift_too(opa, celery_worker, make_user):
    environment, policy = _published(opa, make_user)
    with opa_client(opa) as client:
        client.delete_policy("gavel_entry/budget")
    [alert] = drift.check_instance(environment, environment.targets()[0])
    assert alert.resource == "gavel_entry/budget" and alert.actual_hash == ""
    assert wait_finished(alert.repush).status == Publication.Status.OK
    assert services.opa_runs(policy.latest_version, opa)


def test_runtime_config_goes_to_every_instance_of_a_push_environment(opa, second_opa, make_user):
    staging = Environment.objects.create(name="staging")
    OpaInstance.objects.create(environment=staging, name="first", url=opa)
    OpaInstance.objects.create(environment=staging, name="second", url=second_opa)
    runtime.push_runtime_config(staging)
    for url in (opa, second_opa):
        with opa_client(url) as client:
            assert client.get_data("gavel_config/kill_switch") is False


def test_instance_tokens_are_never_shown_and_bundle_tokens_are_kept_hashed(make_user, client, monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setenv("OPA_A_TOKEN", "gavel-to-opa-secret")
    out = StringIO()
    call_command("opa_environment", "staging", "--delivery", "pull", "--add-instance", "opa-a", "http://10.9.9.9:8181",
                 "--token-env", "OPA_A_TOKEN", "--new-bundle-token", stdout=out)
    bundle_token = out.getvalue().split("shown once): ")[1].strip()
    staging = Environment.objects.get(name="staging")
    assert staging.is_pull and staging.bundle_token_matches(bundle_token)
    assert bundle_token not in staging.bundle_token_hash
    assert OpaInstance.objects.get(name="opa-a").token == "gavel-to-opa-secret"

    client.force_login(make_user("security_admin"))
    api = client.get("/api/v1/environments/staging/").json()
    assert api["delivery"] == "pull" and api["instances"][0]["name"] == "opa-a"
    page = client.get(reverse("fleet:environments")).content.decode()
    for shown in (str(api), page):
        assert "gavel-to-opa-secret" not in shown and bundle_token not in shown
