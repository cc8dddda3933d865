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
    parser.add_argument("--tls-port", type=int, default=None,
                        help="also serve https (self-signed) on this port, for MSAL")
    parser.add_argument("--validate", action="store_true",
                        help="validate responses against messages.xsd (logs failures)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = EwsServer(args.host, args.port, latency_ms=args.latency_ms,
                       capture_dir=args.capture, validate=args.validate,
                       tls=args.tls_port is not None, tls_port=args.tls_port or 0)
    if args.seed == "demo":
        from .seed import seed_demo
        seed_demo(server)
    logging.getLogger("ewsim").info("ewsim listening on %s (Graph: %s)", server.url,
                                    server.graph_url)
    if server.https_httpd is not None:
        import threading
        threading.Thread(target=server.https_httpd.serve_forever, daemon=True).start()
        logging.getLogger("ewsim").info("TLS on %s, certificate %s", server.https_base_url,
                                        server.tls_ca_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


if __name__ == "__main__":
    main()
