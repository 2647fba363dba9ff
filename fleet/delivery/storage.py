"""Bundles in object storage: each environment that delivers from object storage has its signed
bundle written to an S3-compatible bucket whenever it may have changed, and its OPAs download it
from there with OPA's own S3 signing, so Gavel's web process is off the fleet's polling path.

The object is `<GAVEL_BUNDLE_S3_PREFIX><environment>.tar.gz` in GAVEL_BUNDLE_S3_BUCKET at
GAVEL_BUNDLE_S3_ENDPOINT, with the bundle's SHA-256 and revision as metadata. `publish` builds the
bundle (bundles.build_bundle, the same bytes Gavel's bundle service would serve), leaves the object
alone when it already holds those bytes, else writes it and reads it back before recording it.
The environment's row is locked meanwhile, so two publications never write an older bundle over a
newer one. The task `fleet.tasks.publish_bundle` calls it; Environment.bundle_changed queues it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..bundles import build_bundle
from ..models import Environment


class StorageNotConfigured(ValueError):
    """GAVEL_BUNDLE_S3_ENDPOINT (or the credentials) is not set."""


class StorageUnavailable(Exception):
    """The bucket did not answer, refused the write, or gave back other bytes; try again."""


@dataclass
class Published:
    environment: str
    key: str
    etag: str  # SHA-256 of the bundle
    revision: str
    written: bool  # False: the bucket held these bytes already


def configured() -> bool:
    return bool(settings.GAVEL_BUNDLE_S3_ENDPOINT and settings.GAVEL_BUNDLE_S3_ACCESS_KEY
                and settings.GAVEL_BUNDLE_S3_SECRET_KEY)


def client():
    if not configured():
        raise StorageNotConfigured("object storage is not configured: set GAVEL_BUNDLE_S3_ENDPOINT, "
                                   "GAVEL_BUNDLE_S3_ACCESS_KEY and GAVEL_BUNDLE_S3_SECRET_KEY")
    return boto3.client(
        "s3", endpoint_url=settings.GAVEL_BUNDLE_S3_ENDPOINT, region_name=settings.GAVEL_BUNDLE_S3_REGION,
        aws_access_key_id=settings.GAVEL_BUNDLE_S3_ACCESS_KEY,
        aws_secret_access_key=settings.GAVEL_BUNDLE_S3_SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=20,
                      retries={"max_attempts": 2, "mode": "standard"}))


def object_key(environment: Environment) -> str:
    return f"{settings.GAVEL_BUNDLE_S3_PREFIX}{environment.name}.tar.gz"


def _stored_sha256(s3, key: str) -> str:
    try:
        head = s3.head_object(Bucket=settings.GAVEL_BUNDLE_S3_BUCKET, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return ""
        raise
    return head.get("Metadata", {}).get("sha256", "")


def read_back(key: str, s3=None) -> bytes:
    """The object as the bucket holds it."""
    s3 = s3 or client()
    return s3.get_object(Bucket=settings.GAVEL_BUNDLE_S3_BUCKET, Key=key)["Body"].read()


def publish(environment_id: int) -> Published:
    """Write the environment's bundle to the bucket unless it holds it already; raise
    StorageUnavailable (to retry) when the bucket fails, with the reason kept on the environment."""
    s3 = client()
    with transaction.atomic():
        environment = Environment.objects.select_for_update().get(pk=environment_id)
        bundle = build_bundle(environment)
        key = object_key(environment)
        try:
            written = _stored_sha256(s3, key) != bundle.etag
            if written:
                s3.put_object(Bucket=settings.GAVEL_BUNDLE_S3_BUCKET, Key=key, Body=bundle.body,
                              ContentType="application/gzip",
                              Metadata={"sha256": bundle.etag, "revision": bundle.revision[:1000]})
                if hashlib.sha256(read_back(key, s3)).hexdigest() != bundle.etag:
                    raise StorageUnavailable(f"the bucket gave back other bytes for {key}")
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"writing {key} to bucket {settings.GAVEL_BUNDLE_S3_BUCKET}: {exc}") from exc
        environment.published_etag = bundle.etag
        environment.published_revision = bundle.revision[:2000]
        environment.published_at = timezone.now() if written or not environment.published_at \
            else environment.published_at
        environment.publish_detail = ""
        environment.save(update_fields=["published_etag", "published_revision", "published_at", "publish_detail"])
    return Published(environment.name, key, bundle.etag, bundle.revision, written)


def choose_store(environment: Environment, store: str) -> None:
    """Set where the environment's OPAs download its bundle. Object storage needs pull delivery
    and a configured bucket; choosing it writes the bundle there once this commits."""
    if store not in Environment.BundleStore.values:
        raise ValueError(f"unknown bundle store {store!r}: one of {', '.join(Environment.BundleStore.values)}")
    if store == Environment.BundleStore.OBJECT_STORAGE:
        if not environment.is_pull:
            raise ValueError(f"{environment.name} delivers by push: only a pull environment's OPAs download a bundle")
        if not configured():
            raise StorageNotConfigured("object storage is not configured: set GAVEL_BUNDLE_S3_ENDPOINT, "
                                       "GAVEL_BUNDLE_S3_ACCESS_KEY and GAVEL_BUNDLE_S3_SECRET_KEY")
    environment.bundle_store = store
    environment.save(update_fields=["bundle_store"])
    environment.bundle_changed()


def record_failure(environment_id: int, detail: str) -> None:
    Environment.objects.filter(pk=environment_id).update(publish_detail=detail[:2000])


def ensure_bucket() -> None:
    """Create the bucket when it does not exist (make run, tests; production creates its own)."""
    s3 = client()
    try:
        s3.head_bucket(Bucket=settings.GAVEL_BUNDLE_S3_BUCKET)
    except ClientError:
        s3.create_bucket(Bucket=settings.GAVEL_BUNDLE_S3_BUCKET)


def bucket_location(environment: Environment) -> dict:
    """Where an OPA finds the environment's bundle (signing.opa_config's `bucket`)."""
    return {"url": f"{settings.GAVEL_BUNDLE_S3_ENDPOINT.rstrip('/')}/{settings.GAVEL_BUNDLE_S3_BUCKET}",
            "resource": object_key(environment), "region": settings.GAVEL_BUNDLE_S3_REGION}


def object_url(environment: Environment) -> str:
    location = bucket_location(environment)
    return f"{location['url']}/{location['resource']}"
