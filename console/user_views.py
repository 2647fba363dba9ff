"""User and role management pages for security admins (the rules are in users.py)."""
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from . import users
from .roles import roles_of


def _refusal(exc) -> str:
    said = " ".join(getattr(exc, "messages", [str(exc)]))
    return f"{said[:1].upper()}{said[1:]}."


def user_list(request):
    rows = [(person, roles_of(person)) for person in users.people()]
    return render(request, "console/users/list.html", {"rows": rows})


@never_cache
def user_create(request):
    form = users.UserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            person, password = users.create_user(created_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("username", exc)
        else:
            # Shown in this answer only, never stored in clear or sent again.
            return render(request, "console/users/password.html", {"person": person, "password": password,
                                                                    "created": True})
    return render(request, "console/users/form.html", {"form": form})


def user_detail(request, pk):
    person = get_object_or_404(User, pk=pk)
    form = users.RolesForm(request.POST if request.method == "POST" else None,
                           initial={"roles": [g.name for g in person.groups.all()]})
    if request.method == "POST" and form.is_valid():
        try:
            users.set_roles(person, form.cleaned_data["roles"], changed_by=request.user)
        except (PermissionDenied, ValidationError) as exc:
            messages.error(request, _refusal(exc))
        else:
            messages.success(request, f"Roles of {person} saved.")
        return redirect("users:detail", pk=pk)
    return render(request, "console/users/detail.html", {
        "person": person, "form": form, "roles": roles_of(person), "is_self": person.pk == request.user.pk})


@require_POST
def user_active(request, pk):
    person = get_object_or_404(User, pk=pk)
    active = request.POST.get("active") == "yes"
    try:
        users.set_active(person, active, changed_by=request.user)
    except PermissionDenied as exc:
        messages.error(request, _refusal(exc))
    else:
        messages.warning(request, f"{person} {'reactivated' if active else 'deactivated: they can no longer sign in'}.")
    return redirect("users:detail", pk=pk)


@require_POST
@never_cache
def user_password(request, pk):
    person = get_object_or_404(User, pk=pk)
    try:
        password = users.reset_password(person, changed_by=request.user)
    except PermissionDenied as exc:
        messages.error(request, _refusal(exc))
        return redirect("users:detail", pk=pk)
    return render(request, "console/users/password.html", {"person": person, "password": password})


urlpatterns = [
    path("", user_list, name="list"),
    path("new/", user_create, name="create"),
    path("<int:pk>/", user_detail, name="detail"),
    path("<int:pk>/active/", user_active, name="active"),
    path("<int:pk>/password/", user_password, name="password"),
]
