"""Template context every page needs: the current program and the user's programs for the switcher."""

from django.http import HttpRequest

from affiliates.selectors import memberships_of_user


def programs(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"current_program": getattr(request, "program", None), "my_memberships": []}
    return {
        "current_program": getattr(request, "program", None),
        "current_membership": getattr(request, "membership", None),
        "my_memberships": memberships_of_user(user),
    }
