"""Environments each run their own version of a policy: a publish request names its environment,
approval publishes to every OPA instance there, rollback acts on one environment, retirement on
all of them. Two environments, each with its own real OPA: dev (the default, GAVEL_ENVIRONMENT)
and prod."""
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from core import partitions
from core.opa.client import OpaUnreachable, opa_client
from fleet import bundles, drift
from fleet.models import Environment, OpaInstance
from policies import review, services
from policies.models import ActiveVersion, Publication, PublishEvent, PublishRequest
from tests.factories import DecisionFactory, PolicyFactory
from tests.fleet.support import extra_opa
from tests.policies.test_review import api_for
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def prod_opa(opa, tmp_path):
    with extra_opa(tmp_path, "http://127.0.0.1:9/unused", {"instance": "prod-a"}) as url:
        yield url


@pytest.fixture
def envs(opa, prod_opa, settings):
    """dev at the session's OPA (the default environment), prod at an OPA of its own."""
    settings.GAVEL_ENVIRONMENT = "dev"
    dev = Environment.objects.create(name="dev", opa_url=opa)
    prod = Environment.objects.create(name="prod")
    OpaInstance.objects.create(environment=prod, name="prod-a", url=prod_opa)
    return dev, prod


@pytest.fixture
def people(make_user):
    return make_user("policy_author"), make_user("security_admin")


def finished(publication) -> list[Publication]:
    """Wait for every publication of the group (one per instance) to finish."""
    group = (Publication.objects.filter(group=publication.group) if publication.group
             else Publication.objects.filter(pk=publication.pk))
    wait_until(lambda: all(p.is_finished for p in group.all()), message=f"the publications of {publication.group}")
    return list(group.order_by("pk"))


def publish(version, environment, author, approver) -> list[Publication]:
    request = review.request_publish(version, requested_by=author, reason=f"ship v{version.number}",
                                     environment=environment)
    group = finished(review.approve(request, approved_by=approver).publication)
    assert all(p.status == Publication.Status.OK for p in group), [p.detail for p in group]
    return group


def runs(url: str, name: str = "budget") -> int | None:
    """The version number the OPA at `url` answers with through the policy's entrypoint."""
    with opa_client(url) as client:
        if client.get_policy(f"gavel/{name}") is None:
            return None
        return client.decide(f"gavel_entry/{name}/decision", {"user": {"role": "admin"}})["result"]["policy_version"]


def loaded(url: str, name: str = "budget") -> bool:
    """Whether the OPA at `url` holds the policy and its entrypoint (asked without deciding)."""
    with opa_client(url) as client:
        return None not in (client.get_policy(f"gavel/{name}"), client.get_policy(f"gavel_entry/{name}"))


def second_version(policy, author):
    v1 = policy.latest_version
    return services.save_version(policy, source=v1.source.replace('"admin"', '"owner"') + "\n# v2\n", author=author,
                                 message="owners")


# --- 1. A publish request targets an environment ----------------------------------------------


def test_a_request_names_its_environment_and_approval_publishes_to_every_instance_there(
        envs, prod_opa, opa, tmp_path, celery_worker, people, client):
    dev, prod = envs
    author, admin = people
    policy = PolicyFactory(name="budget", author=author)
    with extra_opa(tmp_path / "b", "http://127.0.0.1:9/unused", {"instance": "prod-b"}) as prod_b:
        OpaInstance.objects.create(environment=prod, name="prod-b", url=prod_b)

        # The API: the environment by name; an unknown one is refused and nothing is stored.
        refused = api_for(author).post("/api/v1/policies/budget/versions/1/publish/",
                                       {"reason": "ship", "environment": "nowhere"}, format="json")
        assert refused.status_code == 400 and "environment" in refused.json()
        assert not PublishRequest.objects.exists()
        asked = api_for(author).post("/api/v1/policies/budget/versions/1/publish/",
                                     {"reason": "ship to prod", "environment": "prod"}, format="json")
        assert asked.status_code == 201 and asked.json()["environment"] == "prod"
        approved = api_for(admin).post(f"/api/v1/publish-requests/{asked.json()['id']}/approve/", {"reason": "ok"},
                                       format="json")
        assert approved.status_code == 202
        group = finished(Publication.objects.get(pk=approved.json()["publication"]))

        assert sorted(p.instance.name for p in group) == ["prod-a", "prod-b"]
        assert runs(prod_opa) == 1 and runs(prod_b) == 1  # every instance of prod
        assert runs(opa) is None  # dev was not asked for
        assert policy.active_version_in(prod) == policy.latest_version and policy.active_version_in(dev) is None
        published = PublishEvent.objects.get(action=PublishEvent.Action.PUBLISHED)
        assert published.environment == prod and prod_opa in published.reason and prod_b in published.reason

    # The page: the form offers the environments, the default one chosen; a request without one goes there.
    client.force_login(author)
    form = client.get("/policies/budget/v1/").content.decode()
    assert '<option value="dev" selected>dev</option>' in form and '<option value="prod">prod</option>' in form
    client.post("/policies/budget/v1/publish/", {"reason": "dev too"})
    request = PublishRequest.objects.get(status=PublishRequest.Status.PENDING)
    assert request.environment == dev
    client.force_login(admin)
    page = client.post(f"/policies/budget/v1/requests/{request.pk}/approve/", HTTP_HX_REQUEST="true").content.decode()
    assert "Approve and publish" not in page  # the request is approved, the card swapped
    finished(PublishRequest.objects.get(pk=request.pk).publication)
    assert runs(opa) == 1 and policy.active_version == policy.latest_version  # the default environment's


def test_approving_for_a_pull_environment_makes_its_bundle_serve_the_version(envs, people, client):
    author, admin = people
    policy = PolicyFactory(name="budget", author=author)
    edge = Environment.objects.create(name="edge", delivery=Environment.Delivery.PULL)
    request = review.request_publish(policy.latest_version, requested_by=author, reason="edge", environment=edge)
    assert bundles.build_bundle(edge).revision == ""

    publication = review.approve(request, approved_by=admin).publication

    assert (publication.environment, publication.status, publication.attempts) == (edge, Publication.Status.QUEUED, 0)
    assert bundles.build_bundle(edge).revision == "budget@1"
    assert not Publication.objects.exclude(environment=edge).exists()  # no push anywhere else


# --- 2. The active version is per environment --------------------------------------------------


def test_each_environment_runs_its_own_version_and_the_pages_and_api_say_since_when(
        envs, opa, prod_opa, celery_worker, people, client):
    dev, prod = envs
    author, admin = people
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    publish(v1, prod, author, admin)
    publish(v1, dev, author, admin)
    v2 = second_version(policy, author)
    publish(v2, dev, author, admin)

    assert (runs(opa), runs(prod_opa)) == (2, 1)  # the entrypoints stamp each environment's version
    assert (policy.active_version_in(dev), policy.active_version_in(prod)) == (v2, v1)
    assert policy.active_in(prod).since < policy.active_in(dev).since
    for url in (opa, prod_opa):  # each environment's runtime configuration names the policy it runs
        with opa_client(url) as opa_at:
            wait_until(lambda: opa_at.get_data("gavel_config/policies/budget") is not None, message="gavel_config")
    # Drift compares each instance with its own environment's version: neither has drifted.
    assert drift.check_instance(prod, prod.targets()[0]) == []
    assert drift.check_instance(dev, dev.targets()[0]) == []

    body = api_for(author).get("/api/v1/policies/budget/").json()
    assert body["active_version"] == 2  # the default environment's
    assert [(e["environment"], e["version"]) for e in body["environments"]] == [("dev", 2), ("prod", 1)]
    assert body["environments"][1]["since"] == policy.active_in(prod).since.isoformat().replace("+00:00", "Z")
    prod_api = api_for(admin).get("/api/v1/environments/prod/").json()
    assert [(p["policy"], p["version"]) for p in prod_api["policies"]] == [("budget", 1)]
    client.force_login(admin)
    fleet = client.get("/environments/").content.decode()
    assert '<a href="/policies/budget/">budget</a> v1' in fleet.split('data-testid="environment-prod"')[1]

    client.force_login(author)
    page = client.get("/policies/budget/").content.decode()
    since = policy.active_in(prod).since
    assert f'Runs <a href="/policies/budget/v1/">v1</a>\n      since {since:%Y-%m-%d %H:%M:%S} UTC' in page
    assert page.count('data-testid="instance-loaded">v2<') == 1 and page.count('data-testid="instance-loaded">v1<') == 1
    assert page.count('data-testid="instance-match">matches</span>') == 2
    assert "Runs in prod" in client.get("/policies/budget/v1/").content.decode()
    assert "Runs in dev" in client.get("/policies/budget/v2/").content.decode()
    listing = client.get("/policies/").content.decode()
    assert ">dev v2</span>" in listing and ">prod v1</span>" in listing

    # After OPA restarted empty, publish_if_missing restores each environment's own version.
    with opa_client(prod_opa) as prod_api:
        prod_api.delete_policy("gavel/budget")
    assert services.publish_if_missing(policy, requested_by=admin, environment=dev) is None
    restored = services.publish_if_missing(policy, requested_by=admin, environment=prod)
    assert restored.version == v1
    finished(restored)
    assert runs(prod_opa) == 1


# --- 3. Rollback is per environment ------------------------------------------------------------


def test_rollback_restores_the_previous_version_of_one_environment_only(
        envs, opa, prod_opa, celery_worker, people, client):
    dev, prod = envs
    author, admin = people
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    for environment in (dev, prod):
        publish(v1, environment, author, admin)
    v2 = second_version(policy, author)
    for environment in (dev, prod):
        publish(v2, environment, author, admin)
    assert (runs(opa), runs(prod_opa)) == (2, 2)
    assert review.rollback_target(policy, prod) == v1

    # The API rolls prod back; dev keeps v2.
    response = api_for(admin).post("/api/v1/policies/budget/rollback/",
                                   {"reason": "v2 breaks prod checkout", "environment": "prod"}, format="json")
    assert response.status_code == 202 and response.json()["environment"] == "prod"
    finished(Publication.objects.get(pk=response.json()["id"]))
    assert (runs(opa), runs(prod_opa)) == (2, 1)
    assert (policy.active_version_in(dev), policy.active_version_in(prod)) == (v2, v1)
    rolled = PublishEvent.objects.get(action=PublishEvent.Action.ROLLED_BACK)
    assert (rolled.environment, rolled.version, rolled.actor) == (prod, v1, admin)

    # The page offers each environment its own rollback; prod's would now go to v2 again.
    client.force_login(admin)
    page = client.get("/policies/budget/").content.decode()
    assert "Roll dev back to v1" in page and "Roll prod back to v2" in page
    client.post("/policies/budget/rollback/", {"reason": "dev too", "environment": "dev"})
    finished(Publication.objects.filter(environment=dev).order_by("-id").first())
    assert (runs(opa), runs(prod_opa)) == (1, 1)

    # An environment that ran only one version has nothing to roll back to.
    staging = Environment.objects.create(name="staging", opa_url=prod_opa)
    with pytest.raises(services.PublishRefused, match="no earlier published version to roll back to in staging"):
        review.rollback(policy, rolled_back_by=admin, reason="x", environment=staging)
    bad = api_for(admin).post("/api/v1/policies/budget/rollback/", {"reason": "x", "environment": "nowhere"},
                              format="json")
    assert bad.status_code == 400


# --- 4. Retire removes the policy from every environment ---------------------------------------


def test_retire_removes_the_policy_from_every_instance_and_bundle_or_from_none(
        envs, opa, prod_opa, celery_worker, people, client, settings):
    settings.GAVEL_RETIRE_AFTER_DAYS = 30
    dev, prod = envs
    author, admin = people
    policy = PolicyFactory(name="budget", author=author)
    for environment in (dev, prod):
        publish(policy.latest_version, environment, author, admin)
    edge = Environment.objects.create(name="edge", delivery=Environment.Delivery.PULL)
    services.request_publication(policy.latest_version, requested_by=admin, environment=edge)
    assert bundles.build_bundle(edge).revision == "budget@1"

    recent = DecisionFactory(policy=policy, timestamp=timezone.now() - timedelta(days=3))
    with pytest.raises(services.PublishRefused, match="retired after 30 days"):
        review.retire(policy, retired_by=admin, reason="unused")
    long_ago = timezone.now() - timedelta(days=31)  # a month passes: the decision moves to an older week
    partitions.ensure([(recent.environment, long_ago)])
    type(recent).objects.filter(pk=recent.pk).update(timestamp=long_ago)

    # One of prod's instances does not answer: nothing is removed anywhere, nothing is retired.
    gone = OpaInstance.objects.create(environment=prod, name="prod-gone", url="http://127.0.0.1:9")
    with pytest.raises(OpaUnreachable):
        review.retire(policy, retired_by=admin, reason="unused")
    policy.refresh_from_db()
    # Checked without evaluating: a decision through the entrypoint would be logged to Gavel and,
    # on a slow machine, arrive in time to block the retirement below ("decided at ...").
    assert policy.retired_at is None and loaded(opa) and loaded(prod_opa)
    gone.delete()

    client.force_login(admin)
    retired = client.post("/policies/budget/retire/", {"reason": "replaced by budget_v2"}, follow=True)
    flashes = re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', retired.content.decode())
    assert "Retired budget: no environment runs it any more." in flashes, flashes

    policy.refresh_from_db()
    assert policy.retired_at is not None and not ActiveVersion.objects.filter(policy=policy).exists()
    for url in (opa, prod_opa):
        with opa_client(url) as opa_at:
            assert opa_at.get_policy("gavel/budget") is None and opa_at.get_policy("gavel_entry/budget") is None
    assert bundles.build_bundle(edge).revision == ""  # pulling OPAs drop it with their next download
    assert "retired" in client.get("/policies/budget/").content.decode()


# --- Replay against what an environment runs ----------------------------------------------------


def test_replay_can_compare_a_candidate_with_the_decisions_of_the_version_an_environment_runs(
        envs, people, client):
    from core.models import Outcome
    from policies import replay

    dev, prod = envs
    author, admin = people
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    v2 = second_version(policy, author)  # allows owners, no longer admins
    ActiveVersion.objects.create(policy=policy, environment=prod, version=v1, since=timezone.now())
    ActiveVersion.objects.create(policy=policy, environment=dev, version=v2, since=timezone.now())
    for version, role, n in ((v1, "admin", 3), (v2, "owner", 2)):
        DecisionFactory.create_batch(n, policy=policy, version=version, path="gavel/budget/decision",
                                     input={"user": {"role": role}}, outcome=Outcome.ALLOW)

    against_prod = replay.replay_version(v2, environment=prod)
    assert (against_prod.selected, against_prod.changes["allow_to_deny"], against_prod.against) == (3, 3, "prod v1")
    assert (replay.replay_version(v2, environment=dev).changed, replay.replay_version(v2).selected) == (0, 5)

    api = api_for(author).post("/api/v1/policies/budget/versions/2/replay/", {"environment": "prod"}, format="json")
    assert api.status_code == 200 and (api.json()["changed"], api.json()["against"]) == (3, "prod v1")
    client.force_login(author)
    page = client.post("/policies/budget/v2/replay/", {"environment": "prod", "last": "100"}, HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert 'data-testid="replay-changed">3<' in html and "against what prod v1 decided" in html
    edge = Environment.objects.create(name="edge")
    with pytest.raises(replay.ReplayRefused, match="edge runs no version of budget"):
        replay.replay_version(v2, environment=edge)
