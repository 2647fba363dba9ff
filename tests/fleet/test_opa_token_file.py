"""OPA reading its token to Gavel from a file (`credentials.bearer.token_path`), set up the way
`make run` and docker compose do it: `manage.py opa_environment ENV --add-instance NAME URL
--instance-token NAME --token-file PATH`. Running the command again rotates the token, and the
running OPA follows it with no restart and no batch refused or lost."""
import io

import pytest
from django.core.management import call_command

from audit import ingest_health
from core.models import Decision, LogBatch
from core.opa.client import opa_client
from fleet import credentials as opa_credentials
from fleet.models import OpaCredential, OpaInstance
from tests.support import stack, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = "package probe\n\nimport rego.v1\n\nallow if input.n >= 0\n"


def issue_into(token_file, opa_url):
    """What `make run` does before it starts OPA (scripts/stack.py issue_dev_opa_token)."""
    call_command("opa_environment", "dev", "--add-instance", "local-opa", opa_url, "--instance-token", "local-opa",
                 "--token-file", str(token_file), stdout=io.StringIO())
    return OpaCredential.objects.filter(instance__name="local-opa").first()  # the newest


def decide(url, first, count):
    with opa_client(url) as opa:
        return [opa.decide("probe/allow", {"n": n})["decision_id"] for n in range(first, first + count)]


def stored(ids):
    return Decision.objects.filter(decision_id__in=ids).count()


def batch_instances(ids):
    """The OPA instances the batches carrying these decisions were accepted from."""
    batches = Decision.objects.filter(decision_id__in=ids).values("batch")
    return set(LogBatch.objects.filter(pk__in=batches).values_list("instance", flat=True))


def refused_401():
    return (ingest_health.refused_last_hour() or {}).get(401, 0)


def test_opa_follows_a_rotated_token_file_without_a_restart_and_loses_nothing(live_server, celery_worker, tmp_path):
    port = stack.free_port()
    opa_url = f"http://127.0.0.1:{port}"
    token_file = tmp_path / "secrets" / "gavel-token"
    first = issue_into(token_file, opa_url)
    assert token_file.stat().st_mode & 0o777 == 0o600
    refused_before = refused_401()

    proc = stack.start_opa(tmp_path / "opa", port, f"{live_server.url}/api/v1/opa", "",
                           {"environment": "dev", "instance": "local-opa"}, token_path=token_file)
    try:
        assert "token_path" in (tmp_path / "opa" / "opa-config.json").read_text()
        with opa_client(opa_url) as opa:
            opa.put_policy("probe", PROBE)
        before = decide(opa_url, 0, 5)
        wait_until(lambda: stored(before) == 5, timeout=30, message="logs shipped with the first token")
        instance = OpaInstance.objects.get(environment__name="dev", name="local-opa")
        assert batch_instances(before) == {instance.pk}

        second = issue_into(token_file, opa_url)  # the file is replaced under the running OPA
        assert second.pk != first.pk and token_file.stat().st_mode & 0o777 == 0o600
        after = decide(opa_url, 5, 5)
        wait_until(lambda: OpaCredential.objects.get(pk=second.pk).last_used_at, timeout=30,
                   message="OPA presenting the new token")
        wait_until(lambda: stored(after) == 5, timeout=30, message="logs shipped with the new token")

        opa_credentials.revoke(OpaCredential.objects.get(pk=first.pk))
        last = decide(opa_url, 10, 5)
        wait_until(lambda: stored(last) == 5, timeout=30, message="logs shipped after the old token's revocation")
        assert proc.poll() is None  # the same OPA process throughout
    finally:
        stack.stop_process(proc, "OPA with a token file")

    ids = before + after + last
    assert len(set(ids)) == 15 and Decision.objects.filter(decision_id__in=ids).count() == 15
    assert set(Decision.objects.filter(decision_id__in=ids).values_list("instance", flat=True)) == {"local-opa"}
    assert batch_instances(ids) == {instance.pk}
    assert refused_401() <= refused_before  # the file is swapped whole: OPA never sent a stale or half token
    first.refresh_from_db()
    assert first.state == OpaCredential.State.REVOKED
    assert list(instance.credentials.usable()) == [second]  # one live token, however often it rotates
