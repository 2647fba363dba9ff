"""OPA's tokens to Gavel: one per instance, stored as SHA-256 only, shown once, rotatable
(the old one works until the new one is first used or the grace period ends) and revocable.
A batch or status report says where it came from by the token it carries."""
import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from audit.ingest import store_batch
from core.digest import sha256_of
from core.models import Decision, LogBatch
from fleet import credentials as opa_credentials
from fleet import opa_authz
from fleet.models import Environment, GavelTokenState, OpaCredential, OpaInstance
from tests.factories import EnvironmentFactory, OpaInstanceFactory

pytestmark = pytest.mark.django_db


def bearer(token):
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def upload(client, token, labels=None):
    event = {"decision_id": str(uuid.uuid4()), "timestamp": "2026-11-27T08:15:30Z", "path": "gavel/budget/decision",
             "input": {"user": {"id": "dana"}}, "result": {"allow": True}, "labels": labels or {}}
    response = client.post("/api/v1/opa/logs", data=gzip.compress(json.dumps([event]).encode()),
                           content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **bearer(token))
    return response, event["decision_id"]


def status_report(client, token, labels):
    report = {"labels": labels, "bundles": {}, "plugins": {"decision_logs": {"state": "OK"}}}
    return client.post(reverse("opa-status"), data=json.dumps(report), content_type="application/json",
                       **bearer(token))


def test_a_token_is_kept_only_as_its_hash():
    instance = OpaInstanceFactory()
    credential, token = opa_credentials.issue_token(instance)
    assert credential.token_hash == sha256_of(token) and len(token) > 40
    stored = json.dumps(list(OpaCredential.objects.values()), default=str)
    assert token not in stored


def test_a_batch_with_an_instance_token_is_attributed_to_that_instance(client):
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1")
    _, token = opa_credentials.issue_token(instance)

    # OPA's labels claim something else: the token decides where the decision was made.
    response, decision_id = upload(client, token, labels={"environment": "dev", "instance": "laptop", "id": "x"})

    assert response.status_code == 204
    batch = LogBatch.objects.get()
    assert (batch.environment, batch.instance) == (instance.environment, instance)
    store_batch(batch.pk)
    decision = Decision.objects.get(decision_id=decision_id)
    assert (decision.environment, decision.instance) == ("prod", "opa-eu-1")
    assert decision.labels["instance"] == "laptop"  # what OPA said is kept as it said it
    assert OpaCredential.objects.get().last_used_at is not None


def test_the_bootstrap_token_still_works_and_falls_back_to_the_labels(client, settings):
    response, decision_id = upload(client, settings.GAVEL_OPA_TOKEN, labels={"environment": "dev", "id": "c0ffee"})
    assert response.status_code == 204
    batch = LogBatch.objects.get()
    assert batch.environment is None and batch.instance is None
    store_batch(batch.pk)
    decision = Decision.objects.get(decision_id=decision_id)
    assert (decision.environment, decision.instance) == ("dev", "c0ffee")


def test_the_bootstrap_token_can_be_turned_off_while_instance_tokens_keep_working(client, settings):
    settings.GAVEL_OPA_BOOTSTRAP_TOKEN_OFF = True
    _, token = opa_credentials.issue_token(OpaInstanceFactory(environment=EnvironmentFactory(name="prod")))
    refused, _ = upload(client, settings.GAVEL_OPA_TOKEN, labels={"environment": "prod", "id": "c0ffee"})
    assert refused.status_code == 401 and not LogBatch.objects.exists()
    assert status_report(client, settings.GAVEL_OPA_TOKEN, {"id": "c0ffee"}).status_code == 401
    accepted, _ = upload(client, token)
    assert accepted.status_code == 204 and LogBatch.objects.count() == 1


@pytest.mark.parametrize("debug, variables, off", [
    ("0", {}, True),                                    # production: per-instance tokens only
    ("0", {"GAVEL_OPA_BOOTSTRAP_TOKEN_OFF": "0"}, False),  # a fleet still moving may keep it a while
    ("1", {}, False),
])
def test_production_settings_turn_the_bootstrap_token_off(debug, variables, off):
    env = {name: value for name, value in os.environ.items()
           if name not in ("GAVEL_OPA_BOOTSTRAP_TOKEN_OFF", "GAVEL_STACK_HOME")}
    env |= {"DEBUG": debug, "SECRET_KEY": "k" * 50, "GAVEL_OPA_TOKEN": "t" * 30, **variables}
    out = subprocess.run([sys.executable, "-c", "import console.settings as s; print(s.GAVEL_OPA_BOOTSTRAP_TOKEN_OFF)"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(off)


def test_a_decision_id_is_stored_in_one_environment_only(client):
    """An uploader of another environment re-sending a decision does not store it twice."""
    _, prod = opa_credentials.issue_token(OpaInstanceFactory(environment=EnvironmentFactory(name="prod")))
    _, staging = opa_credentials.issue_token(OpaInstanceFactory(environment=EnvironmentFactory(name="staging")))
    event = {"decision_id": str(uuid.uuid4()), "timestamp": "2026-11-27T08:15:30Z", "path": "gavel/budget/decision",
             "input": {"user": {"id": "dana"}}, "result": {"allow": True}}
    for token, timestamp in ((prod, event["timestamp"]), (staging, event["timestamp"]),
                             (staging, "2026-11-27T09:00:00Z"), (prod, event["timestamp"])):
        body = gzip.compress(json.dumps([event | {"timestamp": timestamp}]).encode())
        response = client.post("/api/v1/opa/logs", data=body, content_type="application/json", **bearer(token))
        assert response.status_code == 204
        store_batch(LogBatch.objects.latest("pk").pk)
    assert list(Decision.objects.filter(decision_id=event["decision_id"]).values_list("environment", flat=True)) == [
        "prod"]


def test_rotation_keeps_the_old_token_until_the_new_one_is_first_used(client):
    instance = OpaInstanceFactory()
    old, old_token = opa_credentials.issue_token(instance)
    assert upload(client, old_token)[0].status_code == 204

    new, new_token = opa_credentials.issue_token(instance)
    old.refresh_from_db()
    assert old.state == OpaCredential.State.RETIRING and old.replaced_by == new
    assert upload(client, old_token)[0].status_code == 204  # OPA not switched yet: still accepted

    assert upload(client, new_token)[0].status_code == 204  # OPA switched
    assert upload(client, old_token)[0].status_code == 401  # from then on the old one is refused
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, new.state) == (OpaCredential.State.EXPIRED, OpaCredential.State.ACTIVE)
    assert LogBatch.objects.count() == 3


def test_an_unused_successor_ends_the_old_token_after_the_grace_period(client, settings):
    settings.GAVEL_OPA_TOKEN_GRACE_HOURS = 2
    instance = OpaInstanceFactory()
    old, old_token = opa_credentials.issue_token(instance)
    opa_credentials.issue_token(instance)
    old.refresh_from_db()
    assert timedelta(hours=1, minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=2)

    OpaCredential.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert upload(client, old_token)[0].status_code == 401
    assert not LogBatch.objects.exists()


def test_a_revoked_token_is_refused_at_once(client):
    instance = OpaInstanceFactory()
    credential, token = opa_credentials.issue_token(instance)
    opa_credentials.revoke(credential)
    response, _ = upload(client, token)
    assert response.status_code == 401 and not LogBatch.objects.exists()
    assert client.get(reverse("opa-bundle", args=[instance.environment.name]), **bearer(token)).status_code == 401


def test_a_status_report_updates_the_tokens_instance_not_a_namesake(client):
    staging = OpaInstanceFactory(environment=EnvironmentFactory(name="staging"), name="opa-1")
    prod = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-1")
    _, token = opa_credentials.issue_token(prod)

    assert status_report(client, token, {"instance": "opa-1", "environment": "staging"}).status_code == 204
    assert status_report(client, token, {"id": "renamed-in-opa"}).status_code == 204

    prod.refresh_from_db()
    staging.refresh_from_db()
    assert prod.last_status_at is not None and prod.healthy is True
    assert staging.last_status_at is None
    assert not OpaInstance.objects.filter(name="renamed-in-opa").exists()  # no instance registered by label


def test_an_instance_token_fetches_its_own_environments_bundle_only(client):
    pull = EnvironmentFactory(name="edge", delivery=Environment.Delivery.PULL)
    _, token = opa_credentials.issue_token(OpaInstanceFactory(environment=pull))
    other = EnvironmentFactory(name="other", delivery=Environment.Delivery.PULL)
    assert client.get(reverse("opa-bundle", args=["edge"]), **bearer(token)).status_code == 200
    assert client.get(reverse("opa-bundle", args=[other.name]), **bearer(token)).status_code == 401


def test_the_bootstrap_token_does_not_report_status(client, settings):
    """Status needs to know the environment: an instance's token or the bundle token."""
    assert status_report(client, settings.GAVEL_OPA_TOKEN, {"id": "opa-1"}).status_code == 401


# --- pages and API: a token appears in the answer that issues it, and nowhere after ---------


def pages_and_api(client):
    answers = [client.get(reverse("fleet:environments")).content.decode()]
    for url in ("/api/v1/environments/", "/api/v1/environments/prod/", "/api/v1/environments/prod/instances/",
                "/api/v1/environments/prod/instances/opa-eu-1/"):
        response = client.get(url)
        assert response.status_code == 200, url
        answers.append(response.content.decode())
    return "\n".join(answers)


def test_tokens_are_shown_once_on_the_page_and_never_again(client, make_user):
    prod = EnvironmentFactory(name="prod", opa_url="http://10.0.0.5:8181")
    client.force_login(make_user("security_admin"))

    added = client.post(reverse("fleet:add_instance", args=["prod"]), {"name": "opa-eu-1", "url": ""})
    assert added.status_code == 200 and "no-store" in added["Cache-Control"]
    first = added.context["token"]
    assert first in added.content.decode()
    rotated = client.post(reverse("fleet:issue_token", args=["prod", "opa-eu-1"]))
    second = rotated.context["token"]
    assert second in rotated.content.decode() and second != first
    instance = prod.instances.get()
    opa_authz.bootstrap(instance)  # Gavel's own token to this OPA
    instance.refresh_from_db()

    everything = pages_and_api(client)

    assert 'data-testid="credential-' in everything and "Replaced, still valid" in everything
    for secret in (first, second, instance.token):
        assert secret not in everything
    for role in ("auditor", "policy_author"):  # readers see the fleet, without the buttons or tokens
        client.force_login(make_user(role))
        page = client.get(reverse("fleet:environments")).content.decode()
        assert "Revoke" not in page and first not in page


def test_the_api_issues_revokes_and_never_repeats_a_token(client, make_user):
    EnvironmentFactory(name="prod")
    client.force_login(make_user("security_admin"))

    created = client.post("/api/v1/environments/prod/instances/", {"name": "opa-eu-1", "url": "http://10.0.0.5:8181"},
                          content_type="application/json")
    assert created.status_code == 201, created.content
    first = created.json()["token"]
    assert created.json()["instance"]["credentials"][0]["state"] == "unused"
    issued = client.post("/api/v1/environments/prod/instances/opa-eu-1/tokens/")
    assert issued.status_code == 201
    second, credential_id = issued.json()["token"], issued.json()["credential"]["id"]
    revoked = client.post(f"/api/v1/environments/prod/instances/opa-eu-1/tokens/{credential_id}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    everything = pages_and_api(client)
    assert first not in everything and second not in everything
    assert upload(client, second)[0].status_code == 401
    assert upload(client, first)[0].status_code == 204  # the first was never replaced by a used token


def test_bad_instance_input_is_refused_and_nothing_is_stored(client, make_user):
    EnvironmentFactory(name="prod")
    client.force_login(make_user("security_admin"))
    for body in ({"name": "has spaces"}, {"name": "ok", "url": "javascript:alert(1)"}):
        response = client.post("/api/v1/environments/prod/instances/", body, content_type="application/json")
        assert response.status_code == 400, body
    page = client.post(reverse("fleet:add_instance", args=["prod"]), {"name": "<script>x</script>"}, follow=True)
    assert "An instance name is letters" in page.content.decode()
    assert not OpaInstance.objects.exists() and not OpaCredential.objects.exists()


def test_gavel_cannot_rotate_a_token_it_does_not_manage(client, make_user):
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="prod"), name="opa-eu-1",
                                  url="http://10.0.0.5:8181", token="set-by-configuration")
    client.force_login(make_user("security_admin"))
    response = client.post("/api/v1/environments/prod/instances/opa-eu-1/rotate-gavel-token/")
    assert response.status_code == 400 and "manage.py opa_authz" in response.content.decode()
    instance.refresh_from_db()
    assert instance.token_state == GavelTokenState.UNMANAGED and instance.token == "set-by-configuration"


# --- the management commands ------------------------------------------------------------


def test_the_command_prints_an_instance_token_once():
    out = io.StringIO()
    call_command("opa_environment", "staging", "--instance-token", "opa-a", stdout=out)
    token = out.getvalue().split("(shown once): ")[1].strip()
    instance = OpaInstance.objects.get(environment__name="staging", name="opa-a")
    assert instance.credentials.get().token_hash == sha256_of(token)


def test_the_command_writes_an_instance_token_to_the_file_opa_reads_and_rotates_it(
        tmp_path, client, django_capture_on_commit_callbacks):
    # What `make run` does on every start (scripts/stack.py issue_dev_opa_token).
    token_file = tmp_path / "opa" / "gavel-token"
    args = ["opa_environment", "dev", "--add-instance", "local-opa", "http://127.0.0.1:8181",
            "--instance-token", "local-opa", "--token-file", str(token_file)]
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command(*args, stdout=out)
    first = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert first not in out.getvalue() and f"written to {token_file}" in out.getvalue()
    assert upload(client, first)[0].status_code == 204

    with django_capture_on_commit_callbacks(execute=True):
        call_command(*args, stdout=io.StringIO())  # the next start rotates it
    second = token_file.read_text().strip()
    assert second != first and token_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in token_file.parent.iterdir()] == ["gavel-token"]  # no staged copy left behind
    assert upload(client, second)[0].status_code == 204
    assert upload(client, first)[0].status_code == 401  # ended by the new token's first use
    instance = OpaInstance.objects.get(environment__name="dev", name="local-opa")
    assert [c.token_hash for c in instance.credentials.usable()] == [sha256_of(second)]
    assert set(LogBatch.objects.values_list("instance", flat=True)) == {instance.pk}


def test_a_token_file_that_cannot_be_written_issues_nothing(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    for path in (not_a_directory / "gavel-token", tmp_path):
        with pytest.raises(CommandError, match="cannot write the token file"):
            call_command("opa_environment", "dev", "--instance-token", "local-opa", "--token-file", str(path),
                         stdout=io.StringIO())
    with pytest.raises(CommandError, match="exactly one --instance-token"):
        call_command("opa_environment", "dev", "--instance-token", "a", "--instance-token", "b",
                     "--token-file", str(tmp_path / "gavel-token"), stdout=io.StringIO())
    assert not OpaInstance.objects.exists() and not OpaCredential.objects.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_opa_authz_writes_the_policy_and_config_never_the_token(tmp_path, client):
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="staging"), name="opa-a")
    _, opa_token = opa_credentials.issue_token(instance)
    call_command("opa_authz", "staging", "opa-a", "--out", str(tmp_path), stdout=io.StringIO())
    instance.refresh_from_db()
    assert instance.token_state == GavelTokenState.ACTIVE
    assert "package system.authz" in (tmp_path / "gavel-authz.rego").read_text()
    assert "resource: authz" in (tmp_path / "gavel-authz-config.yaml").read_text()
    assert all(instance.token not in path.read_text() for path in tmp_path.iterdir())

    # The OPA downloads the hash of Gavel's token with its own token to Gavel; nobody else can.
    bundle = client.get(reverse("opa-authz"), **bearer(opa_token))
    assert bundle.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(bundle.content), mode="r:gz") as tar:
        data = json.load(tar.extractfile("/data.json"))
    assert data == {"system": {"gavel_tokens": {sha256_of(instance.token): True}}}
    assert instance.token.encode() not in gzip.decompress(bundle.content)
    assert client.get(reverse("opa-authz"), HTTP_IF_NONE_MATCH=bundle["ETag"], **bearer(opa_token)).status_code == 304
    assert client.get(reverse("opa-authz"), **bearer(settings.GAVEL_OPA_TOKEN)).status_code == 401


def test_during_a_rotation_opa_is_sent_both_hashes_then_only_the_new_one(settings):
    settings.GAVEL_TOKEN_ROTATION_GRACE_SECONDS = 30
    instance = OpaInstanceFactory(url="http://10.0.0.5:8181")
    opa_authz.bootstrap(instance)
    instance = opa_authz.start_rotation(instance)
    assert instance.token_state == GavelTokenState.ADDING
    assert opa_authz.accepted_tokens(instance) == [instance.token, instance.other_token]
    # What rotate() saves once OPA took the new one: for the grace period the old one stays
    # listed, since a Gavel process may have read it just before the switch.
    instance.token, instance.other_token = instance.other_token, instance.token
    instance.token_state = GavelTokenState.REMOVING
    instance.token_issued_at = timezone.now() - timedelta(seconds=29)
    assert opa_authz.accepted_tokens(instance) == [instance.token, instance.other_token]
    instance.save()
    with pytest.raises(opa_authz.NotYetApplied, match="keeps the old token until"):
        opa_authz.rotate(instance.pk)  # not even asking OPA yet
    instance.token_issued_at = timezone.now() - timedelta(seconds=31)
    assert opa_authz.accepted_tokens(instance) == [instance.token]


def test_re_adding_an_instance_keeps_the_token_gavel_manages():
    instance = OpaInstanceFactory(environment=EnvironmentFactory(name="staging"), name="opa-a")
    opa_authz.bootstrap(instance)
    instance.refresh_from_db()
    managed = instance.token
    call_command("opa_environment", "staging", "--add-instance", "opa-a", "http://10.0.0.7:8181", stdout=io.StringIO())
    instance.refresh_from_db()
    assert (instance.url, instance.token, instance.token_state) == ("http://10.0.0.7:8181", managed,
                                                                     GavelTokenState.ACTIVE)
