"""A Stripe-compatible peer for the tests: the unmodified localstripe app, on loopback only.

    python -m tests.support.stripe_peer [--port 0] [--exit-on-stdin-eof]

prints ``READY http://127.0.0.1:PORT`` on stdout once it accepts connections (port 0, the
default, lets the kernel pick a free one), logs requests on stderr, and runs until SIGTERM or
SIGINT. localstripe's own CLI binds every interface and pickles its whole store to the fixed
path /tmp/localstripe.pickle after each write (shared by every instance on the machine); here
the store lives in memory only: loading and saving are replaced by no-ops.

``serve`` is shared with tests/support/fault_proxy.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading

from aiohttp import web

HOST = "127.0.0.1"
READY = "READY"


def serve(app: web.Application, port: int = 0, *, exit_on_stdin_eof: bool = False) -> None:
    """Serve ``app`` on HOST:port until SIGTERM/SIGINT, after printing the ready line.

    With ``exit_on_stdin_eof`` the server also stops when its stdin closes, i.e. when the
    parent that holds the other end of the pipe dies, even by SIGKILL.
    """
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(_serve(app, port, exit_on_stdin_eof))


async def _serve(app: web.Application, port: int, exit_on_stdin_eof: bool) -> None:
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, port).start()
        host, real_port = runner.addresses[0][:2]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if exit_on_stdin_eof:

            def wait_for_eof() -> None:
                while os.read(sys.stdin.fileno(), 4096):  # not sys.stdin: its lock blocks exit
                    pass
                loop.call_soon_threadsafe(stop.set)

            threading.Thread(target=wait_for_eof, daemon=True).start()
        print(f"{READY} http://{host}:{real_port}", flush=True)
        sys.stdout = sys.stderr  # nobody reads stdout after the ready line: keep its pipe empty
        await stop.wait()
    finally:
        await runner.cleanup()


def localstripe_app() -> web.Application:
    """localstripe's aiohttp app, with its store kept in memory only."""
    from localstripe import resources, server  # type: ignore[import-untyped]

    def no_op(_store: object) -> None:
        return None

    resources.Store.try_load_from_disk = no_op
    resources.Store.dump_to_disk = no_op
    app: web.Application = server.app
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    serve(localstripe_app(), args.port, exit_on_stdin_eof=args.exit_on_stdin_eof)


if __name__ == "__main__":
    main()
