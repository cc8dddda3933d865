"""`python -m ewsim --host 127.0.0.1 --port 8765 [--seed demo] [--state FILE] [--latency-ms N]
[--capture DIR]`"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
from typing import Any

from .persistence import StateFileError, StateKeeper
from .server import EwsServer

log = logging.getLogger("ewsim")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ewsim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", choices=["demo"], default=None)
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="keep the mailboxes in this file across restarts (read at start, "
                             "written on change and at shutdown); --seed applies only when "
                             "there is no usable file yet")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--capture", default=None, help="write every request/response here")
    parser.add_argument("--tls-port", type=int, default=None,
                        help="also serve https (self-signed) on this port, for MSAL")
    parser.add_argument("--validate", action="store_true",
                        help="validate responses against messages.xsd (logs failures)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = EwsServer(args.host, args.port, latency_ms=args.latency_ms,
                       capture_dir=args.capture, validate=args.validate,
                       tls=args.tls_port is not None, tls_port=args.tls_port or 0)
    keeper = StateKeeper(server, args.state) if args.state else None
    restored = _restore(keeper) if keeper else False
    if args.seed == "demo" and not restored:
        from .seed import seed_demo
        seed_demo(server)
    elif args.seed == "demo":
        from .seed import add_users
        if added := add_users(server.store):
            log.info("ewsim added the demo mailboxes %s", ", ".join(added))
    if keeper is not None:
        keeper.save_or_log()   # the seeded demo is on disk before any client changes it
        keeper.start()
    log.info("ewsim listening on %s (Graph: %s)", server.url, server.graph_url)
    if server.https_httpd is not None:
        import threading
        threading.Thread(target=server.https_httpd.serve_forever, daemon=True).start()
        log.info("TLS on %s, certificate %s", server.https_base_url, server.tls_ca_file)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM (how `manage.py serve` stops its children) must end in the `finally` below,
    # which writes the state a last time; by default it would end the process on the spot.
    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        if keeper is not None and keeper.stop():
            log.info("ewsim saved its mailboxes to %s", keeper.path)


def _restore(keeper: StateKeeper) -> bool:
    """Load the state file; a file that cannot be used is moved aside, never fatal."""
    try:
        counts = keeper.load()
    except StateFileError as exc:
        aside = keeper.path.with_name(keeper.path.name + ".unreadable")
        try:
            os.replace(keeper.path, aside)
            kept = f"it was moved to {aside}"
        except OSError as move_error:
            kept = f"it could not be moved aside ({move_error.strerror}) and will be replaced"
        log.warning("ewsim cannot use its state file %s: %s; %s. The mailboxes start again "
                    "from the beginning (with --seed demo: the demo data, under new ids).",
                    keeper.path, exc, kept)
        return False
    if counts is None:
        log.info("ewsim has no state file at %s yet: it will write one.", Path(keeper.path))
        return False
    log.info("ewsim restored its mailboxes from %s (%s).", keeper.path,
             ", ".join(f"{address}: {n} items" for address, n in sorted(counts.items())))
    return True


if __name__ == "__main__":
    main()
