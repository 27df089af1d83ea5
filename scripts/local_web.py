"""The web part of the local relay: chatmail-web over HTTPS on a loopback port.

TLS comes from a test CA made once in `<dir>/web/` (scripts/notify_sink.py's
`make_test_ca`: ca.pem, cert.pem and key.pem for localhost and 127.0.0.1);
clients trust it through ca.pem (e.g. SSL_CERT_FILE). The pages are the
templates of conf/web/, as the package installs them in /etc/chatmail/web/.
`public_url` is https://127.0.0.1:PORT, so the DCACCOUNT code points at
this front. Not installed with the package: a development and test tool.
"""

import io
import os
import sys
from pathlib import Path

from notify_sink import make_test_ca

REPO = Path(__file__).resolve().parent.parent
# resolved: .venv is a link to a venv that vmail can enter (scripts/bootstrap)
BIN = Path(sys.executable).parent.resolve()


class WebPart:
    def __init__(self, relay, free_port):
        self.relay = relay
        self.port = free_port()
        self.dir = relay.base / "web"
        self.ca_file, self.cert_file, self.key_file = (
            self.dir / n for n in ("ca.pem", "cert.pem", "key.pem"))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def dcaccount(self) -> str:
        return f"DCACCOUNT:{self.url}/new"

    def web_config(self) -> dict:
        return {"listen": f"tcp:{self.port}:interface=127.0.0.1", "public_url": self.url,
                "tls_cert_file": str(self.cert_file), "tls_key_file": str(self.key_file),
                "templates_dir": str(self.dir / "templates")}

    def render(self) -> None:
        make_test_ca(self.dir)
        # a copy: the daemon (vmail) may not enter the checkout, e.g. in /root
        from local_relay import copy_readable

        copy_readable(REPO / "conf" / "web", self.dir / "templates")
        vmail = self.relay.vmail
        self.dir.chmod(0o755)
        self.ca_file.chmod(0o644)
        os.chown(self.key_file, vmail.pw_uid, vmail.pw_gid)  # the daemon runs as vmail
        self.key_file.chmod(0o600)

    def start(self):
        cmd = [str(BIN / "chatmail-web"), "--config", str(self.relay.config_path),
               "--log-level", "debug"]
        proc = self.relay.start_process("web", cmd, user="vmail")
        self.relay.wait_port(self.port, "chatmail-web", proc=proc)
        return proc

    def banner(self) -> str:
        import segno

        qr = io.StringIO()
        segno.make(self.dcaccount, error="m").terminal(out=qr, border=2)
        return (f"  Web:   {self.url}/ (HTTPS, test CA {self.ca_file})\n"
                f"  Join with Delta Chat by scanning ({self.dcaccount}):\n{qr.getvalue()}"
                f"  Admin: chatmailctl --config {self.relay.config_path} registration "
                f"open|invite|closed|status\n"
                f"         chatmailctl --config {self.relay.config_path} invite create --qr\n")
