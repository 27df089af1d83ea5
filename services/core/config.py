"""The relay configuration: YAML (or a legacy chatmail.ini) -> one frozen object.

The schema (every key with its default, bound and legacy ini name) is in
configschema.py and documented in conf/chatmail.yaml; this module reads a
file into it and checks every value against its declared bound, then the few
rules that relate two keys. `load_config()` is called once in each
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
    Endpoint,
    ExpireConfig,
    FilterDirection,
    FiltermailConfig,
    LastloginConfig,
    MetadataConfig,
    RedisConfig,
    ServerKey,
    Size,
    WebConfig,
    _check_endpoint,
    bound_problem,
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
    if tp not in _SCALARS:
        raise TypeError(f"no converter for {tp!r}")  # a bug in the schema, not in the file
    return _SCALARS[tp](value)


def _bool(value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _float(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _str(value) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def _endpoint(value) -> Endpoint:
    value = _str(value)
    _check_endpoint(value)
    return value


_SCALARS = {bool: _bool, int: _int, float: _float, str: _str, Size: parse_size,
            Endpoint: _endpoint}


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
    """Every value within its declared bound, then the rules relating two keys."""
    _check_bounds(config, "")
    md = config.metadata
    checks = [
        ("doveauth.username_min_length",
         config.doveauth.username_min_length <= config.doveauth.username_max_length,
         f"must not exceed doveauth.username_max_length ({config.doveauth.username_max_length})"),
        ("metadata.notify_retry_min", md.notify_retry_min <= md.notify_retry_max,
         "must be positive and not exceed metadata.notify_retry_max"),
    ]
    for key, ok, problem in checks + _server_key_checks(config) + _web_checks(config):
        if not ok:
            raise _KeyError(key, problem)


def _check_bounds(section, prefix) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        keypath = _join(prefix, f.name)
        if dataclasses.is_dataclass(value):
            _check_bounds(value, keypath)
        elif value is not None and (problem := bound_problem(f.metadata, value)):
            raise _KeyError(keypath, problem)


def _server_key_checks(config):
    checks = []
    for name, key in config.metadata.server_keys.items():
        where = f"metadata.server_keys.{name}"
        checks.append((where, (key.value is None) != (key.file is None),
                       "needs exactly one of value or file"))
        checks.append((where, key.turn_socket is None or key.value is not None,
                       "turn_socket needs a value (the server part, e.g. host:3478)"))
        checks.append((f"{where}.value", _expands(key.value, config),
                       "only {mail_domain} and {max_message_size} may be named"))
    return checks


def _web_checks(config):
    web = config.web
    return [("web.tls_key_file", (web.tls_cert_file is None) == (web.tls_key_file is None),
             "web.tls_cert_file and web.tls_key_file go together")]


def expand_value(value: str, config) -> str:
    """A server key's value with `{mail_domain}` and `{max_message_size}` filled in."""
    return value.format(mail_domain=config.mail_domain, max_message_size=config.max_message_size)


def _expands(value, config) -> bool:
    try:
        value is None or expand_value(value, config)
    except (KeyError, IndexError, ValueError, AttributeError):
        return False
    return True


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
