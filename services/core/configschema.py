"""The configuration schema: every key declared once, with all it needs.

A key is a dataclass field; `key()` gives it its default and, in the field's
metadata, its bound (`at_least`, `at_most`, `above`, or a `pattern`) and its
legacy chatmail.ini name (`ini`). config.py derives the validation from the
bounds and legacyini.py the ini mapping from the names; conf/chatmail.yaml
documents every key with these defaults (tests/core/test_config.py checks
that none is missing there and that every documented value is the default).
Checks that relate two keys (a minimum not above its maximum) are config.py's.
"""

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path


class Size(int):
    """A byte count written as `500M`, `1G`, `200K` or a plain number (binary units, as Dovecot)."""


class Endpoint(str):
    """A Twisted server endpoint string, e.g. `unix:/run/x.socket:mode=660`."""


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value) -> Size:
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500M, got a boolean")
    if isinstance(value, int):
        return Size(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"expected a size such as 500M or 1G, got {value!r}")
    return Size(int(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


ENDPOINT_KINDS = ("tcp", "tcp6", "unix", "systemd", "ssl")


def _check_endpoint(value: str) -> None:
    if value.split(":", 1)[0] not in ENDPOINT_KINDS:
        raise ValueError(
            f"expected a Twisted endpoint string ({', '.join(ENDPOINT_KINDS)}), got {value!r}"
        )


def key(default=dataclasses.MISSING, *, ini=None, unit="", **bound):
    """A config key: its default, its legacy ini name, its bound.

    `bound` is any of `at_least`, `at_most`, `above` (exclusive) or
    `pattern` with `problem` (the value must match the whole pattern).
    `ini` is the chatmail.ini [params] name, or for a section the mapping
    `{sub_key: (ini_name, template)}` whose template makes a port an endpoint.
    """
    meta = dict(bound, unit=unit)
    if ini is not None:
        meta["ini"] = ini
    return field(default=default, metadata=meta)


def bound_problem(meta, value) -> typing.Optional[str]:
    """What is wrong with `value` under its key's declared bound, or None."""
    lo, hi, above = meta.get("at_least"), meta.get("at_most"), meta.get("above")
    unit = meta.get("unit", "")
    if "pattern" in meta:
        return None if re.fullmatch(meta["pattern"], value, re.DOTALL) else meta["problem"]
    if above is not None and hi is not None:
        ok, problem = above < value <= hi, f"must be more than {above} and at most {hi} {unit}"
    elif above is not None:
        ok, problem = value > above, "must be positive" if above == 0 else f"must exceed {above}"
    elif lo is not None and hi is not None:
        ok, problem = lo <= value <= hi, f"must be between {lo} and {hi}"
    elif lo is not None:
        ok, problem = value >= lo, f"must be at least {lo}" + (f" ({unit})" if unit else "")
    else:
        return None
    return None if ok else problem.strip()


DEFAULT_BACKLOG = 1024  # Twisted's own default is 50: a burst of logins overflows it


def _threads(default):
    return key(default, at_least=1, at_most=64)


_DAYS = dict(at_least=1, unit="days")
_OUT = "tcp:{}:interface=127.0.0.1"  # a legacy listen port as an endpoint
_TO = "tcp:127.0.0.1:{}"  # a legacy reinject port as an endpoint


@dataclass(frozen=True)
class DoveauthConfig:
    listen: Endpoint = "unix:/run/chatmail/doveauth.socket:mode=660"
    # Dovecot 2.4's Lua passdb/userdb (HTTP front-end); None = off.
    http_listen: typing.Optional[Endpoint] = None
    metrics: typing.Optional[Endpoint] = None
    username_min_length: int = key(9, ini="username_min_length", at_least=1)
    username_max_length: int = key(9, ini="username_max_length")
    password_min_length: int = key(9, ini="password_min_length", at_least=1)
    nocreate_file: str = "/etc/chatmail-nocreate"
    max_load_1m: float = 5.0
    min_available_memory: Size = Size(200 << 20)
    min_free_disk_space: Size = Size(1 << 30)
    uid: str = "vmail"
    gid: str = "vmail"
    threads: int = _threads(4)
    create_threads: int = key(0, at_least=0, at_most=64)  # 0: one per CPU


@dataclass(frozen=True)
class LastloginConfig:
    listen: Endpoint = "unix:/run/chatmail/lastlogin.socket:mode=660"
    metrics: typing.Optional[Endpoint] = None


@dataclass(frozen=True)
class ServerKey:
    """One server capability key: a fixed `value`, a `file`'s content, or TURN
    credentials from `turn_socket` appended to `value` (`<value>:<credentials>`).
    `value` may name `{mail_domain}` and `{max_message_size}`."""

    value: typing.Optional[str] = None
    file: typing.Optional[str] = None
    turn_socket: typing.Optional[str] = None


DEFAULT_SERVER_KEYS = types.MappingProxyType({
    "turn": ServerKey(value="{mail_domain}:3478", turn_socket="/run/chatmail-turn/turn.socket"),
    "maxsmtprecipients": ServerKey(value="1000"),
    "maxmessagesize": ServerKey(value="{max_message_size}"),
    "appversions": ServerKey(file="/etc/chatmail/appversions.json"),
})


@dataclass(frozen=True)
class MetadataConfig:
    listen: Endpoint = "unix:/run/chatmail/metadata.socket:mode=660"
    metrics: typing.Optional[Endpoint] = None
    notify_url: str = "https://notifications.delta.chat/notify"
    notify_ca_file: typing.Optional[str] = None
    notify_timeout: float = key(30.0, above=0)
    notify_concurrency: int = key(16, at_least=1, at_most=256)
    notify_deadline: int = key(5 * 3600, above=0)
    notify_retry_min: float = key(4.0, above=0)
    notify_retry_max: float = 1800.0
    token_max_age_days: int = key(90, at_least=1)
    max_tokens: int = key(16, at_least=1)
    max_token_length: int = key(4096, at_least=1, at_most=16384)
    threads: int = _threads(4)
    server_keys: typing.Mapping[str, typing.Optional[ServerKey]] = field(
        default_factory=lambda: DEFAULT_SERVER_KEYS, metadata={"ini": {
            "iroh_relay": ("irohrelay.value", "{}", str),
            "turn_socket_path": ("turn.turn_socket", "{}", str),
        }})


@dataclass(frozen=True)
class FilterDirection:
    listen: Endpoint
    reinject: str
    metrics: typing.Optional[Endpoint] = None


@dataclass(frozen=True)
class DkimSign:
    selector: str
    key_file: str
    ed25519_selector: typing.Optional[str] = None
    ed25519_key_file: typing.Optional[str] = None


# `chatmailctl setup` makes this key when it is missing; a relative key_file is
# relative to the config file's directory (/etc/chatmail/dkim/dkim.key).
DEFAULT_DKIM_SIGN = DkimSign(selector="dkim", key_file="dkim/dkim.key")


@dataclass(frozen=True)
class DkimConfig:
    verify: bool = True
    nameservers: typing.Tuple[str, ...] = ()
    sign: typing.Optional[DkimSign] = DEFAULT_DKIM_SIGN
    dns_timeout: float = key(5.0, above=0)


@dataclass(frozen=True)
class FiltermailConfig:
    outgoing: FilterDirection = key(
        FilterDirection(_OUT.format(10080), _TO.format(10025)),
        ini={"filtermail_smtp_port": ("listen", _OUT, int),
             "postfix_reinject_port": ("reinject", _TO, int)})
    incoming: FilterDirection = key(
        FilterDirection(_OUT.format(10081), _TO.format(10026)),
        ini={"filtermail_smtp_port_incoming": ("listen", _OUT, int),
             "postfix_reinject_port_incoming": ("reinject", _TO, int)})
    dkim: DkimConfig = DkimConfig()
    metrics: typing.Optional[Endpoint] = None
    max_user_send_per_minute: int = key(60, ini="max_user_send_per_minute", above=0)
    max_user_send_burst_size: int = key(10, ini="max_user_send_burst_size", above=0)
    passthrough_senders: typing.Tuple[str, ...] = key((), ini="passthrough_senders")
    passthrough_recipients: typing.Tuple[str, ...] = key((), ini="passthrough_recipients")
    reinject_timeout: float = key(60.0, above=0)
    threads: int = _threads(2)


@dataclass(frozen=True)
class ExpireConfig:
    delete_inactive_users_after: int = key(90, ini="delete_inactive_users_after", **_DAYS)
    delete_mails_after: int = key(20, ini="delete_mails_after", **_DAYS)
    delete_large_after: int = key(7, ini="delete_large_after", **_DAYS)
    metrics_textfile: typing.Optional[str] = None


@dataclass(frozen=True)
class WebConfig:
    """The web front (chatmail-web): /new, the DCACCOUNT page, autoconfig, MTA-STS."""

    listen: Endpoint = "tcp:8443:interface=127.0.0.1"
    metrics: typing.Optional[Endpoint] = None
    # default: https://<mail_domain>
    public_url: typing.Optional[str] = key(None, pattern=r"https://[^/?#\s]+",
                                           problem="must be https://host[:port], without a path")
    tls_cert_file: typing.Optional[str] = None
    tls_key_file: typing.Optional[str] = None
    behind_proxy: bool = False
    templates_dir: str = "/etc/chatmail/web"
    new_per_minute: float = key(2.0, above=0)
    new_burst: int = key(5, at_least=1)
    threads: int = _threads(2)


@dataclass(frozen=True)
class SetupConfig:
    """Read by `chatmailctl setup` only: limits it writes into Dovecot, Postfix, journald."""

    imap_max_connections: int = key(5000, at_least=10, at_most=1000000)
    imap_hibernate_after: int = key(30, at_least=0, unit="seconds; 0 = never")
    submission_max_connections: int = key(200, at_least=1)
    submission_max_connections_per_ip: int = key(20, at_least=1)  # and <= the one above
    quota_warning_percent: int = key(75, at_least=1, at_most=99)
    journal_retention: str = key("3d", pattern=r"[1-9][0-9]*(s|min|h|d|week)",
                                 problem="must be a systemd time span such as 3d, 12h or 1week")


@dataclass(frozen=True)
class RedisConfig:
    """Read only when `storage` is a redis:// or rediss:// URL."""

    password_file: typing.Optional[str] = None
    key_prefix: typing.Optional[str] = None  # default: chatmail:<mail_domain>:
    tls_ca_file: typing.Optional[str] = None
    socket_timeout: float = key(2.0, above=0, at_most=60, unit="seconds")


@dataclass(frozen=True)
class Config:
    mail_domain: str = key(ini="mail_domain", pattern=r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?",
                           problem="must be a lower-case domain name")
    # default: /home/vmail/mail/<mail_domain>
    mailboxes_dir: str = key("", ini="mailboxes_dir")
    storage: str = key("files", pattern=r"files|rediss?://.*",
                       problem="must be 'files' or a redis:// or rediss:// URL")
    max_message_size: int = key(31457280, ini="max_message_size", above=0)
    max_mailbox_size: Size = key(Size(500 << 20), ini="max_mailbox_size")
    listen_backlog: int = key(DEFAULT_BACKLOG, at_least=1, at_most=65535)
    doveauth: DoveauthConfig = DoveauthConfig()
    lastlogin: LastloginConfig = LastloginConfig()
    metadata: MetadataConfig = MetadataConfig()
    filtermail: FiltermailConfig = FiltermailConfig()
    expire: ExpireConfig = ExpireConfig()
    web: WebConfig = WebConfig()
    redis: RedisConfig = RedisConfig()
    setup: SetupConfig = SetupConfig()
    path: str = field(default="", compare=False)
    warnings: typing.Tuple[str, ...] = field(default=(), compare=False)

    @property
    def mailboxes_path(self) -> Path:
        return Path(self.mailboxes_dir)
