"""Run by `make shell` inside `nameko shell` (as PYTHONSTARTUP, where ``n`` is defined).

Three things the bare shell lacks: RPC calls that give up after
``SHOP_SHELL_TIMEOUT_SECONDS`` (10) instead of hanging on a crashed service,
the operator's name on every call (``SHOP_OPERATOR``, else the login name)
so the services can audit who did what, and a list of the operator calls
(``calls()`` prints it again).
"""
import getpass
import os

from shop_common.rpc import OPERATOR, ClusterRpcClient

SHOP_SERVICES = ("order_service", "payment_service", "inventory_service", "product_service", "user_service")
SHOP_OPERATOR = os.environ.get("SHOP_OPERATOR") or getpass.getuser()

n.disconnect()  # noqa: F821 (n is nameko shell's helper)
_shop_client = ClusterRpcClient(timeout=float(os.environ.get("SHOP_SHELL_TIMEOUT_SECONDS", "10")),
                                context_data={OPERATOR: SHOP_OPERATOR})
n.rpc = _shop_client.start()  # noqa: F821
n.disconnect = _shop_client.stop  # noqa: F821


def calls():
    """Every service's operator calls (from its help()), or why it does not answer."""
    with ClusterRpcClient(timeout=3, context_data={OPERATOR: SHOP_OPERATOR}) as lister:
        for service in SHOP_SERVICES:
            try:
                listed = lister[service].help()
            except Exception as exc:  # a service down: say so, list the others
                print(f"\n{service}: not answering ({type(exc).__name__})")
                continue
            print(f"\n{service}:")
            for call, what in sorted(listed.items()):
                print(f"  n.rpc.{service}.{call}\n      {what}")


print(f"The shop's operator shell, as {SHOP_OPERATOR!r} (SHOP_OPERATOR); calls time out after "
      f"{os.environ.get('SHOP_SHELL_TIMEOUT_SECONDS', '10')} s. ops/RUNBOOK.md has the procedures.")
calls()
print("\ncalls() lists them again.")
