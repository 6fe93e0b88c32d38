"""The local Kafka broker, as supervisord runs it: Tansu, then the shop's topics.

Tansu keeps everything in memory, so a restarted broker has no topics; this
wrapper creates them every time the broker starts. Tansu auto-creates a topic
(with four partitions) for any client that asks for it, and ignores the
client's "do not create" flag, so after a restart the services' own metadata
requests may win the race: a topic then has four partitions, not three. That
is harmless (keys spread over four; consumers rejoin for the new count, see
shop_common.messaging.kafka._take_up_pending_joins); real Kafka in compose and
Kubernetes has auto-creation off. The broker is a child that dies with the
wrapper, so a SIGKILL of the wrapper never leaves an orphan holding the port.
"""
import argparse
import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from stack import TOPIC_PARTITIONS, tansu_binary, wait_for_port  # noqa: E402

PR_SET_PDEATHSIG = 1


def die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def create_topics(bootstrap, deadline_seconds=30):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from shop_common.messaging.events import ALL_TOPICS

    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                existing = set(admin.list_topics())
                missing = [NewTopic(topic, TOPIC_PARTITIONS, 1) for topic in ALL_TOPICS if topic not in existing]
                if missing:
                    try:
                        admin.create_topics(missing)
                    except TopicAlreadyExistsError:
                        pass
                return missing
            finally:
                admin.close()
        except Exception as exc:  # the broker may still be finding its feet
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not create the topics: {exc!r}")
            time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    listener = f"tcp://127.0.0.1:{args.port}"
    broker = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
         "--storage-engine", "memory://tansu/"],
        preexec_fn=die_with_parent)

    def forward(signum, frame):
        broker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    wait_for_port(args.port, 30, "Kafka (tansu)")
    created = create_topics(f"127.0.0.1:{args.port}")
    print(f"kafka broker on {args.port}; topics created: {[topic.name for topic in created]}", flush=True)
    sys.exit(broker.wait())


if __name__ == "__main__":
    main()
