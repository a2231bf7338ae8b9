"""The trial's side of its private network: forwards fixed loopback ports to the runner's Unix sockets,
then runs the harness and exits with its status.

Started by the runner already inside the trial's network namespace (see ``netns``), outside the trial's
sandbox, which it starts; Unix sockets are files, not network, so the runner's egress proxy and
OpenTelemetry collector stay reachable through it while nothing else is — the sandbox itself has no
socket on disk to reach. Runs as ``python -I -S bridge.py --forward 3128=/tmp/…/proxy.sock -- ARGV…``: the
standard library only, no site packages, so it starts in milliseconds and imports nothing of the
project the trial could tamper with.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import subprocess
import sys
import threading

CHUNK = 1 << 16


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _serve(listener: socket.socket, unix_path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(unix_path)
        except OSError:
            client.close()
            upstream.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bridge")
    parser.add_argument("--forward", action="append", default=[], metavar="[HOST:]PORT=UNIX_SOCKET")
    parser.add_argument("--pass-fd", action="append", type=int, default=[], metavar="FD")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    for spec in args.forward:
        address, _, path = spec.partition("=")
        host, _, port = address.rpartition(":")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host or "127.0.0.1", int(port)))
        listener.listen(64)
        threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    try:
        # The standard library only here; ``--pass-fd``: the sandbox's seccomp filter, for bubblewrap.
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=args.pass_fd)  # noqa: TID251
    except OSError as exc:
        print(f"bridge: could not start {command[0]!r}: {exc}", file=sys.stderr)  # noqa: T201
        return 127
    # The runner ends a trial by killing the process group; a plain TERM is passed on.
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
