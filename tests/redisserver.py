"""A real redis-server (Debian's package) on a free loopback port, for tests.

Each server has its own directory and port; nothing of a system Redis is
used or touched. `durable=True` turns on the append-only file with fsync on
every write, so a server killed with SIGKILL and started again keeps its
data, as a production Redis with AOF would. Without redis-server installed
the tests fail (FileNotFoundError), they never skip.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from freeport import free_port  # scripts/


class RedisServer:
    def __init__(self, durable: bool = False, password: str = ""):
        self.dir = Path(tempfile.mkdtemp(prefix="chatmail-redis-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.durable = durable
        self.password = password
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self):
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", str(self.dir), "--save", "", "--logfile", str(self.dir / "redis.log")]
        if self.durable:
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            cmd += ["--appendonly", "no"]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                self.client().ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server not ready after 20s")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None,
                           decode_responses=True, socket_timeout=5)

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crashed host would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """End it for good: its directory goes too, so a clean shutdown would save
        nothing, and redis-server acts on SIGTERM only at its next cron tick
        (up to 0.1 s at the default hz 10)."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
