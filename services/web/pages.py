"""The web front's documents, built once at start: pages, autoconfig, MTA-STS.

The index, info and privacy pages are the operator's templates
(`web.templates_dir`, shipped as conffiles in /etc/chatmail/web/) in
Python's `string.Template` syntax: `$mail_domain`, `$delete_mails_after`,
`$delete_inactive_users_after`, `$delete_large_after`, `$max_mailbox_size`,
`$max_message_size`, `$public_url`, `$dcaccount_url` and, on the index,
`$join` (the DCACCOUNT QR code and link, or a note when registration is
not open); `$$` is a dollar sign. A template that cannot be read or names
another variable stops the daemon at start with one line naming the file.

The QR code is SVG drawn by segno (python3-segno). Client autoconfig follows
Thunderbird's config-v1.1.xml format; the MTA-STS policy is RFC 8461's.
"""

import html
import io
import string
from pathlib import Path
from xml.sax.saxutils import escape

import segno

from ..core.weblinks import dcaccount_url, mta_sts, public_url

TEMPLATES = ("index.html", "info.html", "privacy.html")


class TemplateError(Exception):
    """A template that cannot be used; str() names the file."""


def qr_svg(text: str, title: str = "") -> str:
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=6, border=4, xmldecl=False,
                                     svgns=True, omitsize=True, title=title or None)
    return out.getvalue().decode("ascii")


def _size(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size and n % (size // 16) == 0:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def variables(config) -> dict:
    e = config.expire
    values = dict(mail_domain=config.mail_domain, public_url=public_url(config),
                  dcaccount_url=dcaccount_url(config),
                  delete_mails_after=e.delete_mails_after,
                  delete_inactive_users_after=e.delete_inactive_users_after,
                  delete_large_after=e.delete_large_after,
                  max_mailbox_size=_size(config.max_mailbox_size),
                  max_message_size=_size(config.max_message_size))
    return {k: html.escape(str(v)) for k, v in values.items()}


def join_block(config, mode: str) -> str:
    if mode == "open":
        url = html.escape(dcaccount_url(config))
        return (f'<a class="qr" href="{url}">{qr_svg(dcaccount_url(config), "Join " + config.mail_domain)}</a>\n'
                f'<p>Scan the code with Delta Chat, or on this phone tap: '
                f'<a href="{url}">{url}</a></p>')
    if mode == "invite":
        return ("<p>This relay is invite-only. Scan the invite code or open the invite "
                "link you were given in Delta Chat.</p>")
    return "<p>This relay does not accept new accounts at the moment.</p>"


def _render(path: Path, values: dict) -> bytes:
    try:
        return string.Template(path.read_text("utf-8")).substitute(values).encode("utf-8")
    except OSError as e:
        raise TemplateError(f"web.templates_dir: cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise TemplateError(f"web.templates_dir: {path}: not UTF-8") from None
    except (KeyError, ValueError) as e:
        raise TemplateError(f"web.templates_dir: {path}: unknown or bad variable {e}") from None


class Pages:
    """Every document of the front, rendered once; the index once per mode."""

    def __init__(self, config):
        base = Path(config.web.templates_dir)
        values = variables(config)
        self.index = {mode: _render(base / "index.html", dict(values, join=join_block(config, mode)))
                      for mode in ("open", "invite", "closed")}
        self.info = _render(base / "info.html", values)
        self.privacy = _render(base / "privacy.html", values)
        self.autoconfig = autoconfig(config.mail_domain)
        self.mta_sts = mta_sts(config.mail_domain)


def autoconfig(domain: str) -> bytes:
    d = escape(domain)
    servers = "".join(
        f"""    <{kind} type="{proto}">
      <hostname>{d}</hostname>
      <port>{port}</port>
      <socketType>{socket}</socketType>
      <authentication>password-cleartext</authentication>
      <username>%EMAILADDRESS%</username>
    </{kind}>
""" for kind, proto, port, socket in (
            ("incomingServer", "imap", 993, "SSL"), ("incomingServer", "imap", 143, "STARTTLS"),
            ("outgoingServer", "smtp", 465, "SSL"), ("outgoingServer", "smtp", 587, "STARTTLS")))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="{d}">
    <domain>{d}</domain>
    <displayName>{d} chatmail</displayName>
    <displayShortName>{d}</displayShortName>
{servers}  </emailProvider>
</clientConfig>
""".encode("utf-8")
