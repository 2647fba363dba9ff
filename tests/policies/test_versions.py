"""A policy author saves versions; OPA compiles each one before it is accepted."""
import pytest
from django.db import DatabaseError, transaction

from core.digest import sha256_of
from policies import services
from policies.models import Policy, PolicyVersion
from policies.rego.check import RegoCompileError
from tests.factories import PolicyFactory

pytestmark = pytest.mark.django_db

BROKEN = """package gavel.broken

default allow := false

allow if {
    input.user == "alice"
    count(input.items) >
}
"""


def test_first_version_is_saved_with_hash_author_and_message(make_user):
    author = make_user("policy_author")
    policy = PolicyFactory(name="budget", author=author)
    version = policy.latest_version
    assert policy.package == "gavel.budget"
    assert (version.number, version.author, version.message) == (1, author, "Initial version")
    assert version.sha256 == sha256_of(version.source)
    assert version.created_at is not None


def test_next_version_gets_the_next_number(make_user):
    policy = PolicyFactory(name="budget")
    source = policy.latest_version.source.replace('"admin"', '"owner"')
    version = services.save_version(policy, source=source, author=make_user("policy_author"), message="owners too")
    assert version.number == 2
    assert list(policy.versions.values_list("number", flat=True)) == [2, 1]


def test_compile_error_is_refused_with_file_and_line_and_nothing_is_saved(make_user):
    with pytest.raises(RegoCompileError) as refused:
        services.create_policy(name="broken", title="Broken", source=BROKEN,
                               author=make_user("policy_author"), message="first")
    error = refused.value.errors[0]
    assert (error.file, error.row) == ("broken.rego", 8)
    assert "unexpected" in error.message
    assert not Policy.objects.exists() and not PolicyVersion.objects.exists()


def test_unsafe_variable_is_a_compile_error_not_just_a_parse_error(make_user):
    policy = PolicyFactory(name="budget")
    source = policy.latest_version.source + "\nextra if input.x == unknown_var\n"
    with pytest.raises(RegoCompileError) as refused:
        services.save_version(policy, source=source, author=make_user("policy_author"), message="oops")
    assert refused.value.errors[0].row == 11
    assert "unknown_var" in refused.value.errors[0].message
    assert policy.versions.count() == 1


def test_a_version_must_keep_the_policys_package(make_user):
    policy = PolicyFactory(name="budget")
    source = policy.latest_version.source.replace("package gavel.budget", "package gavel.other")
    with pytest.raises(services.VersionRefused, match="gavel.other"):
        services.save_version(policy, source=source, author=make_user("policy_author"), message="moved")


def test_an_unchanged_source_is_not_a_new_version(make_user):
    policy = PolicyFactory(name="budget")
    with pytest.raises(services.VersionRefused, match="identical to version 1"):
        services.save_version(policy, source=policy.latest_version.source, author=make_user(), message="same")


def test_saved_versions_cannot_be_changed_even_with_raw_sql():
    version = PolicyFactory(name="budget").latest_version
    with pytest.raises(ValueError):
        version.save()
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        PolicyVersion.objects.filter(pk=version.pk).update(source="package gavel.budget\n")
