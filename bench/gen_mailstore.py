"""Generate a chatmail mail store with known ages, for measuring chatmail-expire.

    python3 bench/gen_mailstore.py /tmp/expire-bench --accounts 10000 --messages 1000000

writes <DIR>/mail/<addr>/{password,enforceE2EEincoming,cur/,new/} and
<DIR>/chatmail.yaml. Messages are sparse files (ftruncate): their sizes are
realistic for chat mail (mostly 2-20 kB, 3 % over 200 kB, a few MB) but they
take no disk blocks, only inodes. Ages are spread over 0-40 days, last logins
over 0-120 days, from a fixed seed, relative to --now (default: now), so
runs with the same arguments produce the same tree. Remove it with rm -rf.
"""

import argparse
import os
import random
import time
from pathlib import Path

DAY = 86400
HASH = b"{SHA512-CRYPT}$6$benchsalt$" + b"x" * 86


def message_size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.97:
        return int(rng.lognormvariate(8.8, 0.6))  # median ~6.6 kB
    if roll < 0.995:
        return rng.randint(200_001, 2_000_000)  # images, voice messages
    return rng.randint(2_000_000, 20_000_000)  # videos


def make_account(root: Path, addr: str, last_login: int) -> Path:
    home = root / addr
    for sub in ("cur", "new", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "enforceE2EEincoming").touch()
    password = home / "password"
    password.write_bytes(HASH)
    os.utime(password, (last_login, last_login))
    return home


def make_message(home: Path, rng: random.Random, now: float, n: int) -> None:
    mtime = now - rng.uniform(0, 40) * DAY
    folder = "new" if rng.random() < 0.05 else "cur"
    path = os.path.join(home, folder, f"{int(mtime)}.M{n}P1.bench,S={n}:2,S")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, message_size(rng))
        os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


def generate(base: Path, accounts: int, messages: int, now: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    root = base / "mail" / "chat.example.org"
    root.mkdir(parents=True, exist_ok=True)
    per_account, extra = divmod(messages, accounts)
    n = 0
    for i in range(accounts):
        last_login = int(now - rng.uniform(0, 120) * DAY) // DAY * DAY
        home = make_account(root, f"b{i:08d}@chat.example.org", last_login)
        for _ in range(per_account + (1 if i < extra else 0)):
            make_message(home, rng, now, n)
            n += 1
    (base / "chatmail.yaml").write_text(
        f"mail_domain: chat.example.org\nmailboxes_dir: {root}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--now", type=float, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    generate(args.dir, args.accounts, args.messages,
             time.time() if args.now is None else args.now)
    print(f"generated {args.accounts} accounts, {args.messages} messages in {args.dir} "
          f"({time.monotonic() - started:.0f} s); config: {args.dir}/chatmail.yaml")


if __name__ == "__main__":
    main()
