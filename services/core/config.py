"""The relay configuration: YAML (or a legacy chatmail.ini) -> one frozen object.

The schema (every key and default) is in configschema.py and documented in
conf/chatmail.yaml. `load_config()` is called once in each
daemon's `main()` and the result is passed down, never stored globally.

Errors are `ConfigError("<file>: <key.path>: <problem>")`, one line, so a
daemon that refuses to start tells the operator exactly what to fix.
"""

import collections.abc
import dataclasses
import re
import types
import typing

import yaml

# The schema lives in configschema; its names are part of this module's API.
from .configschema import (  # noqa: F401
    Config,
    DEFAULT_SERVER_KEYS,
    DkimConfig,
    DkimSign,
    DoveauthConfig,
    ENDPOINT_KINDS,
    ExpireConfig,
    FilterDirection,
    FiltermailConfig,
    LastloginConfig,
    MetadataConfig,
    RedisConfig,
    ServerKey,
    Size,
    _check_endpoint,
    parse_size,
)


class ConfigError(Exception):
    """A config file that cannot be used; str() is the one-line message."""




# Keys that are set by the loader, never read from a file.
_INTERNAL = {"path", "warnings"}


def _convert(tp, value, keypath):
    """Convert one YAML value to the annotated type, or raise ValueError."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner, value, keypath)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, keypath)
    if origin is collections.abc.Mapping:
        return _convert_mapping(tp, value, keypath)
    if origin is tuple:
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return tuple(_convert(str, v, f"{keypath}[{i}]") for i, v in enumerate(value))
    if tp is Size:
        return parse_size(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        return str(value)
    raise TypeError(f"no converter for {tp!r}")  # a bug in the schema, not in the file


def _convert_mapping(tp, value, keypath, default=types.MappingProxyType({})):
    """A mapping extends its default: new names add entries, `null` removes one."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    _, inner = typing.get_args(tp)
    merged = dict(default)
    for name, item in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            raise _KeyError(_join(keypath, str(name)), "names are lower-case [a-z0-9_.-]")
        merged[name] = _convert(inner, item, _join(keypath, name))
    return types.MappingProxyType({k: v for k, v in merged.items() if v is not None})


def _build(cls, data, keypath):
    if not isinstance(data, dict):
        raise _KeyError(keypath or "(top)", f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - _INTERNAL
    for key in data:
        if key not in names:
            raise _KeyError(_join(keypath, str(key)), "unknown key")
    values = {}
    for name in names:
        if name in data:
            sub = _join(keypath, name)
            try:
                if typing.get_origin(hints[name]) is collections.abc.Mapping:
                    default = next(f.default_factory() for f in dataclasses.fields(cls)
                                   if f.name == name)
                    values[name] = _convert_mapping(hints[name], data[name], sub, default)
                else:
                    values[name] = _convert(hints[name], data[name], sub)
            except ValueError as e:
                raise _KeyError(sub, str(e)) from None
    try:
        return cls(**values)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in values
                   and f.default is dataclasses.MISSING and f.name not in _INTERNAL]
        raise _KeyError(_join(keypath, missing[0]), "required key is missing") from None


class _KeyError(Exception):
    def __init__(self, keypath, problem):
        super().__init__(f"{keypath}: {problem}")


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _validate(config: Config) -> None:
    """Cross-field checks: values that are well-typed but impossible."""
    da = config.doveauth
    checks = [
        ("mail_domain", re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", config.mail_domain),
         "must be a lower-case domain name"),
        ("doveauth.username_min_length", da.username_min_length >= 1, "must be at least 1"),
        ("doveauth.username_min_length", da.username_min_length <= da.username_max_length,
         f"must not exceed doveauth.username_max_length ({da.username_max_length})"),
        ("doveauth.password_min_length", da.password_min_length >= 1, "must be at least 1"),
        ("doveauth.threads", 1 <= da.threads <= 64, "must be between 1 and 64"),
        ("doveauth.create_threads", 1 <= da.create_threads <= 64, "must be between 1 and 64"),
        ("max_message_size", config.max_message_size > 0, "must be positive"),
        ("storage", config.storage == "files" or re.match(r"^rediss?://", config.storage),
         "must be 'files' or a redis:// or rediss:// URL"),
        ("redis.socket_timeout", 0 < config.redis.socket_timeout <= 60,
         "must be more than 0 and at most 60 seconds"),
        ("filtermail.max_user_send_per_minute", config.filtermail.max_user_send_per_minute > 0,
         "must be positive"),
        ("filtermail.max_user_send_burst_size", config.filtermail.max_user_send_burst_size > 0,
         "must be positive"),
        *((f"expire.{key}", getattr(config.expire, key) >= 1, "must be at least 1 (days)")
          for key in ("delete_inactive_users_after", "delete_mails_after", "delete_large_after")),
        ("filtermail.reinject_timeout", config.filtermail.reinject_timeout > 0,
         "must be positive"),
        ("filtermail.threads", 1 <= config.filtermail.threads <= 64,
         "must be between 1 and 64"),
        ("filtermail.dkim.dns_timeout", config.filtermail.dkim.dns_timeout > 0,
         "must be positive"),
    ]
    for key, ok, problem in checks + _metadata_checks(config):
        if not ok:
            raise _KeyError(key, problem)
    for key, value in _endpoints(config):
        try:
            _check_endpoint(value)
        except ValueError as e:
            raise _KeyError(key, str(e)) from None


def _metadata_checks(config):
    md = config.metadata
    checks = [
        ("metadata.notify_timeout", md.notify_timeout > 0, "must be positive"),
        ("metadata.notify_concurrency", 1 <= md.notify_concurrency <= 256,
         "must be between 1 and 256"),
        ("metadata.notify_deadline", md.notify_deadline > 0, "must be positive"),
        ("metadata.notify_retry_min", 0 < md.notify_retry_min <= md.notify_retry_max,
         "must be positive and not exceed metadata.notify_retry_max"),
        ("metadata.token_max_age_days", md.token_max_age_days >= 1, "must be at least 1"),
        ("metadata.max_tokens", md.max_tokens >= 1, "must be at least 1"),
        ("metadata.max_token_length", 1 <= md.max_token_length <= 16384,
         "must be between 1 and 16384"),
        ("metadata.threads", 1 <= md.threads <= 64, "must be between 1 and 64"),
    ]
    for name, key in md.server_keys.items():
        where = f"metadata.server_keys.{name}"
        checks.append((where, (key.value is None) != (key.file is None),
                       "needs exactly one of value or file"))
        checks.append((where, key.turn_socket is None or key.value is not None,
                       "turn_socket needs a value (the server part, e.g. host:3478)"))
        checks.append((f"{where}.value", _expands(key.value, config),
                       "only {mail_domain} and {max_message_size} may be named"))
    return checks


def expand_value(value: str, config) -> str:
    """A server key's value with `{mail_domain}` and `{max_message_size}` filled in."""
    return value.format(mail_domain=config.mail_domain, max_message_size=config.max_message_size)


def _expands(value, config) -> bool:
    try:
        value is None or expand_value(value, config)
    except (KeyError, IndexError, ValueError, AttributeError):
        return False
    return True


def _endpoints(config):
    fm = config.filtermail
    yield "doveauth.listen", config.doveauth.listen
    if config.doveauth.http_listen is not None:
        yield "doveauth.http_listen", config.doveauth.http_listen
    yield "lastlogin.listen", config.lastlogin.listen
    yield "metadata.listen", config.metadata.listen
    yield "filtermail.outgoing.listen", fm.outgoing.listen
    yield "filtermail.incoming.listen", fm.incoming.listen
    for direction in ("outgoing", "incoming"):
        metrics = getattr(fm, direction).metrics
        if metrics is not None:
            yield f"filtermail.{direction}.metrics", metrics
    for section in ("doveauth", "lastlogin", "metadata", "filtermail"):
        metrics = getattr(config, section).metrics
        if metrics is not None:
            yield f"{section}.metrics", metrics


def config_from_dict(data: dict, path: str = "<config>", warnings=()) -> Config:
    """Build and validate a Config from already-parsed data (YAML or mapped ini)."""
    try:
        config = _build(Config, data, "")
        if not config.mailboxes_dir:
            config = dataclasses.replace(
                config, mailboxes_dir=f"/home/vmail/mail/{config.mail_domain}")
        _validate(config)
    except _KeyError as e:
        raise ConfigError(f"{path}: {e}") from None
    return dataclasses.replace(config, path=str(path), warnings=tuple(warnings))


def load_config(path) -> Config:
    """Read a YAML file, or a legacy chatmail.ini when the name ends in `.ini`."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if path.endswith(".ini"):
        from .legacyini import ini_to_dict

        try:
            data, warnings = ini_to_dict(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: {e}") from None
        return config_from_dict(data, path, warnings)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: {where}{problem}") from None
    return config_from_dict(data if data is not None else {}, path)
