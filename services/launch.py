"""The console scripts of the daemons that make no TLS connection through Twisted.

Twisted imports pyOpenSSL whenever it is installed (Debian's python3-twisted
depends on it), and pyOpenSSL brings cryptography's bindings: 12 MiB of each
daemon's idle RSS (bench/README.md, "Memory"). chatmail-doveauth,
chatmail-lastlogin and chatmail-filtermail talk to Dovecot and Postfix over
local sockets, and Postfix and Dovecot speak TLS to the world;
chatmail-metadata POSTs to the push service with Python's own ssl module
(metadata/http.py). So their scripts hide pyOpenSSL before anything imports
Twisted: `import OpenSSL` fails, and Twisted runs without its TLS layer.
Redis over TLS (`rediss://`) is unaffected (redis-py uses the ssl module too).

chatmail-web (it may serve TLS itself) and chatmail-relayd (it hosts web)
keep pyOpenSSL. Only a fresh process's entry point may hide it: importing
these daemons' modules anywhere else (tests, relayd) changes nothing.
"""

import sys

TLS_PACKAGES = ("OpenSSL", "service_identity")


def without_tls() -> None:
    """Make pyOpenSSL unimportable in this process, unless already imported."""
    for name in TLS_PACKAGES:
        sys.modules.setdefault(name, None)


def doveauth(argv=None):
    without_tls()
    from .doveauth.main import main
    return main(argv)


def lastlogin(argv=None):
    without_tls()
    from .lastlogin.main import main
    return main(argv)


def metadata(argv=None):
    without_tls()
    from .metadata.main import main
    return main(argv)


def filtermail(argv=None):
    without_tls()
    from .filtermail.main import main
    return main(argv)
