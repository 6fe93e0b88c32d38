"""Validation of registration and profile input, and the user's public shape."""
import json
import re

from shop_common.errors import ValidationError

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # fullmatch: "$" would let a newline through
ADDRESS_FIELDS = ("line1", "city", "postal_code", "country")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


def user_view(row):
    return {"id": row.id, "email": row.email, "name": row.name, "address": row.address,
            "preferences": row.preferences, "role": row.role}


def _require_object(data):
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object", {"body": "must be an object"})


def _name(value, errors):
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        errors["name"] = "must be a non-empty string of at most 200 characters"
        return None
    return value.strip()


def _address(value, errors):
    if not isinstance(value, dict):
        errors["address"] = f"must be an object with {', '.join(ADDRESS_FIELDS)}"
        return None
    address = {}
    for field in ADDRESS_FIELDS:
        part = value.get(field)
        if not isinstance(part, str) or not part.strip() or len(part) > 200:
            errors[f"address.{field}"] = "is required"
        else:
            address[field] = part.strip()
    if "line2" in value and isinstance(value["line2"], str):
        address["line2"] = value["line2"].strip()[:200]
    return address


def _preferences(value, errors):
    if not isinstance(value, dict) or len(json.dumps(value)) > 4096:
        errors["preferences"] = "must be an object of at most 4 KiB"
        return None
    return value


def email(value):
    if not isinstance(value, str) or len(value) > 254 or not EMAIL.fullmatch(value.strip()):
        raise ValidationError("invalid email", {"email": "must be an email address"})
    return value.strip().lower()


def registration(data):
    _require_object(data)
    errors = {}
    try:
        address_email = email(data.get("email"))
    except ValidationError as exc:
        errors.update(exc.details)
        address_email = None
    password = data.get("password")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        errors["password"] = f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
    fields = {
        "email": address_email,
        "password": password,
        "name": _name(data.get("name"), errors),
        "address": _address(data.get("address"), errors),
        "preferences": _preferences(data.get("preferences", {}), errors),
    }
    if errors:
        raise ValidationError("invalid registration", errors)
    return fields


def profile_changes(data):
    _require_object(data)
    errors = {}
    changes = {}
    for field in set(data) - {"name", "address", "preferences"}:
        errors[field] = "cannot be changed here"
    if "name" in data:
        changes["name"] = _name(data["name"], errors)
    if "address" in data:
        changes["address"] = _address(data["address"], errors)
    if "preferences" in data:
        changes["preferences"] = _preferences(data["preferences"], errors)
    if not changes and not errors:
        errors["body"] = "give at least one of name, address, preferences"
    if errors:
        raise ValidationError("invalid profile change", errors)
    return changes
