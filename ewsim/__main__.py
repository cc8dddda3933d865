"""`python -m ewsim --host 127.0.0.1 --port 8765 [--seed demo] [--latency-ms N] [--capture DIR]`"""

from __future__ import annotations

import argparse
import logging

from .server import EwsServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ewsim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", choices=["demo"], default=None)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--capture", default=None, help="write every request/response here")
    parser.add_argument("--validate", action="store_true",
                        help="validate responses against messages.xsd (logs failures)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = EwsServer(args.host, args.port, latency_ms=args.latency_ms,
                       capture_dir=args.capture, validate=args.validate)
    if args.seed == "demo":
        from .seed import seed_demo
        seed_demo(server)
    logging.getLogger("ewsim").info("ewsim listening on %s", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
