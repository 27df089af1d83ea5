"""The configuration schema: one frozen dataclass per section, every default here.

conf/chatmail.yaml documents each key with these defaults (a test loads it);
config.py reads a file into these classes and validates the result.
"""

import types
import typing
import re
from dataclasses import dataclass, field
from pathlib import Path

class Size(int):
    """A byte count written as `500M`, `1G`, `200K` or a plain number (binary units, as Dovecot)."""


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


@dataclass(frozen=True)
class DoveauthConfig:
    listen: str = "unix:/run/chatmail/doveauth.socket:mode=660"
    # Dovecot 2.4's Lua passdb/userdb (HTTP front-end); None = off.
    http_listen: typing.Optional[str] = None
    metrics: typing.Optional[str] = None
    username_min_length: int = 9
    username_max_length: int = 9
    password_min_length: int = 9
    nocreate_file: str = "/etc/chatmail-nocreate"
    max_load_1m: float = 5.0
    min_available_memory: Size = Size(200 << 20)
    min_free_disk_space: Size = Size(1 << 30)
    uid: str = "vmail"
    gid: str = "vmail"
    threads: int = 4
    create_threads: int = 1


@dataclass(frozen=True)
class LastloginConfig:
    listen: str = "unix:/run/chatmail/lastlogin.socket:mode=660"
    metrics: typing.Optional[str] = None


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
    listen: str = "unix:/run/chatmail/metadata.socket:mode=660"
    metrics: typing.Optional[str] = None
    notify_url: str = "https://notifications.delta.chat/notify"
    notify_ca_file: typing.Optional[str] = None
    notify_timeout: float = 30.0
    notify_concurrency: int = 8
    notify_deadline: int = 5 * 3600
    notify_retry_min: float = 4.0
    notify_retry_max: float = 1800.0
    token_max_age_days: int = 90
    max_tokens: int = 16
    max_token_length: int = 4096
    threads: int = 4
    server_keys: typing.Mapping[str, typing.Optional[ServerKey]] = field(
        default_factory=lambda: DEFAULT_SERVER_KEYS)


@dataclass(frozen=True)
class FilterDirection:
    listen: str
    reinject: str
    metrics: typing.Optional[str] = None


@dataclass(frozen=True)
class DkimSign:
    selector: str
    key_file: str
    ed25519_selector: typing.Optional[str] = None
    ed25519_key_file: typing.Optional[str] = None


@dataclass(frozen=True)
class DkimConfig:
    verify: bool = True
    nameservers: typing.Tuple[str, ...] = ()
    sign: typing.Optional[DkimSign] = None
    dns_timeout: float = 5.0


@dataclass(frozen=True)
class FiltermailConfig:
    outgoing: FilterDirection = FilterDirection(
        "tcp:10080:interface=127.0.0.1", "tcp:127.0.0.1:10025"
    )
    incoming: FilterDirection = FilterDirection(
        "tcp:10081:interface=127.0.0.1", "tcp:127.0.0.1:10026"
    )
    dkim: DkimConfig = DkimConfig()
    metrics: typing.Optional[str] = None
    max_user_send_per_minute: int = 60
    max_user_send_burst_size: int = 10
    passthrough_senders: typing.Tuple[str, ...] = ()
    passthrough_recipients: typing.Tuple[str, ...] = ()
    reinject_timeout: float = 60.0
    threads: int = 2


@dataclass(frozen=True)
class ExpireConfig:
    delete_inactive_users_after: int = 90
    delete_mails_after: int = 20
    delete_large_after: int = 7
    metrics_textfile: typing.Optional[str] = None


@dataclass(frozen=True)
class RedisConfig:
    """Read only when `storage` is a redis:// or rediss:// URL."""

    password_file: typing.Optional[str] = None
    key_prefix: typing.Optional[str] = None  # default: chatmail:<mail_domain>:
    tls_ca_file: typing.Optional[str] = None
    socket_timeout: float = 2.0


@dataclass(frozen=True)
class Config:
    mail_domain: str
    mailboxes_dir: str = ""  # default: /home/vmail/mail/<mail_domain>
    storage: str = "files"
    max_message_size: int = 31457280
    max_mailbox_size: Size = Size(500 << 20)
    doveauth: DoveauthConfig = DoveauthConfig()
    lastlogin: LastloginConfig = LastloginConfig()
    metadata: MetadataConfig = MetadataConfig()
    filtermail: FiltermailConfig = FiltermailConfig()
    expire: ExpireConfig = ExpireConfig()
    redis: RedisConfig = RedisConfig()
    path: str = field(default="", compare=False)
    warnings: typing.Tuple[str, ...] = field(default=(), compare=False)

    @property
    def mailboxes_path(self) -> Path:
        return Path(self.mailboxes_dir)
