"""Publishing pushes a version to the real OPA, reads it back, and only then makes it active."""
import pytest

from core.opa.client import OpaUnreachable, opa_client
from fleet.models import Environment
from policies import services
from policies.models import Publication
from tests.factories import PolicyFactory
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def publish_and_wait(version, user, **kwargs) -> Publication:
    publication = services.request_publication(version, requested_by=user, **kwargs)
    wait_until(lambda: Publication.objects.get(pk=publication.pk).is_finished, message="the publication to finish")
    publication.refresh_from_db()
    return publication


def test_publish_pushes_the_source_and_confirms_it_by_hash(opa, celery_worker, make_user):
    policy = PolicyFactory(name="budget")
    version = policy.latest_version

    publication = publish_and_wait(version, make_user("security_admin"))

    assert publication.status == Publication.Status.OK, publication.detail
    assert version.sha256 in publication.detail
    policy.refresh_from_db()
    assert policy.active_version == version
    with opa_client() as client:
        assert client.get_policy("gavel/budget")["raw"] == version.source
        answer = client.decide("gavel/budget/decision", {"user": {"role": "admin"}})
    assert answer["result"] == {"allow": True, "reasons": []}


def test_previous_version_stays_active_while_opa_is_unreachable(opa, celery_worker, make_user):
    admin = make_user("security_admin")
    policy = PolicyFactory(name="budget")
    v1 = policy.latest_version
    assert publish_and_wait(v1, admin).status == Publication.Status.OK
    v2 = services.save_version(policy, source=v1.source.replace('"admin"', '"owner"'), author=admin, message="owner")

    dead_opa = f"http://127.0.0.1:{stack.free_port()}"
    publication = Publication.objects.create(version=v2, requested_by=admin, target_url=dead_opa)
    with pytest.raises(OpaUnreachable):
        services.attempt_publication(publication)

    publication.refresh_from_db()
    assert publication.status == Publication.Status.UNREACHABLE
    assert publication.attempts == 1
    assert "unreachable" in publication.detail
    policy.refresh_from_db()
    assert policy.active_version == v1


def test_an_unreachable_publication_is_retried_until_opa_answers(opa, celery_worker, make_user, tmp_path):
    """OPA is down when the author publishes; the worker keeps retrying with backoff and
    the publication completes once an OPA is listening at that address."""
    policy = PolicyFactory(name="budget")
    port = stack.free_port()
    Environment.objects.create(name="dev", opa_url=f"http://127.0.0.1:{port}")  # GAVEL_ENVIRONMENT's OPA is down
    publication = services.request_publication(policy.latest_version, requested_by=make_user("security_admin"))
    wait_until(lambda: Publication.objects.get(pk=publication.pk).attempts >= 2, message="two failed attempts")
    assert Publication.objects.get(pk=publication.pk).status == Publication.Status.UNREACHABLE
    policy.refresh_from_db()
    assert policy.active_version is None

    late_opa = stack.start_opa(tmp_path, port, "http://127.0.0.1:9/unused", "unused", {})
    try:
        wait_until(lambda: Publication.objects.get(pk=publication.pk).is_finished, timeout=40,
                   message="the retried publication")
    finally:
        stack.stop_process(late_opa, "late OPA")
    publication.refresh_from_db()
    assert publication.status == Publication.Status.OK
    assert publication.attempts >= 3
    policy.refresh_from_db()
    assert policy.active_version == policy.latest_version


def test_opa_refusing_the_module_is_recorded_with_its_message(opa, celery_worker, make_user):
    # A module pushed straight to OPA defines `allow` as a function in the same package,
    # so OPA's compiler refuses Gavel's version, which defines it as a plain rule.
    with opa_client() as client:
        client.put_policy("elsewhere/manual", "package gavel.budget\n\nallow(x) := x\n")
    try:
        publication = publish_and_wait(PolicyFactory(name="budget").latest_version, make_user("security_admin"))
    finally:
        with opa_client() as client:
            client.delete_policy("elsewhere/manual")
    assert publication.status == Publication.Status.FAILED
    assert "OPA refused the policy" in publication.detail
    assert "conflicting rules" in publication.detail
    assert publication.version.policy.active_version is None


def test_a_newer_publication_supersedes_one_still_retrying(opa, celery_worker, make_user):
    """v1 is stuck retrying against a dead OPA when v2 is published there: v1 must never land later."""
    admin = make_user("security_admin")
    policy = PolicyFactory(name="budget")
    v1 = policy.latest_version
    v2 = services.save_version(policy, source=v1.source.replace('"admin"', '"owner"'), author=admin, message="owner")
    staging = Environment.objects.create(name="staging", opa_url=f"http://127.0.0.1:{stack.free_port()}")
    stuck = services.request_publication(v1, requested_by=admin, environment=staging)
    wait_until(lambda: Publication.objects.get(pk=stuck.pk).attempts >= 1, message="a failed attempt")

    services.request_publication(v2, requested_by=admin, environment=staging)

    stuck.refresh_from_db()
    assert stuck.status == Publication.Status.FAILED
    assert "Superseded" in stuck.detail


def test_publish_if_missing_restores_what_an_empty_opa_lacks(opa, celery_worker, make_user):
    """`make run` starts a fresh OPA each time; the active version is published to it again."""
    admin = make_user("security_admin")
    policy = PolicyFactory(name="budget")
    assert publish_and_wait(policy.latest_version, admin).status == Publication.Status.OK
    policy.refresh_from_db()
    assert services.publish_if_missing(policy, requested_by=admin) is None  # OPA runs it: nothing to do

    with opa_client() as client:
        client.delete_policy("gavel_entry/budget")  # as if OPA had restarted without it
    publication = services.publish_if_missing(policy, requested_by=admin)
    assert publication is not None and publication.version == policy.active_version
    wait_until(lambda: Publication.objects.get(pk=publication.pk).is_finished, message="the re-publication")
    assert services.opa_runs(policy.active_version)
