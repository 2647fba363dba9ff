"""Per-instance tokens against real OPA servers: OPA's token to Gavel (decision logs attributed,
wrong or revoked tokens refused while OPA keeps and retries its logs, rotation mid-traffic losing
nothing) and Gavel's token to an OPA running with token authentication and Gavel's authz policy."""
import threading
import time

import httpx
import pytest

from audit import ingest_health
from core.models import Decision, LogBatch
from core.opa.client import OpaClient, OpaRejected, OpaUnreachable, opa_client
from fleet import credentials as opa_credentials
from fleet import opa_authz
from fleet.delivery import signing
from fleet.models import GavelTokenState, OpaCredential, OpaInstance
from tests.factories import EnvironmentFactory, OpaInstanceFactory
from tests.fleet.support import opa_with_gavel_authz, opa_with_token_file
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = "package probe\n\nimport rego.v1\n\nallow if input.n >= 0\n"


def decide(url, count):
    with opa_client(url) as opa:
        opa.put_policy("probe", PROBE)
        return [opa.decide("probe/allow", {"n": n})["decision_id"] for n in range(count)]


def refused_401():
    return (ingest_health.refused_last_hour() or {}).get(401, 0)


def stored(ids):
    return Decision.objects.filter(decision_id__in=ids).count()


def test_a_wrong_token_is_refused_and_opa_delivers_everything_once_it_has_its_own(live_server, celery_worker,
                                                                                   tmp_path):
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1")
    _, token = opa_credentials.issue_token(instance)
    before = refused_401()
    labels = {"environment": "dev", "instance": "laptop"}  # what OPA claims; its token says otherwise
    with opa_with_token_file(tmp_path, live_server.url, "not-a-gavel-token", labels) as (url, token_file):
        ids = decide(url, 5)
        wait_until(lambda: refused_401() >= before + 2, timeout=30, message="OPA retrying its refused batch")
        assert not LogBatch.objects.exists() and not Decision.objects.exists()

        token_file.write_text(token)  # OPA reads the file on every upload: no restart

        wait_until(lambda: stored(ids) == len(ids), timeout=30, message="the retried batch stored")
    decisions = Decision.objects.filter(decision_id__in=ids)
    assert {(d.environment, d.instance) for d in decisions} == {("prod", "opa-eu-1")}
    assert set(LogBatch.objects.values_list("instance", flat=True)) == {instance.pk}


def test_a_revoked_token_is_refused_and_nothing_is_lost_once_replaced(live_server, celery_worker, tmp_path):
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1")
    credential, token = opa_credentials.issue_token(instance)
    with opa_with_token_file(tmp_path, live_server.url, token, {"instance": "opa-eu-1"}) as (url, token_file):
        first = decide(url, 3)
        wait_until(lambda: stored(first) == 3, timeout=30, message="logs shipped with the instance token")

        opa_credentials.revoke(credential)
        before = refused_401()
        held = decide(url, 3)
        wait_until(lambda: refused_401() >= before + 1, timeout=30, message="the revoked token refused")
        assert stored(held) == 0

        _, replacement = opa_credentials.issue_token(instance)
        token_file.write_text(replacement)
        wait_until(lambda: stored(held) == 3, timeout=30, message="the held batch delivered")
    assert Decision.objects.filter(decision_id__in=first + held).count() == 6


def test_rotating_an_instance_token_mid_traffic_loses_and_duplicates_nothing(live_server, celery_worker, tmp_path):
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1")
    old, old_token = opa_credentials.issue_token(instance)
    ids, stop = [], threading.Event()
    with opa_with_token_file(tmp_path, live_server.url, old_token, {"instance": "opa-eu-1"}) as (url, token_file):
        decide(url, 0)  # loads the probe policy

        def traffic():
            with opa_client(url) as opa:
                while not stop.is_set():
                    ids.append(opa.decide("probe/allow", {"n": len(ids)})["decision_id"])
                    time.sleep(0.01)

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            wait_until(lambda: LogBatch.objects.filter(instance=instance).exists(), timeout=30,
                       message="batches with the old token")
            new, new_token = opa_credentials.issue_token(instance)
            time.sleep(2.5)  # OPA keeps uploading with the old token: still accepted
            token_file.write_text(new_token)
            wait_until(lambda: OpaCredential.objects.get(pk=new.pk).last_used_at, timeout=30,
                       message="the new token's first use")
            time.sleep(2.5)
        finally:
            stop.set()
            sender.join()
        wait_until(lambda: stored(ids) == len(ids), timeout=40, message="every decision stored")
    assert len(ids) > 100 and len(set(ids)) == len(ids)
    assert Decision.objects.filter(decision_id__in=ids).count() == len(ids)
    assert set(Decision.objects.filter(decision_id__in=ids).values_list("instance", flat=True)) == {"opa-eu-1"}
    old.refresh_from_db()
    assert old.state == OpaCredential.State.EXPIRED  # ended by the new token's first use
    with httpx.Client() as http:
        response = http.post(f"{live_server.url}/api/v1/opa/logs", content=b"",
                             headers={"Authorization": f"Bearer {old_token}"})
    assert response.status_code == 401


# --- Gavel's token to OPA ------------------------------------------------------------------


def authz_config(gavel_url, opa_token):
    """The OPA's configuration: its token to Gavel, and the gavel_authz bundle, signed (opa_authz.opa_config)."""
    return {
        "services": {"gavel": {"url": f"{gavel_url}/api/v1/opa", "credentials": {"bearer": {"token": opa_token}}}},
        "bundles": {"gavel_authz": {"service": "gavel", "resource": "authz", "persist": True,
                                    "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2},
                                    "signing": {"keyid": signing.KEY_ID}}},
        "keys": signing.keys_config(),
    }


def gavel_can_manage(instance_pk) -> bool:
    instance = OpaInstance.objects.get(pk=instance_pk)
    try:
        with instance.client() as opa:
            opa.list_policy_ids()
        return True
    except OpaRejected:
        return False


def test_gavel_rolls_its_token_to_an_opa_without_ever_being_refused(live_server, celery_worker, tmp_path, settings):
    settings.GAVEL_TOKEN_ROTATION_GRACE_SECONDS = 5  # more than a loaded machine delays a call (the default is 30)
    port = stack.free_port()
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1",
                                  url=f"http://127.0.0.1:{port}")
    _, opa_token = opa_credentials.issue_token(instance)
    files = opa_authz.bootstrap(instance)
    config = stack.opa_config(f"{live_server.url}/api/v1/opa", opa_token, {"instance": "opa-eu-1"},
                              authz_config(live_server.url, opa_token))
    home = tmp_path / "opa"
    with opa_with_gavel_authz(home, files, config, port) as url:
        wait_until(lambda: gavel_can_manage(instance.pk), timeout=30, message="OPA took Gavel's token")
        old_token = OpaInstance.objects.get(pk=instance.pk).token
        assert httpx.get(f"{url}/v1/policies").status_code == 401  # nobody else may manage it
        assert httpx.get(f"{url}/v1/policies", headers={"Authorization": "Bearer guess"}).status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200

        refused, calls, stop = [], [0], threading.Event()

        def gavel_working():  # Gavel keeps calling OPA with whatever token it holds
            while not stop.is_set():
                if not gavel_can_manage(instance.pk):
                    refused.append(time.monotonic())
                calls[0] += 1
                time.sleep(0.05)

        worker = threading.Thread(target=gavel_working)
        worker.start()
        try:
            opa_authz.enqueue_rotation(opa_authz.start_rotation(instance))  # the worker carries it through
            wait_until(lambda: OpaInstance.objects.get(pk=instance.pk).token_state == GavelTokenState.ACTIVE,
                       timeout=60, message="the rotation done")
            # A loaded machine may finish the rotation within a few calls: keep calling after it too.
            wait_until(lambda: calls[0] > 5, timeout=30, message="Gavel kept calling OPA")
        finally:
            stop.set()
            worker.join()
        assert calls[0] > 5 and refused == []  # Gavel kept calling throughout, never refused
        instance.refresh_from_db()
        assert instance.token != old_token and instance.other_token == ""
        assert not opa_authz.opa_accepts(instance, old_token)
        assert opa_authz.opa_accepts(instance, instance.token)
        with pytest.raises(OpaRejected):  # the token list belongs to the bundle, even for Gavel
            with OpaClient(url, token=instance.token) as opa:
                opa.put_data("system/gavel_tokens", {"anything": True})

    # OPA restarted: it gets the list from Gavel (or its persisted copy), and the new token works.
    with opa_with_gavel_authz(home, files, config, port):
        wait_until(lambda: gavel_can_manage(instance.pk), timeout=30, message="Gavel's token after a restart")


def test_a_rotation_interrupted_while_opa_is_down_resumes_where_it_stopped(live_server, tmp_path, settings):
    settings.GAVEL_TOKEN_ROTATION_GRACE_SECONDS = 2
    port = stack.free_port()
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1",
                                  url=f"http://127.0.0.1:{port}")
    _, opa_token = opa_credentials.issue_token(instance)
    files = opa_authz.bootstrap(instance)
    config = stack.opa_config(f"{live_server.url}/api/v1/opa", opa_token, {"instance": "opa-eu-1"},
                              authz_config(live_server.url, opa_token))
    home = tmp_path / "opa"
    with opa_with_gavel_authz(home, files, config, port):
        wait_until(lambda: gavel_can_manage(instance.pk), timeout=30, message="OPA took Gavel's token")
    old_token = OpaInstance.objects.get(pk=instance.pk).token

    instance = opa_authz.start_rotation(instance)
    with pytest.raises(OpaUnreachable):  # OPA is down: the new token cannot be confirmed
        opa_authz.rotate(instance.pk)
    instance.refresh_from_db()
    assert (instance.token, instance.token_state) == (old_token, GavelTokenState.ADDING)
    assert "127.0.0.1" in instance.token_detail  # the page says why

    def rotation_done():
        try:
            return opa_authz.rotate(instance.pk).token_state == GavelTokenState.ACTIVE
        except opa_authz.NotYetApplied:
            return False

    with opa_with_gavel_authz(home, files, config, port):
        wait_until(rotation_done, timeout=40, message="the resumed rotation")
        instance.refresh_from_db()
        assert instance.token != old_token and gavel_can_manage(instance.pk)
        assert not opa_authz.opa_accepts(instance, old_token)
