"""Supervision: a crashed process costs seconds of delay, never the shop."""
import time


def wait_for_new_pid(shop, process, old_pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = shop.ctl.getProcessInfo(process)
        if info["pid"] and info["pid"] != old_pid:
            return info
        time.sleep(0.05)
    return None


def test_a_killed_instance_is_restarted_while_the_other_keeps_serving(shop, shopper):
    process = "svc_user:svc_user-0"
    killed_at = time.monotonic()
    old_pid = shop.kill(process)  # SIGKILL: a crash at whatever line it was on
    # The other instance takes every request meanwhile (one queue, competing consumers).
    answers = []
    while time.monotonic() - killed_at < 3:
        answers.append(shopper.get("/users/me").status_code)
    assert answers and set(answers) == {200}, answers

    restarted = wait_for_new_pid(shop, process, old_pid, timeout=5)
    assert restarted is not None, f"{process} was not restarted within 5 s"
    deadline = time.monotonic() + 30
    while shop.ctl.getProcessInfo(process)["statename"] != "RUNNING":
        assert time.monotonic() < deadline, shop.ctl.getProcessInfo(process)
        time.sleep(0.2)
    # Both instances serve again: with the other one stopped, the restarted one answers alone.
    shop.stop_instance("svc_user", 1)
    try:
        assert shopper.get("/users/me").status_code == 200
    finally:
        shop.start_instance("svc_user", 1)
