"""Read an existing relay's chatmail.ini (section [params]) into the YAML shape.

The reference relay keeps one flat `[params]` section. Which ini name fills
which key is declared with the key in configschema.py (`ini=`); this module
only derives the mapping. Policy keys keep their names and move to the
section of the daemon that enforces them; the port keys become endpoint
strings. Keys that belong to the deployment tool (web pages, ACME, privacy
texts, ...) are accepted and ignored, so an operator's file works unchanged;
a key nobody knows is reported as a warning (not an error: a newer reference
relay may have added it).
"""

import configparser
import dataclasses
import typing

from .configschema import Config

# An ini key's value in the YAML shape, by the type of the key it fills.
_CONVERT = {int: int, typing.Tuple[str, ...]: str.split}


class _IniKey(typing.NamedTuple):
    keypath: str  # the key it fills, in the YAML shape
    convert: typing.Callable[[str], object]
    entry: str = ""  # the section or mapping entry it fills in part ...
    default: object = None  # ... and that entry's default, to complete it


def _declared(cls=Config, prefix=""):
    """(ini name, _IniKey) for every key configschema declares with an `ini` name."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        keypath = f"{prefix}{f.name}"
        ini = f.metadata.get("ini")
        if isinstance(ini, str):
            yield ini, _IniKey(keypath, _CONVERT.get(hints[f.name], str))
        elif isinstance(ini, dict):
            yield from _declared_parts(f, keypath, ini)
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _declared(hints[f.name], f"{keypath}.")


def _declared_parts(f, keypath, ini):
    """ini keys that fill one part of a section or mapping entry (a port of
    `filtermail.outgoing`, the socket of `metadata.server_keys.turn`)."""
    whole = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    for name, (sub, template, conv) in ini.items():
        entry = f"{keypath}.{sub}".rsplit(".", 1)[0]
        # a section's default, or for a mapping the default of the entry
        default = whole if entry == keypath else whole.get(entry.rsplit(".", 1)[1])
        yield name, _IniKey(f"{keypath}.{sub}", lambda raw, t=template, c=conv: t.format(c(raw)),
                            entry, default)


_DECLARED = dict(_declared())

# Read by the reference's deployment tool, not by the daemons.
_IGNORED = {
    "www_folder", "disable_ipv6", "tls_cert", "tls_external_cert_and_key",
    "acme_email", "mtail_address", "imap_rawlog", "imap_compress",
    "privacy_postal", "privacy_mail", "privacy_pdo", "privacy_supervisor",
    "passdb_path", "invite_token",
}


def _set(data: dict, keypath: str, value) -> None:
    *parents, last = keypath.split(".")
    for name in parents:
        data = data.setdefault(name, {})
    data[last] = value


def ini_to_dict(text: str):
    """Return (data in the YAML shape, warnings). Raises ValueError naming the key."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise ValueError(f"not a chatmail.ini: {e.message.splitlines()[0]}") from None
    if not parser.has_section("params"):
        raise ValueError("params: required section [params] is missing")
    data, warnings, partial = {}, [], []
    for key, raw in parser.items("params"):
        raw = raw.strip()
        if key in _DECLARED:
            declared = _DECLARED[key]
            try:
                _set(data, declared.keypath, declared.convert(raw))
            except ValueError:
                raise ValueError(f"params.{key}: expected a whole number, got {raw!r}") from None
            partial.append(declared)
        elif key not in _IGNORED:
            warnings.append(f"params.{key}: unknown key, ignored")
    for declared in partial:
        _complete(data, declared)
    return data, warnings


def _complete(data: dict, declared: _IniKey) -> None:
    """A section or entry the ini fills in part keeps the rest of its default
    (one port key still needs both endpoints; turn_socket_path keeps its value)."""
    if declared.default is None:
        return
    node = data
    for name in declared.entry.split("."):
        node = node[name]
    for f in dataclasses.fields(declared.default):
        node.setdefault(f.name, getattr(declared.default, f.name))
