"""Pull environments: a real OPA downloads Gavel's bundle, reports its status, and its decision
logs name the version through the bundle revision."""
import gzip
import io
import json
import tarfile

import pytest
from django.conf import settings
from django.urls import reverse

from approvals import opa_data
from core.models import Decision, VersionSource
from core.opa.client import opa_client
from fleet.delivery import signing
from fleet.models import Environment, OpaInstance
from policies import services
from policies.models import Publication
from rollout import runtime
from tests.factories import PolicyFactory
from tests.fleet.support import extra_opa
from tests.support import decisions_served, settle_decision_logs, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "bundle-token-for-tests"


def pull_environment(name="edge", opa_url=""):
    environment = Environment.objects.create(name=name, delivery=Environment.Delivery.PULL, opa_url=opa_url)
    environment.set_bundle_token(TOKEN)
    return environment


def bundle_config(live_server_url: str, environment: str) -> dict:
    return {
        "services": {"gavel_bundles": {"url": f"{live_server_url}/api/v1/opa",
                                       "credentials": {"bearer": {"token": TOKEN}}}},
        "bundles": {environment: {"service": "gavel_bundles", "resource": f"bundles/{environment}",
                                  "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2},
                                  "signing": {"keyid": signing.KEY_ID}}},
        "status": {"service": "gavel_bundles"},
        "keys": signing.keys_config(),
    }


def bearer(token=TOKEN):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_an_opa_pulling_the_bundle_serves_the_published_version_and_logs_name_it(
        opa, live_server, celery_worker, make_user, tmp_path, client):
    policy = PolicyFactory(name="budget")
    version = policy.latest_version
    with extra_opa(tmp_path, f"{live_server.url}/api/v1/opa", {"instance": "edge-1"},
                   bundle_config(live_server.url, "edge")) as edge_url:
        edge = pull_environment(opa_url=edge_url)
        publication = services.request_publication(version, requested_by=make_user("security_admin"),
                                                   environment=edge)
        assert publication.status == Publication.Status.QUEUED and publication.attempts == 0  # no REST push

        # OPA downloads the bundle, activates it and says so in a status report, which confirms the publication.
        wait_until(lambda: Publication.objects.get(pk=publication.pk).status == Publication.Status.OK, timeout=30,
                   message="the status report confirming the bundle")
        assert policy.active_version_in(edge) == version
        instance = OpaInstance.objects.get(environment=edge, name="edge-1")
        assert instance.active_revision == "budget@1"
        # A plugin may report a passing hiccup (a log upload slow on a loaded machine): the next report clears it.
        first_said = OpaInstance.objects.get(pk=instance.pk).status_detail
        wait_until(lambda: OpaInstance.objects.get(pk=instance.pk).healthy, timeout=30,
                   message=f"edge-1 reporting healthy (at first it said: {first_said})")

        served = decisions_served(edge_url)
        with opa_client(edge_url) as edge_opa:
            answer = edge_opa.decide("gavel_entry/budget/decision", {"user": {"role": "admin"}})
            assert answer["result"]["allow"] is True and answer["result"]["policy_version"] == 1
            assert edge_opa.get_data("gavel_config/kill_switch") is False  # the bundle's data.json

            # Pull environment: Gavel writes nothing over REST (OPA would refuse it under the bundle's roots).
            runtime.push_runtime_config(edge)
            opa_data.push_approvals()
            # OPA lists its modules in no particular order.
            assert sorted(p["id"] for p in edge_opa.list_policies()) == ["edge/gavel/budget/policy.rego",
                                                                          "edge/gavel_entry/budget/entry.rego"]

        decision = wait_until(lambda: Decision.objects.filter(decision_id=answer["decision_id"]).first(),
                              message="the decision log")
        assert decision.version == version and decision.version_source == VersionSource.BUNDLE
        assert decision.bundles == {"edge": {"revision": "budget@1"}}

        client.force_login(make_user("security_admin"))
        page = client.get(reverse("fleet:environments")).content.decode()
        assert 'data-testid="instance-edge-1"' in page and ">budget@1</code>" in page
        settle_decision_logs(edge_url, served)


def test_the_bundle_has_the_manifest_sources_and_data_and_honours_the_etag(opa, client, make_user):
    policy = PolicyFactory(name="budget")
    edge = pull_environment()
    services.request_publication(policy.latest_version, requested_by=make_user("security_admin"), environment=edge)
    url = reverse("opa-bundle", args=["edge"])

    response = client.get(url, **bearer())
    assert response.status_code == 200 and response["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(response.content))) as tar:
        files = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert "/.signatures.json" in files  # signed: tests/fleet/test_signed_bundles.py
    manifest = json.loads(files["/.manifest"])
    assert manifest["revision"] == "budget@1"
    assert manifest["roots"] == ["gavel", "gavel_entry", "gavel_config", "gavel_approvals"]
    assert files["/gavel/budget/policy.rego"] == policy.latest_version.source
    assert "policy_version := 1" in files["/gavel_entry/budget/entry.rego"]
    assert set(json.loads(files["/data.json"])) == {"gavel_config", "gavel_approvals"}

    etag = response["ETag"]
    assert client.get(url, HTTP_IF_NONE_MATCH=etag, **bearer()).status_code == 304
    v2 = services.save_version(policy, source=policy.latest_version.source.replace('"admin"', '"owner"'),
                               author=make_user("policy_author"), message="owner")
    services.request_publication(v2, requested_by=make_user("security_admin"), environment=edge)
    changed = client.get(url, HTTP_IF_NONE_MATCH=etag, **bearer())
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_bundles_and_status_refuse_a_bad_token(client):
    pull_environment()
    pull_environment("other").set_bundle_token("another-token")
    url = reverse("opa-bundle", args=["edge"])
    assert client.get(url).status_code == 401
    assert client.get(url, **bearer("wrong")).status_code == 401
    assert client.get(url, **bearer("another-token")).status_code == 401  # another environment's token
    status = client.post(reverse("opa-status"), data="{}", content_type="application/json", **bearer("wrong"))
    assert status.status_code == 401


def test_status_reports_are_stored_and_shown(client, make_user):
    edge = pull_environment()
    report = {
        "labels": {"id": "2f0b7c9e-opa", "version": "1.22.2", "instance": "edge-7"},
        "bundles": {"edge": {"name": "edge", "active_revision": "budget@4",
                             "last_successful_activation": "2026-01-05T10:00:00.5Z",
                             "last_successful_download": "2026-01-05T10:00:00.4Z", "metrics": {}}},
        "plugins": {"bundle": {"state": "OK"}, "status": {"state": "OK"}, "decision_logs": {"state": "OK"}},
        "metrics": {"prometheus": {}},
    }
    response = client.post(reverse("opa-status"), data=json.dumps(report), content_type="application/json", **bearer())
    assert response.status_code == 204
    instance = OpaInstance.objects.get(environment=edge, name="edge-7")
    assert instance.healthy is True and instance.active_revision == "budget@4" and instance.last_status_at

    report["plugins"]["bundle"] = {"state": "ERROR", "message": "download failed"}
    report["bundles"]["edge"].update(code="bundle_error", message="server replied with HTTP 500")
    assert client.post(reverse("opa-status"), data=json.dumps(report), content_type="application/json",
                       **bearer()).status_code == 204
    instance.refresh_from_db()
    assert instance.healthy is False and "download failed" in instance.status_detail

    client.force_login(make_user("security_admin"))
    page = client.get(reverse("fleet:environments")).content.decode()
    assert ">budget@4</code>" in page and "unhealthy" in page and "download failed" in page
    assert settings.GAVEL_OPA_TOKEN not in page and TOKEN not in page


def test_a_bundle_revision_names_the_version_and_garbage_is_ignored(make_user):
    from django.utils import timezone

    from audit.ingest import VersionResolver

    policy = PolicyFactory(name="budget")
    v2 = services.save_version(policy, source=policy.latest_version.source.replace('"admin"', '"owner"'),
                               author=make_user("policy_author"), message="owner")
    resolver = VersionResolver()
    result = {"policy": "budget", "policy_version": 1}
    named = resolver.resolve("gavel_entry/budget/decision", result, timezone.now(),
                             {"edge": {"revision": "other@7,budget@2"}})
    assert named == (policy, v2, VersionSource.BUNDLE)
    for garbage in ({"edge": {"revision": "budget@²,budget@99999999999,budget@"}}, {"edge": "x"}, ["budget@2"]):
        _, version, source = resolver.resolve("gavel_entry/budget/decision", result, timezone.now(), garbage)
        assert (version.number, source) == (1, VersionSource.REPORTED)
