"""What people do with policies: create them, save versions, publish to OPA.

Views, the API and management commands all call these functions; none of them
talks to OPA or writes these models on its own.
"""
from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from core import queue
from core.digest import sha256_of
from core.opa.client import OpaRejected, OpaUnreachable, opa_client
from fleet.models import Environment
from policies.rego.check import RegoCompileError, RegoError, check_source
from rollout.entrypoint import entry_policy_id, entry_source
from rollout.services import push_runtime_after_commit

from .models import ActiveVersion, Policy, PolicyVersion, Publication, PublishEvent
from .rego import lint
from .rego import tests as testing
from .summaries import summary_for_version

log = logging.getLogger(__name__)


class VersionRefused(Exception):
    """A version that compiles but cannot be saved (wrong package, nothing changed)."""


class PublishRefused(Exception):
    """A version that may not be published (its tests fail, its policy is retired, ...)."""


def _checked_package(policy_name: str, source: str) -> str:
    if not source.strip():
        raise RegoCompileError([RegoError(f"{policy_name}.rego", 0, 0, "empty", "the source is empty")])
    return check_source(f"{policy_name}.rego", source)


def _checks(policy_name: str, source: str, tests: str):
    """Run the version's tests and lint it, before anything is written: a test file that
    does not compile refuses the whole version. Failing tests do not; they block publishing."""
    report = testing.run_tests(policy_name, source, tests) if tests.strip() else None
    return report, lint.lint_source(f"{policy_name}.rego", source)


def run_version_tests(version: PolicyVersion) -> testing.TestReport:
    """Run a saved version's Rego tests again, in the sandbox (`gavel verify`, checks/)."""
    return testing.run_tests(version.policy.name, version.source, version.tests)


def _create_version(policy: Policy, number: int, *, source: str, tests: str, author, message: str, checks):
    report, warnings = checks
    version = PolicyVersion.objects.create(
        policy=policy, number=number, source=source, tests=tests, author=author, message=message
    )
    if report is not None:
        testing.record(version, report)
    lint.record(version, warnings)
    _summarize(version)
    return version


@transaction.atomic
def create_policy(*, name: str, title: str, source: str, author, message: str, description: str = "",
                  tests: str = "", category: str = "", team: str = "", bundle: str = "") -> Policy:
    """A new policy with its first version. The package is the one the source declares."""
    package = _checked_package(name, source)
    if Policy.objects.filter(package=package).exists():
        raise VersionRefused(f"package {package} is already managed by another policy")
    checks = _checks(name, source, tests)
    policy = Policy.objects.create(
        name=name, package=package, title=title, description=description, created_by=author,
        team=team, bundle=bundle, **({"category": category} if category else {}),
    )
    _create_version(policy, 1, source=source, tests=tests, author=author, message=message, checks=checks)
    return policy


@transaction.atomic
def save_version(policy: Policy, *, source: str, author, message: str, tests: str = "") -> PolicyVersion:
    """Compile `source` with OPA, run its tests, and save it as the policy's next version.
    Nothing is saved on error."""
    if policy.retired_at:
        raise VersionRefused(f"policy {policy.name} is retired")
    package = _checked_package(policy.name, source)
    if package != policy.package:
        raise VersionRefused(f"the source declares package {package}, but this policy is {policy.package}")
    checks = _checks(policy.name, source, tests)
    policy = Policy.objects.select_for_update().get(pk=policy.pk)  # serialises version numbering
    latest = policy.latest_version
    if latest is not None and latest.sha256 == sha256_of(source) and latest.tests == tests:
        raise VersionRefused(f"the source and tests are identical to version {latest.number}")
    number = (latest.number + 1) if latest else 1
    return _create_version(policy, number, source=source, tests=tests, author=author, message=message, checks=checks)


def _summarize(version: PolicyVersion) -> None:
    """Phrase the version and check its worked examples in OPA now, while its author is here.
    A summary that cannot be made must not stop a compiled version from being saved."""
    try:
        summary_for_version(version)
    except Exception:  # noqa: BLE001 - the page rebuilds it and shows the error
        log.exception("could not summarise %s", version)


def rules_by_row(summary: dict) -> dict[int, dict]:
    """Each rule of a summary (summaries.summarize's shape) by the row it starts on: its name, title,
    effect and plain-language sentence. Explain and the playground name the rules that held by it."""
    records = [r for g in summary.get("groups", []) for r in g.get("rules", [])]
    records += list(summary.get("helpers", [])) + list(summary.get("values", []))
    return {int(r["row"]): {"name": r.get("name"), "title": r.get("title"), "effect": r.get("effect"),
                            "sentence": r.get("sentence")} for r in records if r.get("row")}


def version_rules(version: PolicyVersion) -> dict[int, dict]:
    """rules_by_row() of a saved version's summary; none when it cannot be made."""
    try:
        return rules_by_row(summary_for_version(version))
    except Exception:  # noqa: BLE001 - titles are a courtesy: the rules are still listed by name
        log.exception("no summary for %s", version)
        return {}


def ensure_publishable(version: PolicyVersion) -> None:
    """Refuse versions OPA must not run: failing Rego tests, or a retired policy."""
    if version.policy.retired_at:
        raise PublishRefused(f"policy {version.policy.name} is retired")
    run = getattr(version, "test_run", None) if version.tests.strip() else None
    if run is not None and not run.passed:
        raise PublishRefused(
            f"version {version.number} cannot be published: {run.failed} of its {run.total} Rego tests fail"
        )


def request_publication(version: PolicyVersion, *, requested_by,
                        environment: Environment | None = None) -> Publication:
    """Queue the publication of `version` to `environment` (default: GAVEL_ENVIRONMENT's).
    The worker pushes it once this transaction commits.

    Push: one publication per OPA instance, grouped; the environment runs the version once
    all of them are confirmed. Pull: the environment's bundle carries it and the instances'
    status reports confirm it. Returns the (first) publication.

    The low-level push, with no second-person review: people go through policies/review.py;
    the demo seeding and `publish_if_missing` (re-publishing what OPA already ran) call it directly.
    """
    ensure_publishable(version)
    environment = environment or Environment.objects.default()
    with transaction.atomic():
        if environment.is_pull:
            return _queue_pull(version, requested_by, environment)
        targets = environment.targets()
        if not targets:
            raise PublishRefused(f"{environment} has no OPA instance in service: add one before publishing there")
        group = uuid.uuid4()
        publications = [
            queue_publication(version, requested_by, target.url or environment.target_url, environment=environment,
                   instance=target if target.pk else None, group=group)
            for target in targets
        ]
    return publications[0]


def _supersede(queryset) -> None:
    # An older push still retrying must not land after this one and undo it.
    queryset.exclude(status__in=Publication.FINISHED).update(
        status=Publication.Status.FAILED, detail="Superseded by a newer publication before it reached OPA")


def queue_publication(version: PolicyVersion, requested_by, target_url: str, **fields) -> Publication:
    """A publication of `version` to the OPA at `target_url`, pushed by the worker after commit;
    an older one still on its way there is superseded."""
    _supersede(Publication.objects.filter(version__policy_id=version.policy_id, target_url=target_url))
    publication = Publication.objects.create(version=version, requested_by=requested_by, target_url=target_url,
                                             **fields)
    queue.after_commit("policies.tasks.push_publication", publication.pk)
    return publication


def bundle_target(environment: Environment) -> str:
    return f"bundle:{environment.name}"


def _queue_pull(version: PolicyVersion, requested_by, environment: Environment) -> Publication:
    """No REST write: the environment's bundle serves the version from now on, and the first
    status report naming it in the bundle's active revision confirms the publication."""
    _supersede(Publication.objects.filter(version__policy_id=version.policy_id, environment=environment))
    publication = Publication.objects.create(
        version=version, requested_by=requested_by, target_url=bundle_target(environment), environment=environment,
        detail="Served in the environment's bundle; waiting for an OPA instance to report it active",
    )
    environment.bundle_changed()  # object storage: the bucket gets the new bundle once this commits
    return publication


def opa_runs(version: PolicyVersion, target_url: str | None = None, token: str | None = None) -> bool:
    """Whether the OPA at `target_url` holds exactly this version and its entrypoint."""
    policy = version.policy
    with opa_client(target_url, token=token) as opa:
        loaded = opa.get_policy(policy.opa_policy_id)
        entry = opa.get_policy(entry_policy_id(policy.name))
    return bool(loaded and entry and sha256_of(loaded["raw"]) == version.sha256
                and entry["raw"] == entry_source(version))


def publish_if_missing(policy: Policy, *, requested_by, environment: Environment | None = None) -> Publication | None:
    """Publish the version the environment runs (else the latest) to its instances unless every
    one of them already holds it, e.g. after OPA restarted empty. Returns the publication, or
    None when nothing was needed. Pull environments need nothing: OPA downloads the bundle."""
    environment = environment or Environment.objects.default()
    version = policy.active_version_in(environment) or policy.latest_version
    if version is None or policy.retired_at or environment.is_pull:
        return None
    if all(opa_runs(version, target.url or environment.target_url, target.token or None)
           for target in environment.targets()):
        return None
    return request_publication(version, requested_by=requested_by, environment=environment)


def attempt_publication(publication: Publication, *, final_attempt: bool = False) -> Publication:
    """Push the version to OPA once, read it back, and record what happened.

    Raises OpaUnreachable (after recording it) so the caller can retry later. The
    policy's active version moves only when OPA's copy matches the version's hash.
    """
    if publication.is_finished:
        return publication
    if publication.instance_id and publication.instance.decommissioned_at:  # taken out while this waited
        publication.status = Publication.Status.FAILED
        publication.detail = f"Cancelled: {publication.instance} was decommissioned"
        publication.save(update_fields=["status", "detail"])
        return publication
    version = publication.version
    policy = version.policy
    publication.attempts += 1
    publication.last_attempt_at = timezone.now()
    entry = entry_source(version)
    client = publication.instance.client() if publication.instance_id else opa_client(publication.target_url)
    try:
        with client as opa:
            opa.put_policy(policy.opa_policy_id, version.source)
            opa.put_policy(entry_policy_id(policy.name), entry)
            loaded = opa.get_policy(policy.opa_policy_id)
            loaded_entry = opa.get_policy(entry_policy_id(policy.name))
    except OpaUnreachable as exc:
        publication.status = Publication.Status.FAILED if final_attempt else Publication.Status.UNREACHABLE
        publication.detail = f"OPA unreachable: {exc}" + (" (gave up)" if final_attempt else "")
        _failed(publication)
        raise
    except OpaRejected as exc:
        details = "; ".join(
            f"line {e.get('location', {}).get('row', '?')}: {e.get('message', '')}" for e in exc.errors
        )
        publication.status = Publication.Status.FAILED
        publication.detail = f"OPA refused the policy: {exc}" + (f" ({details})" if details else "")
        return _failed(publication, restore_here=True)

    loaded_sha = sha256_of(loaded["raw"]) if loaded else None
    if loaded_sha != version.sha256 or not loaded_entry or loaded_entry["raw"] != entry:
        publication.status = Publication.Status.FAILED
        publication.detail = f"OPA reports a different source after the push (sha256 {loaded_sha})"
        return _failed(publication, restore_here=True)

    with transaction.atomic():
        publication.status = Publication.Status.OK
        publication.detail = f"OPA runs {policy.opa_policy_id} with sha256 {loaded_sha}"
        publication.confirmed_at = timezone.now()
        publication.save()
        confirm_version(publication, f"OPA at {publication.target_url} confirmed sha256 {loaded_sha}")
    log.info("published %s to %s", version, publication.target_url)
    return publication


@transaction.atomic
def _failed(publication: Publication, restore_here: bool = False) -> Publication:
    """Save `publication`; when it failed for good, its group can never be confirmed on every
    instance, so the environment keeps the version it ran: the siblings still trying stop, and
    the instances that already took the new version get the environment's active one back, as
    does this one when it answered but refused half-way (`restore_here`). An instance that
    stopped answering mid-push may hold half of it; the drift check restores it once it answers."""
    publication.save()
    if publication.status != Publication.Status.FAILED or not publication.group:
        return publication
    version, environment = publication.version, publication.environment
    where = publication.instance.name if publication.instance_id else publication.target_url
    siblings = Publication.objects.filter(group=publication.group).exclude(pk=publication.pk)
    siblings.exclude(status__in=Publication.FINISHED).update(
        status=Publication.Status.FAILED, detail=f"Abandoned: the publication of v{version.number} failed at {where}")
    active = ActiveVersion.objects.filter(policy_id=version.policy_id, environment=environment).select_related(
        "version").first()
    if active is None or active.version_id == version.id:
        return publication  # nothing ran before (the page shows what each instance holds), or nothing changes
    restore = list(siblings.counted().filter(status=Publication.Status.OK).select_related("instance"))
    for sibling in restore + ([publication] if restore_here else []):
        queue_publication(active.version, publication.requested_by, sibling.target_url, environment=environment,
               instance=sibling.instance, repush=True,
               detail=f"Restoring v{active.version.number}: the publication of v{version.number} failed at {where}")
    log.warning("publication of %s to %s failed at %s; %s keeps v%s", version, environment, where, environment,
                active.version.number)
    return publication


def confirm_version(publication: Publication, reason: str) -> bool:
    """After `publication` was confirmed: its environment runs the version once every
    publication of its group is confirmed too. Returns whether the version became active now.
    A re-push restores what already runs there, so it moves nothing."""
    policy = Policy.objects.select_for_update().get(pk=publication.version.policy_id)  # one confirmer at a time
    # A decommissioned instance is not waited for (fleet/instances.py).
    group = Publication.objects.filter(group=publication.group).counted()
    if publication.group and group.exclude(status=Publication.Status.OK).exists():
        return False
    if publication.group:
        reason = "Confirmed by every OPA instance of " + ", ".join(
            f"{p.environment.name}: {p.target_url}" for p in group.select_related("environment").order_by("pk"))
    for environment in _environments_of(publication):
        if not publication.repush:
            activate(policy, environment, publication)
            PublishEvent.objects.create(
                policy=policy, version=publication.version, action=PublishEvent.Action.PUBLISHED,
                actor=publication.requested_by, publication=publication, reason=reason, environment=environment,
            )
        # The policy now needs its rollout settings and exceptions in OPA's data.
        if not environment.is_pull:
            push_runtime_after_commit(environment)
    return True


def _environments_of(publication: Publication) -> list[Environment]:
    if publication.environment_id:
        return [publication.environment]
    # Publications made before every publication named its environment: those at its OPA.
    return [e for e in Environment.objects.all() if not e.is_pull and e.target_url == publication.target_url]


def activate(policy: Policy, environment: Environment, publication: Publication) -> ActiveVersion:
    """Record that `environment` runs the publication's version (since now, unless it already did)."""
    active, created = ActiveVersion.objects.select_for_update().get_or_create(
        policy=policy, environment=environment,
        defaults={"version": publication.version, "publication": publication, "since": timezone.now()})
    if not created:
        if active.version_id != publication.version_id:
            active.version, active.since = publication.version, timezone.now()
        active.publication = publication
        active.save()
    return active

