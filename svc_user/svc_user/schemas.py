"""Validation of registration and profile input, and the user's public shape."""
from shop_common.http import api


def user_view(row):
    return {"id": row.id, "email": row.email, "name": row.name, "address": row.address,
            "preferences": row.preferences, "role": row.role, "token_version": row.token_version}


def email(value):
    """An email address as the shop stores it (trimmed, lower case)."""
    return api.parse(api.EmailLookup, {"email": value}, "invalid email").email.lower()


def registration(data):
    fields = api.parse(api.Registration, data, "invalid registration").model_dump(exclude_none=True)
    return dict(fields, email=fields["email"].lower())


def profile_changes(data):
    changes = api.parse(api.ProfileChanges, data, "invalid profile change").model_dump(exclude_unset=True)
    if changes.get("address"):
        changes["address"] = {key: value for key, value in changes["address"].items() if value is not None}
    return changes


def refresh_request(body):
    return api.parse(api.RefreshRequest, body, "invalid refresh request").refresh_token


def logout_request(body):
    """-> (refresh token or None, everywhere)."""
    request = api.parse(api.LogoutRequest, body or {}, "invalid logout request")
    return request.refresh_token, request.everywhere


def password_change(body):
    """-> (current password, new password)."""
    change = api.parse(api.PasswordChange, body, "invalid password change")
    return change.current_password, change.new_password
