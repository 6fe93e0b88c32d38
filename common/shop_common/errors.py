"""Domain errors and how they cross Nameko RPC.

Nameko turns an exception raised in a remote worker into
``RemoteError(exc_type, value)`` at the caller, keeping only the class name
and ``str(exc)``. A domain error's ``str`` is therefore a small JSON document
with its message and details, so the gateway can map ``exc_type`` to an HTTP
status and error code (one table, ``web_gateway.errors``) and still show the
details.
"""
import json


class DomainError(Exception):
    """Base of every error a caller is meant to see and act on."""

    def __init__(self, message, details=None):
        super().__init__(message, details or {})
        self.message = message
        self.details = details or {}

    def __str__(self):
        return json.dumps({"message": self.message, "details": self.details})


class ValidationError(DomainError):
    """Input is malformed; ``details`` maps field names to what is wrong."""


class IllegalTransition(DomainError):
    """A state machine was asked for a move it does not allow."""


class TransientError(Exception):
    """Infrastructure that is away for now (a provider down, a lease held elsewhere).

    Retrying later can succeed, so Kafka handlers raising it are retried
    without limit, holding only their own partition.
    """


def decode_remote_value(value):
    """Message and details from a RemoteError's ``value`` (see module doc)."""
    try:
        data = json.loads(value)
        return data.get("message", ""), data.get("details") or {}
    except (TypeError, ValueError, AttributeError):
        return str(value), {}


def translate_remote_error(remote_error, translations):
    """Re-raise a RemoteError from another service as one of ours.

    ``translations`` maps the remote exc_type to the local DomainError class;
    anything else is re-raised unchanged.
    """
    local_class = translations.get(getattr(remote_error, "exc_type", None))
    if local_class is None:
        raise remote_error
    message, details = decode_remote_value(remote_error.value)
    raise local_class(message, details) from remote_error
