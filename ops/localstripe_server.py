"""Run localstripe (a fake, stateful Stripe API) for development and tests.

Started from Python rather than its own CLI so that it binds loopback only
and keeps nothing on disk: the CLI listens on every interface and pickles
its whole store to /tmp after every write.
"""
import argparse
import logging

from aiohttp import web
from localstripe import resources, server


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args()
    resources.Store.dump_to_disk = lambda self: None
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
