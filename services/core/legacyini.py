"""Read an existing relay's chatmail.ini (section [params]) into the YAML shape.

The reference relay keeps one flat `[params]` section. Its policy keys keep
their names here and move to the section of the daemon that enforces them;
the port keys become endpoint strings. Keys that belong to the deployment
tool (web pages, ACME, privacy texts, ...) are accepted and ignored, so an
operator's file works unchanged; a key nobody knows is reported as a warning
(not an error: a newer reference relay may have added it).
"""

import configparser

# flat ini key -> (key path in the YAML shape, converter)
_MOVED = {
    "mail_domain": ("mail_domain", str),
    "mailboxes_dir": ("mailboxes_dir", str),
    "max_message_size": ("max_message_size", int),
    "max_mailbox_size": ("max_mailbox_size", str),
    "username_min_length": ("doveauth.username_min_length", int),
    "username_max_length": ("doveauth.username_max_length", int),
    "password_min_length": ("doveauth.password_min_length", int),
    "max_user_send_per_minute": ("filtermail.max_user_send_per_minute", int),
    "max_user_send_burst_size": ("filtermail.max_user_send_burst_size", int),
    "passthrough_senders": ("filtermail.passthrough_senders", str.split),
    "passthrough_recipients": ("filtermail.passthrough_recipients", str.split),
    "delete_mails_after": ("expire.delete_mails_after", int),
    "delete_large_after": ("expire.delete_large_after", int),
    "delete_inactive_users_after": ("expire.delete_inactive_users_after", int),
}

_PORTS = {
    "filtermail_smtp_port": ("filtermail.outgoing.listen", "tcp:{}:interface=127.0.0.1", 10080),
    "postfix_reinject_port": ("filtermail.outgoing.reinject", "tcp:127.0.0.1:{}", 10025),
    "filtermail_smtp_port_incoming": (
        "filtermail.incoming.listen", "tcp:{}:interface=127.0.0.1", 10081),
    "postfix_reinject_port_incoming": (
        "filtermail.incoming.reinject", "tcp:127.0.0.1:{}", 10026),
}

# Read by the reference's deployment tool, not by the daemons.
_IGNORED = {
    "www_folder", "disable_ipv6", "tls_cert", "tls_external_cert_and_key",
    "acme_email", "mtail_address", "imap_rawlog", "imap_compress",
    "privacy_postal", "privacy_mail", "privacy_pdo", "privacy_supervisor",
    "passdb_path", "invite_token",
}

# The metadata daemon's server capability keys (metadata.server_keys.<name>).
_SERVER_KEYS = {
    "iroh_relay": lambda raw: ("irohrelay", {"value": raw}),
    "turn_socket_path": lambda raw: (
        "turn", {"value": "{mail_domain}:3478", "turn_socket": raw}),
}


def _set(data: dict, keypath: str, value) -> None:
    *parents, last = keypath.split(".")
    for name in parents:
        data = data.setdefault(name, {})
    data[last] = value


REFERENCE_DKIM_SIGN = {"selector": "opendkim", "key_file": "/etc/dkimkeys/opendkim.private"}


def ini_to_dict(text: str):
    """Return (data in the YAML shape, warnings). Raises ValueError naming the key."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise ValueError(f"not a chatmail.ini: {e.message.splitlines()[0]}") from None
    if not parser.has_section("params"):
        raise ValueError("params: required section [params] is missing")
    data, warnings = {}, []
    for key, raw in parser.items("params"):
        raw = raw.strip()
        try:
            if key in _MOVED:
                keypath, conv = _MOVED[key]
                _set(data, keypath, conv(raw))
            elif key in _PORTS:
                keypath, template, _ = _PORTS[key]
                _set(data, keypath, template.format(int(raw)))
            elif key in _SERVER_KEYS:
                name, entry = _SERVER_KEYS[key](raw)
                _set(data, f"metadata.server_keys.{name}", entry)
            elif key not in _IGNORED:
                warnings.append(f"params.{key}: unknown key, ignored")
        except ValueError:
            raise ValueError(f"params.{key}: expected a whole number, got {raw!r}") from None
    _complete_filter_pairs(data)
    # The reference signs with OpenDKIM's key; its DNS record is published already.
    _set(data, "filtermail.dkim.sign", dict(REFERENCE_DKIM_SIGN))
    return data, warnings


def _complete_filter_pairs(data: dict) -> None:
    """A direction given by one port key still needs both endpoints."""
    fm = data.get("filtermail", {})
    for key, (keypath, template, default) in _PORTS.items():
        direction = keypath.split(".")[1]
        if direction in fm:
            fm[direction].setdefault(keypath.split(".")[2], template.format(default))
