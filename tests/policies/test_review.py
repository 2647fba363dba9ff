"""Versions carry Rego tests run by the real `opa test`, a lint pass over OPA's parse tree and
line diffs; publishing needs a second person; rollback and retirement act on the real OPA."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core import partitions
from core.opa.client import opa_client
from fleet.models import Environment
from policies import review, services
from policies.models import Policy, PolicyVersion, Publication, PublishEvent, PublishRequest
from policies.rego.check import RegoCompileError
from tests.factories import SIMPLE_POLICY, DecisionFactory, PolicyFactory
from tests.support import wait_until

TESTS = """package gavel.budget_test

import data.gavel.budget

test_admin_allowed if budget.allow with input as {"user": {"role": "admin"}}

test_guest_denied if not budget.allow with input as {"user": {"role": "guest"}}
"""
FAILING_TESTS = TESTS + """
test_guest_allowed if budget.allow with input as {"user": {"role": "guest"}}
"""
DEFAULT_ALLOW = """package gavel.open_door

default allow := true

deny contains "blocked" if input.user.blocked

allow if input.user.role == "admin"

decision := {"allow": allow, "reasons": deny}
"""
NO_DEFAULT = """package gavel.open_door

deny contains "blocked" if input.user.blocked

allow if {
	input.user.role == "admin"
	count(deny) == 0
}

decision := {"allow": allow, "reasons": deny}
"""
CLEAN = NO_DEFAULT.replace("package gavel.open_door\n", "package gavel.open_door\n\ndefault allow := false\n")


def api_for(user) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return api


# --- Tests, lint, diff ---------------------------------------------------------------------


@pytest.mark.django_db
def test_passing_tests_are_stored_per_test_with_coverage(make_user):
    version = PolicyFactory(name="budget", tests=TESTS).latest_version
    run = version.test_run
    assert (run.passed, run.total, run.failed) == (True, 2, 0)
    assert {(r["name"], r["status"]) for r in run.results} == {("test_admin_allowed", "pass"),
                                                               ("test_guest_denied", "pass")}
    assert 0 < run.coverage <= 100


@pytest.mark.django_db
def test_failing_tests_block_publishing_in_the_service_the_page_and_the_api(client, make_user):
    author, admin = make_user("policy_author"), make_user("security_admin")
    policy = PolicyFactory(name="budget", tests=FAILING_TESTS, author=author)
    version = policy.latest_version
    assert (version.test_run.passed, version.test_run.failed) == (False, 1)
    failed = [r for r in version.test_run.results if r["status"] == "fail"]
    assert [r["name"] for r in failed] == ["test_guest_allowed"]

    with pytest.raises(services.PublishRefused, match="1 of its 3 Rego tests fail"):
        review.request_publish(version, requested_by=author, reason="ship")
    with pytest.raises(services.PublishRefused, match="tests fail"):
        services.request_publication(version, requested_by=admin)

    response = api_for(author).post("/api/v1/policies/budget/versions/1/publish/", {"reason": "ship"}, format="json")
    assert response.status_code == 400 and "Rego tests fail" in response.json()["detail"]

    client.force_login(author)
    page = client.get("/policies/budget/v1/").content.decode()
    assert "1 of 3 Rego tests fail: this version cannot be published." in page
    assert "test_guest_allowed" in page
    client.post("/policies/budget/v1/publish/", {"reason": "ship"})
    assert not PublishRequest.objects.exists() and not Publication.objects.exists()

    api_version = api_for(author).get("/api/v1/policies/budget/versions/1/").json()
    assert api_version["test_run"]["passed"] is False and api_version["test_run"]["failed"] == 1


@pytest.mark.django_db
def test_tests_that_do_not_compile_refuse_the_version_and_name_the_tests_file(client, make_user):
    policy = PolicyFactory(name="budget")
    with pytest.raises(RegoCompileError) as refused:
        services.save_version(policy, source=policy.latest_version.source + "\n# v2\n", author=make_user(),
                              message="v2", tests=TESTS + "\ntest_broken if input.x == unknown_var\n")
    assert refused.value.errors[0].file == "budget_test.rego" and "unknown_var" in refused.value.errors[0].message
    assert policy.versions.count() == 1

    client.force_login(make_user("policy_author"))
    page = client.post("/policies/budget/versions/new/", {
        "source": policy.latest_version.source + "\n# v2\n", "message": "v2", "tests": "package x_test\n\ntest_a if {\n",
    }).content.decode()
    assert "budget_test.rego, line" in page and policy.versions.count() == 1


@pytest.mark.django_db
def test_lint_catches_default_allow_a_missing_default_and_allow_over_deny(make_user):
    version = PolicyFactory(name="open_door", source=DEFAULT_ALLOW).latest_version
    found = {(w.code, w.row) for w in version.lint_warnings.all()}
    assert found == {("default-allow", 3), ("allow-over-deny", 7)}

    fixed = services.save_version(version.policy, source=NO_DEFAULT, author=make_user(), message="no default")
    assert [(w.code, w.row) for w in fixed.lint_warnings.all()] == [("no-default", 5)]
    clean = services.save_version(version.policy, source=CLEAN, author=make_user(), message="default")
    assert list(clean.lint_warnings.all()) == []
    # The demo policy and the factory's policy are clean.
    assert not PolicyFactory(name="budget").latest_version.lint_warnings.exists()


@pytest.mark.django_db
def test_lint_warnings_show_on_the_version_page_and_in_the_api(client, make_user):
    PolicyFactory(name="open_door", source=DEFAULT_ALLOW)
    user = make_user("policy_author")
    client.force_login(user)
    page = client.get("/policies/open_door/v1/").content.decode()
    assert "default-allow" in page and "<code>default allow</code> allows" in page  # names as code, not backticks
    api_version = api_for(user).get("/api/v1/policies/open_door/versions/1/").json()
    assert {w["code"] for w in api_version["lint_warnings"]} == {"default-allow", "allow-over-deny"}
    assert api_version["lint_warnings"][0]["line"] == 3


@pytest.mark.django_db
def test_line_diff_against_any_other_version_on_the_page_and_in_the_api(client, make_user):
    policy = PolicyFactory(name="budget")
    v1 = policy.latest_version
    services.save_version(policy, source=v1.source.replace('"admin"', '"owner"'), author=make_user(), message="v2")
    services.save_version(policy, source=v1.source + '\nallow if input.user.role == "<b>root</b>"\n',
                          author=make_user(), message="v3")
    user = make_user("compliance_officer")
    diff = api_for(user).get("/api/v1/policies/budget/versions/3/diff/", {"against": 1}).json()
    changed = [(line["op"], line["text"]) for hunk in diff["source"] for line in hunk["lines"] if line["op"] != " "]
    assert changed == [("+", ""), ("+", 'allow if input.user.role == "<b>root</b>"')]
    assert diff["from"] == 1 and diff["to"] == 3 and "+++ budget.rego@v3" in diff["unified"]

    client.force_login(user)
    page = client.get("/policies/budget/v2/diff/", {"against": 1}).content.decode()
    assert '- allow if input.user.role == &quot;admin&quot;' in page
    assert '+ allow if input.user.role == &quot;owner&quot;' in page
    escaped = client.get("/policies/budget/v3/diff/", {"against": 2}).content.decode()
    assert "&lt;b&gt;root&lt;/b&gt;" in escaped and "<b>root</b>" not in escaped


@pytest.mark.django_db
def test_category_team_and_bundle_are_kept_and_shown(client, make_user):
    author = make_user("policy_author")
    api = api_for(author)
    created = api.post("/api/v1/policies/", {
        "name": "ids", "title": "Identity checks", "source": SIMPLE_POLICY.format(name="ids"), "message": "first",
        "category": "identity", "team": "IAM <team>", "bundle": "core", "tests": ""}, format="json")
    assert created.status_code == 201, created.content
    assert (created.data["category"], created.data["team"], created.data["bundle"]) == ("identity", "IAM <team>", "core")
    bad = api.post("/api/v1/policies/", {"name": "x", "title": "x", "source": SIMPLE_POLICY.format(name="x"),
                                         "message": "m", "category": "misc"}, format="json")
    assert bad.status_code == 400 and "category" in bad.json() and not Policy.objects.filter(name="x").exists()
    client.force_login(author)
    page = client.get("/policies/ids/").content.decode()
    assert "Identity" in page and "IAM &lt;team&gt;" in page


# --- Two-person publishing -------------------------------------------------------------------


@pytest.mark.django_db
def test_nobody_approves_their_own_version_or_request_on_the_page_or_in_the_api(client, make_user):
    author, admin = make_user("policy_author"), make_user("security_admin")
    policy = PolicyFactory(name="budget", author=author)
    version = policy.latest_version

    # The author asks on the page and cannot approve there.
    client.force_login(author)
    client.post("/policies/budget/v1/publish/", {"reason": "ready for prod"})
    publish_request = PublishRequest.objects.get()
    assert (publish_request.requested_by, publish_request.reason) == (author, "ready for prod")
    page = client.post(f"/policies/budget/v1/requests/{publish_request.pk}/approve/", follow=True).content.decode()
    assert "the author of a version cannot approve its publication" in page
    # ...nor through the API.
    refused = api_for(author).post(f"/api/v1/publish-requests/{publish_request.pk}/approve/")
    assert refused.status_code == 400 and "cannot approve" in refused.json()["detail"]

    # A security admin who asked for someone else's version cannot approve their own request either.
    publish_request.status = PublishRequest.Status.REJECTED
    publish_request.save()
    other_request = review.request_publish(version, requested_by=admin, reason="admin asks")
    refused = api_for(admin).post(f"/api/v1/publish-requests/{other_request.pk}/approve/")
    assert refused.status_code == 400 and "someone else must approve" in refused.json()["detail"]
    client.force_login(admin)
    htmx = client.post(f"/policies/budget/v1/requests/{other_request.pk}/approve/", HTTP_HX_REQUEST="true")
    assert "someone else must approve" in htmx.content.decode()
    assert not Publication.objects.exists()
    other_request.refresh_from_db()
    assert other_request.status == PublishRequest.Status.PENDING


@pytest.mark.django_db
def test_a_request_needs_a_reason_and_only_one_may_wait_per_version(make_user):
    author = make_user("policy_author")
    version = PolicyFactory(name="budget", author=author).latest_version
    with pytest.raises(services.PublishRefused, match="say why"):
        review.request_publish(version, requested_by=author, reason="  ")
    review.request_publish(version, requested_by=author, reason="ship")
    with pytest.raises(services.PublishRefused, match="already has a request for dev waiting"):
        review.request_publish(version, requested_by=author, reason="again")
    # One per environment: staging may be asked for meanwhile.
    staging = Environment.objects.create(name="staging")
    assert review.request_publish(version, requested_by=author, reason="ship", environment=staging).environment == staging
    with pytest.raises(services.PublishRefused, match="may not"):
        review.request_publish(version, requested_by=make_user("auditor"), reason="ship")


@pytest.mark.django_db
def test_rejection_is_recorded_with_who_and_why(make_user):
    author, admin = make_user("policy_author"), make_user("security_admin")
    version = PolicyFactory(name="budget", author=author).latest_version
    publish_request = review.request_publish(version, requested_by=author, reason="ship")
    review.reject(publish_request, rejected_by=admin, reason="needs tests")
    with pytest.raises(services.PublishRefused, match="already rejected"):
        review.approve(publish_request, approved_by=admin)
    events = list(version.policy.publish_events.order_by("id").values_list("action", "actor__username", "reason"))
    assert events == [("requested", author.username, "ship"), ("rejected", admin.username, "needs tests")]


def _publish_with_review(version, author, approver) -> Publication:
    publish_request = review.request_publish(version, requested_by=author, reason=f"ship v{version.number}")
    publication = review.approve(publish_request, approved_by=approver, note="looks right").publication
    wait_until(lambda: Publication.objects.get(pk=publication.pk).is_finished, message="the publication")
    publication.refresh_from_db()
    assert publication.status == Publication.Status.OK, publication.detail
    return publication


@pytest.mark.django_db(transaction=True)
def test_approval_by_a_second_person_publishes_and_rollback_restores_the_previous_version(
        opa, celery_worker, client, make_user):
    author, admin = make_user("policy_author"), make_user("security_admin")
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    _publish_with_review(v1, author, admin)
    v2 = services.save_version(policy, source=v1.source.replace('"admin"', '"owner"'), author=author, message="owners")
    _publish_with_review(v2, author, make_user("policy_author"))  # another author may approve too
    with opa_client() as opa_api:
        assert opa_api.get_policy("gavel/budget")["raw"] == v2.source

    policy.refresh_from_db()
    assert review.rollback_target(policy) == v1
    client.force_login(admin)
    assert "No second approval is needed" in client.get("/policies/budget/").content.decode()
    client.post("/policies/budget/rollback/", {"reason": "owners broke checkout"})
    rollback = Publication.objects.order_by("-id").first()
    assert rollback.version == v1
    wait_until(lambda: Publication.objects.get(pk=rollback.pk).is_finished, message="the rollback")
    with opa_client() as opa_api:
        assert opa_api.get_policy("gavel/budget")["raw"] == v1.source
    policy.refresh_from_db()
    assert policy.active_version == v1

    history = list(policy.publish_events.order_by("id").values_list("action", "version__number"))
    assert history == [("requested", 1), ("approved", 1), ("published", 1), ("requested", 2), ("approved", 2),
                       ("published", 2), ("rolled_back", 1), ("published", 1)]
    rolled = policy.publish_events.get(action=PublishEvent.Action.ROLLED_BACK)
    assert (rolled.actor, rolled.reason) == (admin, "owners broke checkout")
    api_history = api_for(author).get("/api/v1/policies/budget/history/").json()["results"]
    assert [e["action"] for e in api_history][:2] == ["published", "rolled_back"]


# --- Retirement ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_policy_author_may_publish_with_review_but_not_roll_back_alone(opa, celery_worker, client, make_user):
    """Rollback skips the second person, so it belongs to security admins (console/roles.py)."""
    author, admin = make_user("policy_author"), make_user("security_admin")
    policy = PolicyFactory(name="budget", author=author)
    v1 = policy.latest_version
    _publish_with_review(v1, author, admin)
    v2 = services.save_version(policy, source=v1.source.replace('"admin"', '"owner"'), author=author, message="owners")
    _publish_with_review(v2, author, make_user("policy_author"))
    before = Publication.objects.count()

    other_author = make_user("policy_author")
    response = api_for(other_author).post("/api/v1/policies/budget/rollback/", {"reason": "mine"}, format="json")
    assert response.status_code == 403
    client.force_login(other_author)
    assert "Roll dev back" not in client.get("/policies/budget/").content.decode()
    assert client.post("/policies/budget/rollback/", {"reason": "mine"}).status_code == 403
    with pytest.raises(services.PublishRefused, match="may not roll back"):
        review.rollback(policy, rolled_back_by=other_author, reason="mine")
    assert Publication.objects.count() == before
    with opa_client() as opa_api:
        assert opa_api.get_policy("gavel/budget")["raw"] == v2.source


@pytest.mark.django_db(transaction=True)
def test_retire_is_refused_while_recent_decisions_exist_then_removes_the_policy_from_opa(
        opa, celery_worker, client, make_user, settings):
    settings.GAVEL_RETIRE_AFTER_DAYS = 30
    author, admin = make_user("policy_author"), make_user("security_admin")
    policy = PolicyFactory(name="budget", author=author)
    _publish_with_review(policy.latest_version, author, admin)
    recent = DecisionFactory(policy=policy, timestamp=timezone.now() - timedelta(days=3))

    client.force_login(admin)
    page = client.get("/policies/budget/").content.decode()
    assert f"{recent.timestamp:%Y-%m-%d %H:%M:%S} UTC" in page and "Not now:" in page
    with pytest.raises(services.PublishRefused, match="retired after 30 days"):
        review.retire(policy, retired_by=admin, reason="unused")
    refused = api_for(admin).post("/api/v1/policies/budget/retire/", {"reason": "unused"}, format="json")
    assert refused.status_code == 400 and "30 days" in refused.json()["detail"]
    assert api_for(author).post("/api/v1/policies/budget/retire/", {"reason": "x"}, format="json").status_code == 403
    with opa_client() as opa_api:
        assert opa_api.get_policy("gavel/budget") is not None

    # Thirty-one days pass (decisions never change; the test moves this one into an older week).
    long_ago = timezone.now() - timedelta(days=31)
    partitions.ensure([(recent.environment, long_ago)])
    type(recent).objects.filter(pk=recent.pk).update(timestamp=long_ago)
    client.post("/policies/budget/retire/", {"reason": "replaced by budget_v2"})
    policy.refresh_from_db()
    assert policy.retired_at is not None and policy.active_version is None
    with opa_client() as opa_api:
        assert opa_api.get_policy("gavel/budget") is None and opa_api.get_policy("gavel_entry/budget") is None
    assert policy.publish_events.filter(action="retired", actor=admin, reason="replaced by budget_v2").exists()
    with pytest.raises(services.PublishRefused, match="retired"):
        review.request_publish(policy.latest_version, requested_by=author, reason="again")
    with pytest.raises(services.VersionRefused, match="retired"):
        services.save_version(policy, source=policy.latest_version.source + "\n", author=author, message="x")
    assert PolicyVersion.objects.filter(policy=policy).count() == 1
