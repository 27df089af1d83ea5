"""chatmailctl setup's pure parts: snippet parsing, rendering, release choice, backups.

The whole command runs on a real stock tree in tests/integration/test_setup_tree.py.
"""

import grp
import os
import pwd
import subprocess
from types import SimpleNamespace

import pytest

from chatmail_services.ctl.setup import reload_commands
from chatmail_services.ctl.setupcompose import (
    SetupError,
    dovecot_release,
    parse_main_cf,
    parse_master_cf,
    render,
    target_path,
)
from chatmail_services.ctl.dns import txt
from chatmail_services.ctl.setupstate import Tree, Wanted

ME = dict(owner=pwd.getpwuid(os.getuid()).pw_name, group=grp.getgrgid(os.getgid()).gr_name)


def test_main_cf_snippet_is_read_as_parameters_with_continuations():
    text = "# comment\n\nmydestination =\nsmtpd_x = a,\n    b\nmyorigin = @x@\n"
    assert parse_main_cf(text) == [("mydestination", ""), ("smtpd_x", "a, b"),
                                   ("myorigin", "@x@")]


def test_main_cf_snippet_with_an_unreadable_line_is_refused():
    with pytest.raises(SetupError, match="cannot read 'what is this'"):
        parse_main_cf("what is this\n")


def test_master_cf_snippet_is_read_as_services_with_their_options():
    text = ("# c\nsmtp  inet  n  -  n  -  -  smtpd\n  -o a=b\n  -o c=\n"
            "127.0.0.1:10025 inet n - n - - smtpd\n")
    assert parse_master_cf(text) == [
        ("smtp/inet", "smtp inet n - n - - smtpd", ["a=b", "c="]),
        ("127.0.0.1:10025/inet", "127.0.0.1:10025 inet n - n - - smtpd", []),
    ]


def test_master_cf_argument_lines_other_than_o_are_refused():
    with pytest.raises(SetupError, match="cannot read"):
        parse_master_cf("pipe unix - n n - - pipe\n  flags=R user=x\n")


def test_placeholders_are_filled_and_an_unknown_one_is_an_error(tmp_path):
    snippet = tmp_path / "x.conf"
    snippet.write_text("a = @one@\nauth_username_chars = ab@\n")
    assert render(snippet, {"one": "1"}) == "a = 1\nauth_username_chars = ab@\n"
    snippet.write_text("a = @two@\n")
    with pytest.raises(SetupError, match="unknown placeholder @two@"):
        render(snippet, {"one": "1"})


def fake_version(text):
    return lambda *a, **k: SimpleNamespace(stdout=text)


def test_the_dovecot_release_picks_the_snippet_set():
    assert dovecot_release(fake_version("2.3.19.1 (9b53102964)\n"))[1].snippets == "dovecot"
    assert dovecot_release(fake_version("2.4.1-4 (7d8c0e5759)\n"))[1].snippets == "dovecot24"
    with pytest.raises(SetupError, match="Dovecot 2.2 is not supported"):
        dovecot_release(fake_version("2.2.36 (1f10bfa63)\n"))


def test_a_missing_dovecot_is_a_clear_error():
    def missing(*a, **k):
        raise subprocess.CalledProcessError(127, "dovecot")

    with pytest.raises(SetupError, match="is dovecot-core installed"):
        dovecot_release(missing)


def test_paths_are_named_as_the_set_up_system_sees_them():
    assert target_path("/", "/etc/chatmail/chatmail.yaml") == "/etc/chatmail/chatmail.yaml"
    assert target_path("/mnt/img", "/mnt/img/etc/chatmail/c.yaml") == "/etc/chatmail/c.yaml"
    assert target_path("/mnt/img", "/srv/c.yaml") == "/srv/c.yaml"


def test_long_txt_values_are_split_into_255_character_strings():
    assert txt("a" * 300) == f'"{"a" * 255}" "{"a" * 45}"'


def test_only_what_changed_is_reloaded():
    assert reload_commands(["etc/dovecot/conf.d/92-chatmail-server.conf"]) == [
        ["systemctl", "reload-or-restart", "dovecot"]]
    assert reload_commands(["etc/systemd/system/postfix@-.service.d/50-chatmail.conf",
                            "etc/postfix/main.cf"]) == [
        ["systemctl", "daemon-reload"], ["systemctl", "restart", "postfix"]]


def test_tree_keeps_the_first_original_and_undo_restores_it(tmp_path):
    tree = Tree(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/a.conf").write_text("stock\n")
    tree.apply([Wanted("etc/a.conf", b"ours\n", **ME), Wanted("etc/new.d/b.conf", b"b\n", **ME)])
    tree.apply([Wanted("etc/a.conf", b"ours again\n", **ME)])
    assert (tmp_path / "etc/a.conf").read_text() == "ours again\n"
    assert tree.undo() == ["etc/a.conf", "etc/new.d/b.conf"]
    assert (tmp_path / "etc/a.conf").read_text() == "stock\n"
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["a.conf"]
    assert tree.undo() == []


def test_a_file_differs_by_content_mode_or_owner(tmp_path):
    tree = Tree(tmp_path)
    wanted = Wanted("f", b"x", mode=0o640, **ME)
    assert tree.differs(wanted)
    tree.apply([wanted])
    assert not tree.differs(wanted)
    os.chmod(tmp_path / "f", 0o644)
    assert tree.differs(wanted)
