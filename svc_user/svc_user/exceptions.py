from shop_common.errors import DomainError


class EmailTaken(DomainError):
    """An account with this email exists."""


class InvalidCredentials(DomainError):
    """Unknown email or wrong password; the two are never told apart."""


class UserNotFound(DomainError):
    """No user has this id."""
