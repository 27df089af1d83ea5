"""Lua scripts of the Redis store: each one runs atomically inside Redis.

A script is registered once per store (`redis.Redis.register_script`) and
called by its SHA1 (EVALSHA); after a Redis restart empties the script cache,
redis-py loads it again on the NOSCRIPT answer, so no daemon needs a restart.

Scripts touch only the keys passed in KEYS (Redis' rule for scripts) and
compute no time themselves: expiry times come from the caller in ARGV, so a
script does the same on a replica or when its effects are replayed.

Another feature adds its script here as one more constant and an entry in
`SCRIPTS` (registered by `RedisConn.__init__`).
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

# -- push tokens and the push queue (keys: see docs/storage.md) ------------------

# KEYS: account hash, tokens hash.
# ARGV: token, now, max_age in seconds (-1 = no limit), max_tokens.
# Returns 0 without an account (nothing is written), else 1. Sets the token,
# drops the expired ones (a future stamp, from a clock stepped back, is fresh)
# and the oldest beyond max_tokens; the hash lives max_age after its newest.
ADD_TOKEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local now, max_age, max_tokens = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local flat = redis.call('HGETALL', KEYS[2])
local live = {}
for i = 1, #flat, 2 do
  local ts = tonumber(flat[i + 1])
  if ts and (max_age < 0 or now - ts < max_age) then
    table.insert(live, {flat[i], ts})
  else
    redis.call('HDEL', KEYS[2], flat[i])
  end
end
table.sort(live, function(a, b) return a[2] > b[2] end)
for i = max_tokens + 1, #live do redis.call('HDEL', KEYS[2], live[i][1]) end
if max_age >= 0 and #live > 0 then
  redis.call('EXPIRE', KEYS[2], math.max(1, math.ceil(live[1][2] + max_age - now)))
end
return 1
"""

# KEYS: account hash, the address's item set, due zset, items hash.
# ARGV: due, then (id, item JSON) pairs. Queues nothing without an account,
# so an account deleted meanwhile gets no notification. Returns how many.
ENQUEUE_PUSH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[3], ARGV[1], ARGV[i])
  redis.call('SADD', KEYS[2], ARGV[i])
end
return math.floor((#ARGV - 1) / 2)
"""

# KEYS: due zset, items hash.  ARGV: now, limit, lease end.
# Returns {earliest due time of the items not claimed now (nil if none),
# id1, json1, id2, json2, ...}: the claimed items are due again at the
# lease end. An id without its item (damaged) is dropped from the zset.
CLAIM_PUSH = """
local ids = {}
if tonumber(ARGV[2]) > 0 then
  ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
end
local after = redis.call('ZRANGE', KEYS[1], #ids, #ids, 'WITHSCORES')
local out = {after[2] or false}
for _, id in ipairs(ids) do
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    table.insert(out, id)
    table.insert(out, data)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: due zset, items hash.  ARGV: id, due, item JSON.
# Returns 0 (and writes nothing) when the item is gone: completed by another
# claimer, or its account deleted. Never brings an item back.
RESCHEDULE_PUSH = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""

# KEYS: account hash, the address's item set, due zset, items hash.
# ARGV: id, due, item JSON. Queues a copy of another store's item (migration)
# unless an item with this id is queued; 1 if queued, 0 if not.
IMPORT_PUSH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[4], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: account hash, last-login record, tokens hash, the address's item set,
# due zset, items hash. Deletes the account and everything of it in one step:
# no notification of it is queued or claimable afterwards. 1 if it existed.
DELETE_ACCOUNT = """
local existed = redis.call('EXISTS', KEYS[1])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('ZREM', KEYS[5], id)
  redis.call('HDEL', KEYS[6], id)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return existed
"""

# -- filtermail's send rate limit (core/gcra.py has the same steps) --------

# KEYS: the sender's bucket.  ARGV: now, interval, tolerance (seconds).
# Returns {1, "0"} when the message is allowed (the TAT moves one interval on
# and the key lives until the bucket is full again, so an idle sender leaves
# no key), {0, "<seconds until retry>"} when refused (nothing is written).
# Numbers leave as strings: Redis would cut a Lua number to an integer.
SEND_RATE = """
local now, interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '') or now
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, string.format('%.6f', tat - now - tolerance)}
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', tat),
           'PX', math.max(1, math.ceil((tat - now) * 1000)))
return {1, '0'}
"""

SCRIPTS = {"create_account": CREATE_ACCOUNT, "set_last_login": SET_LAST_LOGIN,
           "add_token": ADD_TOKEN, "enqueue_push": ENQUEUE_PUSH, "claim_push": CLAIM_PUSH,
           "reschedule_push": RESCHEDULE_PUSH, "import_push": IMPORT_PUSH,
           "delete_account": DELETE_ACCOUNT, "send_rate": SEND_RATE}
