"""Lua scripts of the Redis store: each one runs atomically inside Redis.

A script is registered once per store (`redis.Redis.register_script`) and
called by its SHA1 (EVALSHA); after a Redis restart empties the script cache,
redis-py loads it again on the NOSCRIPT answer, so no daemon needs a restart.

Scripts touch only the keys passed in KEYS (Redis' rule for scripts) and
compute no time themselves: expiry times come from the caller in ARGV, so a
script does the same on a replica or when its effects are replayed.

Another feature adds its script here as one more constant and registers it in
`RedisStore.__init__` (see `SCRIPTS`); the GCRA rate limit and the
notification queue are meant to land this way.
"""

# KEYS: account hash, last-login record.
# ARGV: password hash, last-login day, last-login expiry (unix time), "1" = enforce E2EE.
# Returns {1, hash} when created, {0, stored hash} when the account existed,
# {-1, ""} when the account key exists without a password (damaged).
# The flag and the password are written by one HSET: the flag is never later.
CREATE_ACCOUNT = """
local stored = redis.call('HGET', KEYS[1], 'password')
if stored then return {0, stored} end
if redis.call('EXISTS', KEYS[1]) == 1 then return {-1, ''} end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'enforceE2EEincoming', '1', 'password', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'password', ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('EXPIREAT', KEYS[2], ARGV[3])
return {1, ARGV[1]}
"""

# KEYS: account hash, last-login record.  ARGV: day, expiry (unix time).
# Returns 0 without an account (nothing is written), else 1; writes only
# when the day changed, so a day's many logins cost one write.
SET_LAST_LOGIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1])
  redis.call('EXPIREAT', KEYS[2], ARGV[2])
end
return 1
"""

SCRIPTS = {"create_account": CREATE_ACCOUNT, "set_last_login": SET_LAST_LOGIN}
