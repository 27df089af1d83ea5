"""Standalone TLS for the web front: the certificate chain and key from files.

`web.tls_cert_file` is a PEM chain (the server's certificate first, as
certbot's fullchain.pem), `web.tls_key_file` its private key. Read once at
start: after a renewal, restart chatmail-web (e.g. from certbot's deploy hook).
"""

import re

from OpenSSL import crypto
from twisted.internet.ssl import CertificateOptions
from twisted.protocols.tls import TLSMemoryBIOFactory

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def certificate_options(cert_file: str, key_file: str) -> CertificateOptions:
    try:
        with open(cert_file, "rb") as f:
            chain = [crypto.load_certificate(crypto.FILETYPE_PEM, pem)
                     for pem in _PEM.findall(f.read())]
        with open(key_file, "rb") as f:
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, f.read())
    except OSError as e:
        raise ValueError(f"web TLS: cannot read {e.filename}: {e.strerror}") from None
    except crypto.Error as e:
        raise ValueError(f"web TLS: unusable certificate or key: {e}") from None
    if not chain:
        raise ValueError(f"web.tls_cert_file: no certificate in {cert_file}")
    return CertificateOptions(privateKey=key, certificate=chain[0], extraCertChain=chain[1:])


def wrap(config, factory):
    """The factory itself, or wrapped in TLS when the config names certificate files."""
    web = config.web
    if web.tls_cert_file is None:
        return factory
    return TLSMemoryBIOFactory(certificate_options(web.tls_cert_file, web.tls_key_file),
                               False, factory)
