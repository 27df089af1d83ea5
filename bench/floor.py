#!/usr/bin/env python3
"""A dict server that does no work: the ceiling any server can reach under our load tools.

It answers the requests ``dictload.py`` sends with the least work that still
passes its answer check, and keeps nothing: a lookup of
``shared/passdb/…"<user>`` or ``shared/userdb/<user>`` gets
``O{"home": "/floor/<user>"}``, any other lookup ``N``, a commit ``O<id>``,
an iteration its end line; every other command goes unanswered, as the
protocol wants. No store, no parsing beyond that, no metrics, no logging.

So whatever rate it reaches is set by the load generator, the kernel and the
server's event loop alone, and no real server on the same loop can pass it
on this machine. ``bench/compare --floor`` runs it beside both sides:

- by default on Twisted's epoll reactor, the loop our daemons run on, with
  replies sent straight to the socket as core/sendnow.py does;
- with ``--threads``, one blocking thread per connection, the shape of the
  reference's ``socketserver`` daemons.

    python3 bench/floor.py /tmp/floor.socket [--threads]
"""

import argparse
import os
import socket
import sys
import threading


def answers(data: bytes):
    """The complete lines of ``data`` answered; returns (replies, the unfinished tail)."""
    *lines, tail = data.split(b"\n")
    out = []
    for line in lines:
        kind = line[:1]
        if kind == b"L":
            key = line[1:].split(b"\t", 1)[0]
            if key.startswith((b"shared/passdb/", b"shared/userdb/")):
                user = key.rsplit(b'"', 1)[-1].rsplit(b"/", 1)[-1]
                out.append(b'O{"home": "/floor/' + user + b'"}\n')
            else:
                out.append(b"N\n")
        elif kind == b"C":
            out.append(b"O" + line[1:].split(b"\t", 1)[0] + b"\n")
        elif kind == b"I":
            out.append(b"\n")
    return b"".join(out), tail


def serve_twisted(path):
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol

    class Floor(Protocol):
        tail = b""

        def connectionMade(self):
            self.sock = self.transport.getHandle()

        def dataReceived(self, data):
            out, self.tail = answers(self.tail + data)
            if out:
                sent = self.sock.send(out)  # small replies: the socket takes them whole
                if sent < len(out):
                    self.transport.write(out[sent:])

    factory = Factory.forProtocol(Floor)
    factory.noisy = False
    reactor.listenUNIX(path, factory)
    reactor.run()


def serve_threads(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(128)

    def connection(conn):
        tail = b""
        with conn:
            try:
                while data := conn.recv(65536):
                    out, tail = answers(tail + data)
                    if out:
                        conn.sendall(out)
            except OSError:  # the client went away mid-exchange: nothing to keep
                pass

    while True:
        conn, _ = server.accept()
        threading.Thread(target=connection, args=(conn,), daemon=True).start()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("socket", help="UNIX socket path to listen on")
    p.add_argument("--threads", action="store_true",
                   help="a blocking thread per connection instead of Twisted's reactor")
    args = p.parse_args(argv)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    (serve_threads if args.threads else serve_twisted)(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
