"""Bundles in object storage: Gavel writes each object-storage environment's signed bundle to a real
S3-compatible bucket (versitygw) whenever it may have changed, and a real OPA with OPA's own S3
signing pulls it from there and answers with the published version."""
import configparser
import gzip
import hashlib
import io
import json
import tarfile

import boto3
import pytest
from botocore.config import Config
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from core.opa.client import opa_client
from fleet import bundles
from fleet.delivery import signing, storage
from fleet import credentials as opa_credentials
from fleet.models import Environment
from policies import services
from policies.models import Publication
from tests.factories import PolicyFactory
from tests.fleet.support import extra_opa, s3_bucket_server
from tests.support import decisions_served, settle_decision_logs, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with s3_bucket_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def bucket(s3_server, settings):
    endpoint, credentials = s3_server
    settings.GAVEL_BUNDLE_S3_ENDPOINT = endpoint
    settings.GAVEL_BUNDLE_S3_ACCESS_KEY, settings.GAVEL_BUNDLE_S3_SECRET_KEY = credentials.writer
    storage.ensure_bucket()
    return credentials


def edge_in_bucket(name="edge") -> Environment:
    environment = Environment.objects.create(name=name, delivery=Environment.Delivery.PULL)
    storage.choose_store(environment, Environment.BundleStore.OBJECT_STORAGE)
    return environment


def stored(environment) -> bytes:
    return storage.read_back(storage.object_key(environment))


def members(body: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        return {m.name.lstrip("/"): json.loads(tar.extractfile(m).read()) if m.name.endswith(("manifest", ".json"))
                else tar.extractfile(m).read() for m in tar.getmembers()}


def test_publishing_writes_the_signed_bundle_to_the_bucket_when_it_changed(bucket, make_user, settings):
    policy = PolicyFactory(name="budget")
    edge = edge_in_bucket()  # a worker may write the bundle as well (the task is queued): either is fine
    assert storage.publish(edge.pk).revision == "" and members(stored(edge))[".manifest"]["revision"] == ""
    services.request_publication(policy.latest_version, requested_by=make_user("security_admin"), environment=edge)

    published = storage.publish(edge.pk)
    body = stored(edge)
    assert published.revision == "budget@1" and published.key == "bundles/edge.tar.gz"
    assert members(body)[".manifest"]["revision"] == "budget@1" and ".signatures.json" in members(body)
    assert body == bundles.build_bundle(edge).body and hashlib.sha256(body).hexdigest() == published.etag
    edge.refresh_from_db()
    assert edge.published_etag == published.etag and edge.published_revision == "budget@1" and not edge.publish_detail
    assert storage.publish(edge.pk).written is False  # the same bundle is the same bytes: not written again

    # The read-only key OPA gets may read the bundle but not replace it.
    reader = boto3.client("s3", endpoint_url=settings.GAVEL_BUNDLE_S3_ENDPOINT, region_name="us-east-1",
                          aws_access_key_id=bucket.reader[0], aws_secret_access_key=bucket.reader[1],
                          config=Config(s3={"addressing_style": "path"}))
    assert reader.get_object(Bucket="gavel-bundles", Key=published.key)["Body"].read() == body
    with pytest.raises(Exception, match="AccessDenied"):
        reader.put_object(Bucket="gavel-bundles", Key=published.key, Body=b"tampered")


def test_choosing_object_storage_needs_a_pull_environment_and_a_bucket(settings, make_user):
    push = Environment.objects.create(name="stage")
    with pytest.raises(ValueError, match="delivers by push"):
        storage.choose_store(push, Environment.BundleStore.OBJECT_STORAGE)
    pull = Environment.objects.create(name="edge", delivery=Environment.Delivery.PULL)
    settings.GAVEL_BUNDLE_S3_ENDPOINT = ""
    with pytest.raises(CommandError, match="object storage is not configured"):
        call_command("opa_environment", "edge", "--bundle-store", "object_storage")
    pull.refresh_from_db()
    assert pull.bundle_store == Environment.BundleStore.GAVEL


def test_an_unreachable_bucket_is_a_clear_error_kept_on_the_environment(settings, client, make_user):
    settings.GAVEL_BUNDLE_S3_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there
    settings.GAVEL_BUNDLE_S3_ACCESS_KEY = settings.GAVEL_BUNDLE_S3_SECRET_KEY = "k"
    edge = Environment.objects.create(name="edge", delivery=Environment.Delivery.PULL,
                                      bundle_store=Environment.BundleStore.OBJECT_STORAGE)
    with pytest.raises(storage.StorageUnavailable, match="writing bundles/edge.tar.gz to bucket gavel-bundles"):
        storage.publish(edge.pk)
    storage.record_failure(edge.pk, "writing bundles/edge.tar.gz to bucket gavel-bundles: could not connect")
    client.force_login(make_user("security_admin"))
    page = client.get(reverse("fleet:environments")).content.decode()
    assert "not written" in page and "could not connect" in page


def test_an_opa_with_s3_signing_pulls_the_bundle_from_the_bucket(
        bucket, opa, live_server, celery_worker, make_user, tmp_path, client):
    policy = PolicyFactory(name="budget")
    edge = edge_in_bucket()
    _, token = opa_credentials.add_instance(edge, "edge-1")
    (tmp_path / "gavel-token").write_text(token)
    s3_file = configparser.ConfigParser()
    s3_file["gavel"] = {"aws_access_key_id": bucket.reader[0], "aws_secret_access_key": bucket.reader[1]}
    with open(tmp_path / "s3-credentials", "w") as out:
        s3_file.write(out)

    # The configuration the environments page shows, with the files' paths and a faster polling.
    client.force_login(make_user("security_admin"))
    page = client.get(reverse("fleet:environments")).content.decode()
    assert "s3_signing" in page and "resource: bundles/edge.tar.gz" in page
    config = yaml.safe_load(signing.opa_config("edge", f"{live_server.url}/api/v1/opa",
                                               bucket=storage.bucket_location(edge)))
    config["services"]["gavel"]["credentials"]["bearer"]["token_path"] = str(tmp_path / "gavel-token")
    config["services"]["gavel_bucket"]["credentials"]["s3_signing"]["profile_credentials"]["path"] = str(
        tmp_path / "s3-credentials")
    config["bundles"]["edge"]["polling"] = {"min_delay_seconds": 1, "max_delay_seconds": 2}
    config.pop("decision_logs")  # the stack's, which ships within seconds
    with extra_opa(tmp_path / "opa", f"{live_server.url}/api/v1/opa", {"instance": "edge-1"}, config) as url:
        publication = services.request_publication(policy.latest_version, requested_by=make_user("security_admin"),
                                                   environment=edge)
        # The worker writes the bundle to the bucket after the commit; OPA downloads it from there,
        # activates it and reports that to Gavel, which confirms the publication.
        wait_until(lambda: Publication.objects.get(pk=publication.pk).status == Publication.Status.OK, timeout=40,
                   message="OPA activating the bundle from the bucket")
        edge.refresh_from_db()
        assert edge.published_revision == "budget@1"
        served = decisions_served(url)
        with opa_client(url) as edge_opa:
            answer = edge_opa.decide("gavel_entry/budget/decision", {"user": {"role": "admin"}})
        assert answer["result"]["allow"] is True and answer["result"]["policy_version"] == 1
        settle_decision_logs(url, served)
