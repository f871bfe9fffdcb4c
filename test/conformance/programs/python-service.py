#!/usr/bin/python3
"""A service written with python3-systemd (systemd.daemon), as its users write them.

    python-service.py accept   an Accept=yes instance: sends one JSON line on the connection at
                               fd 3 (what it was given), then holds it until the client closes
    python-service.py listen   a Type=notify service on one listening socket: READY=1 and a
                               STATUS=, then one JSON line to each client
"""
import json
import os
import socket
import sys

from systemd import daemon


def report(fds):
    return {
        "names": sorted(fds.values()),
        "remoteAddr": os.environ.get("REMOTE_ADDR"),
        "remotePort": os.environ.get("REMOTE_PORT"),
    }


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    fds = daemon.listen_fds_with_names()
    if len(fds) != 1:
        print(f"expected one fd from the manager, got {fds!r}", file=sys.stderr)
        return 1
    fd = next(iter(fds))
    if mode == "accept":
        conn = socket.socket(fileno=fd)
        info = report(fds)
        info["connected"] = daemon.is_socket_inet(fd, listening=0)
        conn.sendall((json.dumps(info) + "\n").encode())
        while conn.recv(4096):
            pass
        return 0
    if mode == "listen":
        server = socket.socket(fileno=fd)
        info = report(fds)
        info["listening"] = daemon.is_socket_inet(fd, listening=1)
        daemon.notify("READY=1\nSTATUS=Serving")
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall((json.dumps(info) + "\n").encode())
    print(f"usage: {sys.argv[0]} accept|listen", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
