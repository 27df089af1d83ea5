"""The registration role on Redis: one mode and one set of invites for every host.

    <prefix>registration:mode   STRING  open | invite | closed (absent = open)
    <prefix>invite:<sha256>     HASH    uses, left, created, expires
                                        TTL: expires - created + KEEP_EXPIRED

A use is one Lua script (check expiry, check and decrement `left`), so
concurrent uses on several hosts are counted exactly; like the other
scripts it reads no clock (`now` comes from the caller). The connection
settings (password file, TLS, timeout, key prefix) are the `redis:` section's.
"""

from contextlib import contextmanager
from typing import List

import redis

from .base import StoreError, StoreUnavailable
from .redis import connection_pool, default_prefix, glob_escape
from .registration import (
    ID_LENGTH, KEEP_EXPIRED, Invite, InviteUse, Registration, check_mode,
)

# KEYS: the invite. ARGV: now. Returns ok, unknown, expired or used_up.
USE_INVITE = """
local left = redis.call('HGET', KEYS[1], 'left')
if not left then return 'unknown' end
if tonumber(ARGV[1]) >= tonumber(redis.call('HGET', KEYS[1], 'expires')) then
  return 'expired'
end
if tonumber(left) <= 0 then return 'used_up' end
redis.call('HINCRBY', KEYS[1], 'left', -1)
return 'ok'
"""

# KEYS: the invite. Gives back one use, never more than it had.
RETURN_INVITE = """
local left = redis.call('HGET', KEYS[1], 'left')
if left and tonumber(left) < tonumber(redis.call('HGET', KEYS[1], 'uses')) then
  redis.call('HINCRBY', KEYS[1], 'left', 1)
end
return 0
"""


class RedisRegistration(Registration):
    def __init__(self, client: redis.Redis, prefix: str):
        self.client = client
        self.prefix = prefix
        self._use = client.register_script(USE_INVITE)
        self._return = client.register_script(RETURN_INVITE)

    @classmethod
    def from_config(cls, config) -> "RedisRegistration":
        client = redis.Redis(connection_pool=connection_pool(config))
        return cls(client, config.redis.key_prefix or default_prefix(config.mail_domain))

    @contextmanager
    def _redis(self):
        try:
            yield self.client
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise StoreUnavailable(f"redis unreachable: {e}") from None
        except redis.RedisError as e:
            raise StoreError(f"redis error: {e}") from None

    def _invite_key(self, hashed: str) -> str:
        if len(hashed) != 64 or any(c not in "0123456789abcdef" for c in hashed):
            raise ValueError("not a token hash")
        return f"{self.prefix}invite:{hashed}"

    def get_mode(self) -> str:
        with self._redis() as r:
            mode = r.get(f"{self.prefix}registration:mode")
        if mode is None:
            return "open"
        return mode if mode in ("open", "invite") else "closed"

    def set_mode(self, mode: str) -> None:
        check_mode(mode)
        with self._redis() as r:
            r.set(f"{self.prefix}registration:mode", mode)

    def add_invite(self, hashed: str, uses: int, created: float, expires: float) -> Invite:
        key = self._invite_key(hashed)
        with self._redis() as r:
            pipe = r.pipeline(transaction=True)
            pipe.hset(key, mapping={"uses": uses, "left": uses, "created": repr(created),
                                    "expires": repr(expires)})
            # relative to `created` (the caller's clock), as the module says
            pipe.expire(key, int(expires - created + KEEP_EXPIRED) + 1)
            pipe.execute()
        return Invite(hashed[:ID_LENGTH], uses, uses, created, expires)

    def list_invites(self, now: float) -> List[Invite]:
        cut = len(self.prefix) + len("invite:")
        found = {}
        with self._redis() as r:
            for key in r.scan_iter(match=glob_escape(f"{self.prefix}invite:") + "*",
                                   count=1000):
                record = r.hgetall(key)
                if record and now < float(record["expires"]) + KEEP_EXPIRED:
                    found[key] = Invite(key[cut:cut + ID_LENGTH], int(record["uses"]),
                                        int(record["left"]), float(record["created"]),
                                        float(record["expires"]))
        return sorted(found.values(), key=lambda i: i.created)

    def revoke_invite(self, invite_id: str) -> bool:
        if len(invite_id) != ID_LENGTH or any(c not in "0123456789abcdef" for c in invite_id):
            return False
        with self._redis() as r:
            keys = list(r.scan_iter(match=f"{glob_escape(self.prefix)}invite:{invite_id}*",
                                    count=1000))
            return bool(keys) and r.delete(*keys) > 0

    def use_invite(self, hashed: str, now: float) -> InviteUse:
        with self._redis():
            answer = self._use(keys=[self._invite_key(hashed)], args=[repr(float(now))])
        return InviteUse(answer)

    def return_invite(self, hashed: str) -> None:
        with self._redis():
            self._return(keys=[self._invite_key(hashed)])

    def close(self) -> None:
        self.client.connection_pool.disconnect()
