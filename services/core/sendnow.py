"""Sending a connection's bytes now, straight to its socket.

Twisted's `transport.write` only buffers: the bytes leave when epoll next
reports the socket writable, which costs each request-reply exchange one
more reactor turn and two `epoll_ctl` calls (start, then stop watching for
writability). A `SendNow` hands the bytes to the (non-blocking) socket at
once; what the socket does not take, because its buffer is full or the
connection broke, goes to the transport, and so does everything after it on
that connection, so the order stays right and the reactor reports errors as
it always does.

Only a plain socket connection qualifies, and only while the protocol that
owns it writes nothing through the transport itself. A TLS connection
(`ssl:` endpoints, STARTTLS) must encrypt what it sends, and transports
without a socket (tests' StringTransport) have nothing to send to: both get
everything through `write`.
"""

import socket


class SendNow:
    def __init__(self, transport):
        self.transport = transport
        handle = getattr(transport, "getHandle", None)
        sock = handle() if handle is not None else None
        # a TLS transport's handle is pyOpenSSL's Connection, not a socket
        self._socket = sock if isinstance(sock, socket.socket) else None

    def send(self, data: bytes) -> None:
        # checked on every send: startTLS may come after the first bytes
        if self._socket is not None and not getattr(self.transport, "TLS", False):
            try:
                sent = self._socket.send(data)
            except OSError:  # EAGAIN, or a broken connection the reactor will see
                sent = 0
            if sent == len(data):
                return
            data, self._socket = data[sent:], None  # from now on, in the transport's turn
        self.transport.write(data)  # a closed connection's: dropped there
