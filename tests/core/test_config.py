import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

from chatmail_services.core.config import ConfigError, load_config, parse_size

MINIMAL = "mail_domain: chat.example.org\n"


def write(tmp_path, text, name="chatmail.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_chatmails(tmp_path):
    c = load_config(write(tmp_path, MINIMAL))
    assert c.mailboxes_dir == "/home/vmail/mail/chat.example.org"
    assert c.storage == "files"
    assert (c.max_message_size, c.max_mailbox_size) == (31457280, 500 << 20)
    d = c.doveauth
    assert (d.username_min_length, d.username_max_length, d.password_min_length) == (9, 9, 9)
    assert (d.max_load_1m, d.min_available_memory, d.min_free_disk_space) == (5, 200 << 20, 1 << 30)
    assert d.nocreate_file == "/etc/chatmail-nocreate"
    f = c.filtermail
    assert (f.max_user_send_per_minute, f.max_user_send_burst_size) == (60, 10)
    assert f.outgoing.reinject == "tcp:127.0.0.1:10025"
    assert f.dkim.verify is True
    assert (f.dkim.sign.selector, f.dkim.sign.key_file) == ("dkim", str(tmp_path / "dkim/dkim.key"))
    s = c.setup
    assert (s.imap_max_connections, s.imap_hibernate_after, s.quota_warning_percent,
            s.journal_retention) == (5000, 30, 75, "3d")
    assert (c.expire.delete_inactive_users_after, c.expire.delete_mails_after,
            c.expire.delete_large_after) == (90, 20, 7)


def test_a_relative_dkim_key_file_is_relative_to_the_config_file(tmp_path):
    path = tmp_path / "chatmail.yaml"
    path.write_text("mail_domain: x.org\n")
    assert load_config(path).filtermail.dkim.sign.key_file == str(tmp_path / "dkim/dkim.key")
    path.write_text("mail_domain: x.org\nfiltermail: {dkim: {sign: null}}\n")
    assert load_config(path).filtermail.dkim.sign is None


@pytest.mark.parametrize("setup,message", [
    ({"quota_warning_percent": 100}, "setup.quota_warning_percent: must be between 1 and 99"),
    ({"journal_retention": "3 days"}, "setup.journal_retention: must be a systemd time span"),
    ({"submission_max_connections": 10, "submission_max_connections_per_ip": 20},
     "setup.submission_max_connections_per_ip: must not exceed setup.submission_max"),
])
def test_setup_limits_are_checked(tmp_path, setup, message):
    path = tmp_path / "chatmail.yaml"
    path.write_text(yaml.safe_dump({"mail_domain": "x.org", "setup": setup}))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_the_annotated_example_config_loads():
    c = load_config(Path(__file__).parents[2] / "conf" / "chatmail.yaml")
    assert c.mail_domain == "chat.example.org"


@pytest.mark.parametrize("text,message", [
    ("mail_domain: x.org\nbogus: 1\n", "bogus: unknown key"),
    ("mail_domain: x.org\ndoveauth: {bogus: 1}\n", "doveauth.bogus: unknown key"),
    ("mail_domain: x.org\ndoveauth: {username_min_length: nine}\n",
     "doveauth.username_min_length: expected a whole number"),
    ("mail_domain: x.org\ndoveauth: {username_min_length: 10, username_max_length: 9}\n",
     "doveauth.username_min_length: must not exceed doveauth.username_max_length (9)"),
    ("mail_domain: x.org\nmax_mailbox_size: lots\n", "max_mailbox_size: expected a size"),
    ("mail_domain: x.org\nstorage: mysql://h\n", "storage: must be 'files' or a redis"),
    ("mail_domain: x.org\nfiltermail: {dkim: {verify: 'yes'}}\n",
     "filtermail.dkim.verify: expected true or false"),
    ("mail_domain: x.org\nfiltermail: {dkim: {sign: {selector: s}}}\n",
     "filtermail.dkim.sign.key_file: required key is missing"),
    ("mail_domain: x.org\ndoveauth: {listen: /run/x.sock}\n",
     "doveauth.listen: expected a Twisted endpoint string"),
    ("doveauth: {}\n", "mail_domain: required key is missing"),
    ("mail_domain: Not_A_Domain\n", "mail_domain: must be a lower-case domain name"),
    ("- a list\n", "(top): expected a mapping"),
    ("mail_domain: [unclosed\n", "line 2"),
])
def test_bad_config_names_file_key_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("text,size", [
    ("500M", 500 << 20), ("1G", 1 << 30), ("200k", 200 << 10), ("31457280", 31457280),
    (1024, 1024), ("2 GiB", 2 << 30),
])
def test_sizes(text, size):
    assert parse_size(text) == size


LEGACY_INI = """\
[params]
mail_domain = chat.example.org
max_user_send_per_minute = 30
max_mailbox_size = 100M
username_min_length = 6
username_max_length = 20
delete_inactive_users_after = 60
passthrough_senders = bot@chat.example.org
passthrough_recipients = @example.net ops@example.com
filtermail_smtp_port = 11080
postfix_reinject_port_incoming = 11026
privacy_mail = privacy@example.org
some_future_key = 1
"""


def test_legacy_ini_keys_move_to_their_daemons_sections(tmp_path):
    c = load_config(write(tmp_path, LEGACY_INI, "chatmail.ini"))
    assert c.mailboxes_dir == "/home/vmail/mail/chat.example.org"
    assert c.filtermail.max_user_send_per_minute == 30
    assert c.max_mailbox_size == 100 << 20
    assert (c.doveauth.username_min_length, c.doveauth.username_max_length) == (6, 20)
    assert c.expire.delete_inactive_users_after == 60
    assert c.filtermail.passthrough_senders == ("bot@chat.example.org",)
    assert c.filtermail.passthrough_recipients == ("@example.net", "ops@example.com")
    assert c.filtermail.outgoing.listen == "tcp:11080:interface=127.0.0.1"
    assert c.filtermail.outgoing.reinject == "tcp:127.0.0.1:10025"
    assert c.filtermail.incoming.reinject == "tcp:127.0.0.1:11026"
    assert c.warnings == ("params.some_future_key: unknown key, ignored",)


@pytest.mark.parametrize("text,message", [
    ("[params]\nmail_domain = x.org\nusername_min_length = many\n",
     "params.username_min_length: expected a whole number"),
    ("[other]\nmail_domain = x.org\n", "params: required section [params] is missing"),
    ("mail_domain = x.org\n", "not a chatmail.ini"),
])
def test_bad_legacy_ini_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text, "chatmail.ini"))


def test_metadata_server_keys_extend_the_defaults_and_null_removes_one(tmp_path):
    c = load_config(write(tmp_path, MINIMAL + "metadata:\n  server_keys:\n"
                          "    irohrelay: {value: 'https://{mail_domain}'}\n"
                          "    appversions: null\n"))
    keys = c.metadata.server_keys
    assert keys["irohrelay"].value == "https://{mail_domain}"
    assert "appversions" not in keys and keys["maxsmtprecipients"].value == "1000"


@pytest.mark.parametrize("entry,message", [
    ("x: {}", "metadata.server_keys.x: needs exactly one of value or file"),
    ("x: {value: '{nope}'}", "metadata.server_keys.x.value: only {mail_domain}"),
    ("x: {file: /f, turn_socket: /s}", "metadata.server_keys.x: turn_socket needs a value"),
    ("Upper: {value: v}", "metadata.server_keys.Upper: names are lower-case"),
])
def test_bad_server_key_names_the_key(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, MINIMAL + f"metadata:\n  server_keys:\n    {entry}\n"))


def test_legacy_ini_iroh_relay_and_turn_socket_become_server_keys(tmp_path):
    c = load_config(write(tmp_path, "[params]\nmail_domain = x.org\n"
                          "iroh_relay = https://iroh.x.org\nturn_socket_path = /run/t.sock\n",
                          "chatmail.ini"))
    keys = c.metadata.server_keys
    assert keys["irohrelay"].value == "https://iroh.x.org"
    assert (keys["turn"].turn_socket, keys["turn"].value) == ("/run/t.sock", "{mail_domain}:3478")


def test_a_legacy_ini_signs_with_the_reference_relays_opendkim_key(tmp_path):
    path = tmp_path / "chatmail.ini"
    path.write_text("[params]\nmail_domain = chat.example.org\n")
    sign = load_config(path).filtermail.dkim.sign
    assert (sign.selector, sign.key_file) == ("opendkim", "/etc/dkimkeys/opendkim.private")


EXAMPLE = Path(__file__).parents[2] / "conf" / "chatmail.yaml"


def schema_keys(cls=None, prefix=""):
    """Every key path of the schema; a section (not an optional one) is walked."""
    from chatmail_services.core.config import Config

    cls = cls or Config
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("path", "warnings"):
            continue
        yield prefix + f.name
        if dataclasses.is_dataclass(hints[f.name]):
            yield from schema_keys(hints[f.name], f"{prefix}{f.name}.")


def documented_keys(data, prefix=""):
    """Every key path the example file shows; server_keys' entries and the
    optional dkim.sign's mapping are values."""
    for name, value in data.items():
        yield prefix + name
        if isinstance(value, dict) and name not in ("server_keys", "sign"):
            yield from documented_keys(value, f"{prefix}{name}.")


def test_every_key_is_documented_in_the_example_config():
    documented = set(documented_keys(yaml.safe_load(EXAMPLE.read_text())))
    assert sorted(set(schema_keys()) - documented) == []
    assert sorted(documented - set(schema_keys())) == []


def test_the_example_config_shows_every_default(tmp_path):
    # both files in one directory: a relative DKIM key_file is relative to the file's
    example = write(tmp_path, EXAMPLE.read_text(), "example.yaml")
    assert load_config(example) == load_config(write(tmp_path, MINIMAL))


@pytest.mark.parametrize("section,key,value,problem", [
    ("doveauth", "threads", 0, "must be between 1 and 64"),
    ("doveauth", "create_threads", 65, "must be between 0 and 64"),
    ("redis", "socket_timeout", 61, "must be more than 0 and at most 60 seconds"),
    ("metadata", "notify_timeout", 0, "must be positive"),
    ("metadata", "max_token_length", 16385, "must be between 1 and 16384"),
    ("metadata", "notify_retry_min", 2000,
     "must be positive and not exceed metadata.notify_retry_max"),
    ("filtermail", "max_user_send_burst_size", 0, "must be positive"),
    ("expire", "delete_large_after", 0, "must be at least 1 (days)"),
])
def test_a_value_outside_its_bound_names_the_key(tmp_path, section, key, value, problem):
    path = write(tmp_path, MINIMAL + f"{section}: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: {section}.{key}: {problem}"


def test_every_declared_ini_name_fills_a_key(tmp_path):
    from chatmail_services.core.legacyini import _DECLARED

    values = {name: "9" for name in _DECLARED}
    values.update(mail_domain="x.org", mailboxes_dir="/srv/mail", iroh_relay="https://i.x.org",
                  turn_socket_path="/run/t.sock", passthrough_senders="a@x.org")
    text = "[params]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    c = load_config(write(tmp_path, text, "chatmail.ini"))
    assert c.warnings == ()
    assert (c.max_message_size, c.max_mailbox_size, c.expire.delete_large_after) == (9, 9, 9)
    assert c.filtermail.incoming == c.filtermail.incoming.__class__(
        "tcp:9:interface=127.0.0.1", "tcp:127.0.0.1:9")


def test_a_legacy_port_that_is_not_a_number_names_the_key(tmp_path):
    text = "[params]\nmail_domain = x.org\nfiltermail_smtp_port = http\n"
    with pytest.raises(ConfigError, match=re.escape("params.filtermail_smtp_port: expected a whole")):
        load_config(write(tmp_path, text, "chatmail.ini"))
