from .roles import roles_of


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_roles": roles_of(user),
        "can_view_decisions": user.has_perm("audit.view_decision"),
    }
