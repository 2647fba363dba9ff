"""Saved searches of the approval queue (approvals/filters.py): a person saves the current search under a
name and applies it again from the queue; each person's own, cleaned to the queue's own filters."""
import pytest
from django.core.exceptions import ValidationError

from approvals.filters import SAVED_MAX, save_filter
from approvals.models import SavedFilter
from tests.factories import PolicyFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_search_is_saved_clean_and_replaced_by_name():
    rhea = UserFactory(username="rhea", role="reviewer")
    PolicyFactory(name="gateway")
    saved = save_filter(rhea, "  Gateway   spam ", "requester=&page=3&policy=gateway&status=rejected&evil=1")
    assert (saved.name, saved.query) == ("Gateway spam", "status=rejected&policy=gateway")
    again = save_filter(rhea, "Gateway spam", "status=pending&requester=u-7")
    assert again.pk == saved.pk and SavedFilter.objects.get().query == "status=pending&requester=u-7"


@pytest.mark.parametrize("name, query, why", [
    ("", "status=pending", "Give the search a name."),
    ("x" * 81, "status=pending", "80 characters"),
    ("bad policy", "policy=no-such-policy", "cannot be saved"),
    ("bad date", "since=yesterday", "cannot be saved"),
])
def test_a_search_that_cannot_be_saved_says_why(name, query, why):
    with pytest.raises(ValidationError, match=why):
        save_filter(UserFactory(role="reviewer"), name, query)
    assert not SavedFilter.objects.exists()


def test_each_person_keeps_a_bounded_list():
    rhea = UserFactory(role="reviewer")
    for n in range(SAVED_MAX):
        save_filter(rhea, f"search {n}", "status=pending")
    with pytest.raises(ValidationError, match="delete one first"):
        save_filter(rhea, "one more", "status=pending")
    save_filter(rhea, "search 0", "status=approved")  # replacing one is still allowed


def test_the_queue_lists_ones_own_searches_and_only_they_may_delete_them(client):
    rhea, sam = UserFactory(username="rhea", role="reviewer"), UserFactory(username="sam", role="security_admin")
    mine = save_filter(rhea, "<script>mine</script>", "status=expired")
    theirs = save_filter(sam, "sam's", "status=approved")
    client.force_login(rhea)
    page = client.get("/approvals/").content.decode()
    assert "&lt;script&gt;mine&lt;/script&gt;" in page and 'href="?status=expired"' in page
    assert "sam&#x27;s" not in page
    assert client.post(f"/approvals/saved/{theirs.pk}/delete/").status_code == 404
    response = client.post("/approvals/saved/", {"name": "pending", "query": "status=pending&page=2"})
    assert response.status_code == 302 and response["Location"] == "/approvals/?status=pending"
    assert client.post("/approvals/saved/", {"name": "", "query": "status=pending"}).status_code == 302
    assert set(SavedFilter.objects.filter(owner=rhea).values_list("name", flat=True)) == {
        "<script>mine</script>", "pending"}
    assert client.post(f"/approvals/saved/{mine.pk}/delete/").status_code == 302
    assert SavedFilter.objects.filter(owner=sam).exists() and not SavedFilter.objects.filter(pk=mine.pk).exists()
