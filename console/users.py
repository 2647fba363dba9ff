"""People and their roles, managed by security admins inside the console.

A new account gets a random one-time password, shown once to the admin who created it (Gavel
keeps only its hash). Roles are the groups of roles.py. Nobody changes their own roles or
deactivates themselves, so a console always keeps the admin who is using it. Every change lands
in the activity log (activity/models.py tracks users and their roles, never passwords).
"""
from __future__ import annotations

import secrets

from django import forms
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from .roles import ROLES, ROLES_BY_GROUP

MANAGE = "auth.change_user"
ADD = "auth.add_user"


def role_choices():
    return [(role.group, f"{role.label}: {role.summary}") for role in ROLES]


class UserForm(forms.Form):
    username = forms.RegexField(regex=r"^[\w.@+-]+\Z", max_length=150,
                                help_text="Letters, digits and . @ + - _ only.")
    email = forms.EmailField(required=False)
    roles = forms.MultipleChoiceField(choices=role_choices, widget=forms.CheckboxSelectMultiple, required=False)


class RolesForm(forms.Form):
    roles = forms.MultipleChoiceField(choices=role_choices, widget=forms.CheckboxSelectMultiple, required=False)


def _check(by, permission: str) -> None:
    if not by.has_perm(permission):
        raise PermissionDenied("managing users needs the security admin role")


def _groups(roles) -> list[Group]:
    unknown = set(roles) - set(ROLES_BY_GROUP)
    if unknown:
        raise ValidationError(f"no such role: {', '.join(sorted(unknown))}")
    return [Group.objects.get_or_create(name=name)[0] for name in roles]


@transaction.atomic
def create_user(*, username: str, email: str = "", roles=(), created_by) -> tuple[User, str]:
    """A new active account and its one-time password, to hand over once."""
    _check(created_by, ADD)
    if User.objects.filter(username__iexact=username).exists():
        raise ValidationError(f"the username {username} is taken")
    password = secrets.token_urlsafe(12)
    user = User.objects.create_user(username=username, email=email, password=password)
    user.groups.set(_groups(roles))
    return user, password


@transaction.atomic
def set_roles(user: User, roles, *, changed_by) -> User:
    _check(changed_by, MANAGE)
    if user.pk == changed_by.pk:
        raise PermissionDenied("nobody changes their own roles: ask another security admin")
    user.groups.set(_groups(roles))
    return user


@transaction.atomic
def set_active(user: User, active: bool, *, changed_by) -> User:
    """Deactivating keeps the account and its history; its sessions and API tokens stop working."""
    _check(changed_by, MANAGE)
    if user.pk == changed_by.pk:
        raise PermissionDenied("nobody deactivates themselves: ask another security admin")
    user.is_active = active
    user.save(update_fields=["is_active"])
    return user


@transaction.atomic
def reset_password(user: User, *, changed_by) -> str:
    """A new one-time password, to hand over once; the old one stops working."""
    _check(changed_by, MANAGE)
    if user.pk == changed_by.pk:
        raise PermissionDenied("change your own password another way: ask another security admin")
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    user.save(update_fields=["password"])
    return password


def people():
    return User.objects.prefetch_related("groups").order_by("-is_active", "username")
