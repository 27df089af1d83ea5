"""Server capability keys: what `GETMETADATA "" /shared/vendor/deltachat/<name>` answers.

Dovecot maps server metadata to the key
`shared/<guid>/vendor/vendor.dovecot/pvt/server/vendor/deltachat/<name>`.
Which names exist and what they answer is configuration
(`metadata.server_keys`, see conf/chatmail.yaml), never code:

- `{value: TEXT}`: TEXT, with `{mail_domain}` and `{max_message_size}` filled in;
- `{file: PATH}`: the file's content (a `.json` file is checked and sent
  compact); a missing or bad file answers "not found";
- `{value: HOST:PORT, turn_socket: PATH}`: `HOST:PORT:<credentials>`, the
  credentials being the one line a TURN helper writes on its UNIX socket
  (the reference relay's chatmail-turn); no helper, no line within
  TURN_TIMEOUT, or an empty line answers "not found".
"""

import json
from typing import Optional

from twisted.internet import defer
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from ..core.config import expand_value

SERVER_PREFIX = "vendor/vendor.dovecot/pvt/server/vendor/deltachat/"
TURN_TIMEOUT = 5.0
MAX_FILE = 60 * 1024  # the answer must fit in one dict line (64 KiB)
MAX_TURN_LINE = 4096


class _OneLine(Protocol):
    """Read the first line the peer writes (or all it wrote before closing)."""

    def __init__(self):
        self.buffer = b""
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.buffer += data
        if b"\n" in self.buffer or len(self.buffer) > MAX_TURN_LINE:
            self._finish()
            self.transport.loseConnection()

    def connectionLost(self, reason=None):
        self._finish()

    def _finish(self):
        if not self.done.called:
            self.done.callback(self.buffer.split(b"\n", 1)[0][:MAX_TURN_LINE])


def read_server_file(path: str) -> Optional[str]:
    """A file key's answer; None if the file is missing, too large or bad JSON. Blocks."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
        text = data.decode("utf-8")
        if path.endswith(".json"):
            text = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except (OSError, ValueError):
        return None
    return text.strip() if len(data) <= MAX_FILE else None


class ServerKeys:
    log = Logger()

    def __init__(self, config, reactor, pool):
        self.reactor = reactor
        self.pool = pool
        self.keys = dict(config.metadata.server_keys)
        self.values = {name: expand_value(key.value, config)
                       for name, key in self.keys.items() if key.value is not None}

    def lookup(self, name: str):
        """The answer for `name`: a string, None (not found) or a Deferred of either."""
        key = self.keys.get(name)
        if key is None:
            return None
        if key.turn_socket is not None:
            return self._turn(key.turn_socket, self.values[name])
        if key.file is not None:
            return self.pool.run(read_server_file, key.file).addCallback(
                self._logged_missing, name)
        return self.values[name]

    def _logged_missing(self, text, name):
        if text is None:
            self.log.warn("server key {name}: file missing, too large or not valid", name=name)
        return text

    def _turn(self, socket_path: str, server: str):
        endpoint = UNIXClientEndpoint(self.reactor, socket_path, timeout=TURN_TIMEOUT)
        proto = _OneLine()
        connected = connectProtocol(endpoint, proto)
        connected.addErrback(lambda f: proto.done.called or proto.done.errback(f))
        d = proto.done.addTimeout(TURN_TIMEOUT, self.reactor)
        d.addBoth(self._turn_answer, proto, server)
        return d

    def _turn_answer(self, result, proto, server):
        if proto.transport is not None:
            proto.transport.abortConnection()
        line = result.decode("utf-8", "replace").strip() if isinstance(result, bytes) else ""
        if not line:
            self.log.warn("no TURN credentials from the helper: {why}",
                          why=result.getErrorMessage() if hasattr(result, "getErrorMessage")
                          else "empty answer")
            return None
        return f"{server}:{line}"
