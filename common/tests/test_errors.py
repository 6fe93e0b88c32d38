"""The error catalogue: every error crosses Nameko RPC as its own class and knows its response."""
import importlib
import re
from pathlib import Path

import pytest
from nameko.exceptions import RemoteError, deserialize, serialize

from shop_common import errors

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("error_class", [cls for cls, _, _ in errors.public_errors()], ids=lambda cls: cls.__name__)
def test_an_error_crosses_rpc_as_itself_with_its_details(error_class):
    sent = error_class("what went wrong", {"product_id": "p1"})
    received = deserialize(serialize(sent))
    assert type(received) is error_class
    assert (received.message, received.details) == ("what went wrong", {"product_id": "p1"})
    assert (received.status, received.code) == (error_class.status, error_class.code)


def test_an_exception_outside_the_catalogue_stays_a_remote_error():
    assert isinstance(deserialize(serialize(ZeroDivisionError("division by zero"))), RemoteError)


def test_every_public_error_has_a_status_and_a_stable_code():
    for cls, status, code in errors.public_errors():
        assert 400 <= status <= 599, cls
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), cls


def test_every_error_class_is_in_the_catalogue():
    """A class defined elsewhere crosses RPC only to callers that happen to import its module."""
    import pkgutil

    import shop_common

    for module in pkgutil.walk_packages(shop_common.__path__, "shop_common."):
        if module.name != "shop_common.testing":
            importlib.import_module(module.name)
    assert [cls for cls, _, _ in errors.public_errors() if cls.__module__ != "shop_common.errors"] == []


def test_no_service_defines_errors_of_its_own():
    """One catalogue: a service raising an error the gateway cannot answer for is a 500."""
    defined = [f"{path.relative_to(ROOT)}: {line.strip()}"
               for path in ROOT.glob("svc_*/svc_*/*.py")
               for line in path.read_text().splitlines()
               if re.match(r"class \w+\((DomainError|TransientError|ValidationError|IllegalTransition)\)", line)]
    assert defined == []
