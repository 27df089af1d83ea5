"""`chatmailctl store migrate`: files -> Redis and back, through the console
script, against a real redis-server; exit status 0 only when verified."""

import subprocess
import sys
import time
from pathlib import Path

import yaml

from chatmail_services.core.days import day_of
from chatmail_services.core.store.files import open_files

BIN = Path(sys.executable).parent
DOMAIN = "chat.example.org"
NOW = time.time()
HASH = "{SHA512-CRYPT}$6$s$h"


def write_config(tmp_path, storage="files", **redis_section):
    config = tmp_path / "chatmail.yaml"
    config.write_text(yaml.safe_dump({
        "mail_domain": DOMAIN, "mailboxes_dir": str(tmp_path / "mail"), "storage": storage,
        "redis": redis_section}))
    return str(config)


def chatmailctl(config, *argv):
    return subprocess.run([BIN / "chatmailctl", "--config", config, *argv],
                          capture_output=True, text=True, timeout=60)


def files_relay(tmp_path):
    store = open_files(tmp_path / "mail", DOMAIN)
    addrs = [f"acct{i:05d}@{DOMAIN}" for i in range(20)]
    for i, addr in enumerate(addrs):
        store.transfer.import_account(addr, HASH, day_of(NOW) - i * 86400, i % 2 == 0)
    store.push.add_token(addrs[0], "phone", NOW - 3600, 90 * 86400, 16)
    store.push.add_token(addrs[0], "tablet", NOW - 60, 90 * 86400, 16)
    store.push.enqueue_push(addrs[0], ["phone", "tablet"], NOW - 30, NOW + 3600)
    queue = tmp_path / "mail" / "pending_notifications"  # the reference relay's format
    (queue / ("c" * 32)).write_text(f"{addrs[1]}\n{int(NOW) - 60}\nlegacy-token")
    return store, addrs


def test_files_to_redis_and_back_copies_everything(tmp_path, fresh_redis):
    files, addrs = files_relay(tmp_path)
    config = write_config(tmp_path, key_prefix="mig:")
    done = chatmailctl(config, "store", "migrate", "--to", "redis", "--url", fresh_redis.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok: 20 accounts in source, 20 copied")
    assert "2 live push tokens in source, 2 copied" in done.stdout
    assert "3 pending notifications in source, 3 copied" in done.stdout
    r = fresh_redis.client()
    assert len(r.keys("mig:account:*")) == 20  # the config's redis section applies
    assert r.hlen("mig:notify:items") == 3
    assert "phone" not in done.stdout and "legacy-token" not in done.stdout
    again = chatmailctl(config, "store", "migrate", "--to", "redis", "--url", fresh_redis.url)
    assert again.returncode == 0 and "0 copied, 20 already present" in again.stdout
    assert "3 pending notifications in source, 0 copied" in again.stdout

    # The relay switched to Redis; now back to a fresh files store.
    back = tmp_path / "back"
    back.mkdir()
    config = write_config(back, storage=fresh_redis.url, key_prefix="mig:")
    done = chatmailctl(config, "store", "migrate", "--to", "files")
    assert done.returncode == 0, done.stdout + done.stderr
    copy = open_files(back / "mail", DOMAIN)
    for addr in addrs:
        assert (copy.accounts.get_password(addr), copy.accounts.get_last_login(addr),
                copy.accounts.enforces_e2ee_incoming(addr)) == (
            files.accounts.get_password(addr), files.accounts.get_last_login(addr),
            files.accounts.enforces_e2ee_incoming(addr))
    assert copy.push.get_tokens(addrs[0], NOW, 90 * 86400) == ["tablet", "phone"]
    assert sorted((p.addr, p.queued_at) for p in copy.push.iter_pending_notifications()) == sorted(
        (p.addr, p.queued_at) for p in files.push.iter_pending_notifications())


def test_a_conflict_exits_4_and_names_the_address(tmp_path, fresh_redis):
    _, addrs = files_relay(tmp_path)
    config = write_config(tmp_path)
    r = fresh_redis.client()
    r.hset(f"chatmail:{DOMAIN}:account:{addrs[5]}", "password", "{X}claimed-on-redis")
    done = chatmailctl(config, "store", "migrate", "--to", "redis", "--url", fresh_redis.url)
    assert done.returncode == 4
    assert f"conflict: {addrs[5]}\n" in done.stdout and "INCOMPLETE: " in done.stdout
    assert r.hget(f"chatmail:{DOMAIN}:account:{addrs[5]}", "password") == "{X}claimed-on-redis"


def test_without_a_redis_url_it_exits_2(tmp_path):
    config = write_config(tmp_path)
    done = chatmailctl(config, "store", "migrate", "--to", "redis")
    assert done.returncode == 2 and "give the Redis URL with --url" in done.stderr
    done = chatmailctl(config, "store", "migrate", "--to", "redis", "--url", "http://x")
    assert done.returncode == 2 and "expected redis://" in done.stderr


def test_an_unreachable_redis_exits_3(tmp_path):
    files_relay(tmp_path)
    config = write_config(tmp_path, socket_timeout=0.5)
    done = chatmailctl(config, "store", "migrate", "--to", "redis",
                       "--url", "redis://127.0.0.1:1/0")
    assert done.returncode == 3 and "redis unreachable" in done.stderr
