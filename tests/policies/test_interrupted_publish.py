"""Issue 8: "A publish interrupted at any step leaves the previously active version active and the
console truthful about what OPA runs", per environment, against real OPA servers: an instance
that stops answering mid-publish, one that never comes back, and one left holding half a push."""
import uuid

import pytest

from core.opa.client import OpaUnreachable, opa_client
from fleet import drift
from fleet.models import DriftAlert, Environment, OpaInstance
from policies import services
from policies.models import Publication, PublishEvent
from tests.factories import PolicyFactory
from tests.fleet.support import extra_opa
from tests.fleet.test_environments import finished, runs, second_version
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prod(opa, tmp_path, settings):
    """prod with one instance at an OPA of its own (dev, the default environment, is elsewhere)."""
    settings.GAVEL_ENVIRONMENT = "dev"
    with extra_opa(tmp_path, "http://127.0.0.1:9/unused", {"instance": "prod-a"}) as url:
        environment = Environment.objects.create(name="prod")
        OpaInstance.objects.create(environment=environment, name="prod-a", url=url)
        yield environment, url


def environment_card(client, name: str) -> str:
    page = client.get("/policies/budget/").content.decode()
    return page.split(f'data-testid="environment-{name}"')[1].split('data-testid="environment-')[0]


def test_an_instance_unreachable_mid_publish_keeps_the_environment_on_its_version_until_it_confirms(
        prod, tmp_path, celery_worker, make_user, client):
    environment, prod_a = prod
    admin, author = make_user("security_admin"), make_user("policy_author")
    port = stack.free_port()
    prod_b = f"http://127.0.0.1:{port}"
    b_process = stack.start_opa(tmp_path / "b", port, "http://127.0.0.1:9/unused", "unused", {"instance": "prod-b"})
    OpaInstance.objects.create(environment=environment, name="prod-b", url=prod_b)
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    finished(services.request_publication(v1, requested_by=admin, environment=environment))
    assert (runs(prod_a), runs(prod_b)) == (1, 1)

    stack.stop_process(b_process, "prod-b")  # prod-b goes away; v2 is published meanwhile
    try:
        v2 = second_version(policy, author)
        first = services.request_publication(v2, requested_by=admin, environment=environment)
        group = Publication.objects.filter(group=first.group)
        wait_until(lambda: group.get(instance__name="prod-a").status == Publication.Status.OK, message="prod-a")
        wait_until(lambda: group.get(instance__name="prod-b").status == Publication.Status.UNREACHABLE,
                   message="prod-b unreachable")

        # prod-a runs v2 already, but prod as a whole still runs v1, and the console says both.
        assert runs(prod_a) == 2
        assert policy.active_version_in(environment) == v1
        assert not PublishEvent.objects.filter(action=PublishEvent.Action.PUBLISHED, version=v2).exists()
        assert drift.check_instance(environment, environment.instances.get(name="prod-a")) == []  # not drift: in flight
        client.force_login(admin)
        card = environment_card(client, "prod")
        assert 'Runs <a href="/policies/budget/v1/">v1</a>' in card
        assert "publishing v2: 1 of 2 instances confirmed" in card and "v1 stays active until every instance" in card
        rows = card.split('data-testid="instance-state"')[1:]
        assert 'instance-loaded">v2<' in rows[0] and "runs another version" in rows[0]
        assert 'instance-loaded">—<' in rows[1] and "unreachable" in rows[1]
        assert "OPA unreachable, retrying" in rows[1]  # its publication, still being retried
        assert policy.active_version_in(Environment.objects.get_or_create(name="dev")[0]) is None  # never asked

        # prod-b comes back (empty, as a restarted OPA is): the retry lands and prod runs v2.
        b_process = stack.start_opa(tmp_path / "b2", port, "http://127.0.0.1:9/unused", "unused", {})
        wait_until(lambda: all(p.status == Publication.Status.OK for p in group.all()), timeout=60,
                   message="the retried publication to prod-b")
    finally:
        stack.stop_process(b_process, "prod-b")
    assert policy.active_version_in(environment) == v2
    assert PublishEvent.objects.get(action=PublishEvent.Action.PUBLISHED, version=v2).environment == environment


def test_a_publication_that_fails_for_good_puts_the_previous_version_back_where_it_landed(
        prod, celery_worker, make_user, client):
    environment, prod_a = prod
    admin, author = make_user("security_admin"), make_user("policy_author")
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    finished(services.request_publication(v1, requested_by=admin, environment=environment))
    dead = OpaInstance.objects.create(environment=environment, name="prod-dead",
                                      url=f"http://127.0.0.1:{stack.free_port()}")
    v2 = second_version(policy, author)
    # The group as request_publication makes it, driven here attempt by attempt (no worker retries).
    group = uuid.uuid4()
    landed, lost = (Publication.objects.create(version=v2, requested_by=admin, target_url=i.url,
                                               environment=environment, instance=i, group=group)
                    for i in environment.instances.order_by("name"))
    assert lost.instance == dead

    assert services.attempt_publication(landed).status == Publication.Status.OK
    assert runs(prod_a) == 2
    with pytest.raises(OpaUnreachable):
        services.attempt_publication(lost, final_attempt=True)  # the worker's last retry

    lost.refresh_from_db()
    assert lost.status == Publication.Status.FAILED and "gave up" in lost.detail
    restore = Publication.objects.get(repush=True)
    assert (restore.version, restore.instance.name) == (v1, "prod-a") and "failed at prod-dead" in restore.detail
    finished(restore)
    assert runs(prod_a) == 1  # prod-a runs what prod runs again
    assert policy.active_version_in(environment) == v1
    client.force_login(admin)
    card = environment_card(client, "prod")
    assert "publishing v2" not in card and 'instance-loaded">v1<' in card and "matches" in card


def test_a_push_cut_between_its_two_writes_is_shown_as_it_is_and_restored(prod, celery_worker, make_user, client):
    environment, prod_a = prod
    admin, author = make_user("security_admin"), make_user("policy_author")
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    finished(services.request_publication(v1, requested_by=admin, environment=environment))
    v2 = second_version(policy, author)
    # What a push of v2 leaves when it is cut after writing the policy and before its entrypoint.
    with opa_client(prod_a) as opa_at:
        opa_at.put_policy("gavel/budget", v2.source)

    client.force_login(admin)
    card = environment_card(client, "prod")
    assert 'instance-loaded">v2 with the entrypoint of v1<' in card and "differs" in card
    assert 'Runs <a href="/policies/budget/v1/">v1</a>' in card

    [alert] = drift.check_instance(environment, environment.instances.get())
    assert (alert.resource, alert.expected_hash, alert.actual_hash) == ("gavel/budget", v1.sha256, v2.sha256)
    finished(alert.repush)
    assert services.opa_runs(v1, prod_a)
    assert 'instance-loaded">v1<' in environment_card(client, "prod")
    assert DriftAlert.objects.get().repush.version == v1
