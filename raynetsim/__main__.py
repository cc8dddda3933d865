"""`python -m raynetsim --host 127.0.0.1 --port 8766 [--latency-ms N] [--state FILE]
[--instance NAME --user EMAIL --api-key KEY [--full-name NAME] [--seed demo]]`"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from typing import Any

from .persistence import StateFileError, StateKeeper
from .server import RaynetServer

log = logging.getLogger("raynetsim")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="raynetsim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--latency-ms", type=int, default=0,
                        help="answer every API request this much later (a realistic 50)")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="keep the instances in this file across restarts")
    parser.add_argument("--instance", default=None,
                        help="create this instance at start, unless the state file has it")
    parser.add_argument("--user", default="api@example.com", help="its API user's e-mail")
    parser.add_argument("--api-key", default="api-key", help="its API user's key")
    parser.add_argument("--full-name", default=None, help="its API user's name")
    parser.add_argument("--seed", choices=["demo"], default=None,
                        help="a few records in the instance when it is made (raynetsim/seed.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = RaynetServer(args.host, args.port, latency_ms=args.latency_ms)
    keeper = StateKeeper(server.store, args.state) if args.state else None
    if keeper is not None:
        _restore(keeper)
    if args.instance and args.instance not in server.store.instances:
        instance = server.store.add_instance(args.instance)
        user = server.store.add_user(instance, args.user, args.api_key,
                                     args.full_name or args.user, server.clock.now())
        if args.seed == "demo":
            from .seed import seed_demo
            seed_demo(server.store, instance, user, server.clock.now())
    if keeper is not None:
        keeper.save()
        keeper.start()
    log.info("raynetsim listening on %s", server.api_url)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM must end in the `finally` below, which writes the state a last time.
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.webhooks.stop()
        server.httpd.server_close()
        if keeper is not None and keeper.stop():
            log.info("raynetsim saved its instances to %s", keeper.path)


def _restore(keeper: StateKeeper) -> None:
    """Load the state file; one that cannot be used is moved aside, never fatal."""
    try:
        restored = keeper.load()
    except StateFileError as exc:
        aside = keeper.path.with_name(keeper.path.name + ".unreadable")
        os.replace(keeper.path, aside)
        log.warning("raynetsim cannot use its state file %s: %s; it was moved to %s and the "
                    "instances start empty.", keeper.path, exc, aside)
        return
    if restored is not None:
        log.info("raynetsim restored %d records from %s", restored, keeper.path)


if __name__ == "__main__":
    main()
