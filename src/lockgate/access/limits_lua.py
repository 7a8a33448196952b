"""The Lua scripts of `RedisLimiter`. Redis runs a script atomically, so a reservation
checks and counts every limit of every scope without another client in between.

Keys per scope, in this order (all share the `{prefix}` hash tag, so one script's keys
live in one Redis Cluster slot):
    m:<kind>:<id>:<minute>      hash {r: requests, t: tokens} of the current minute
    m:<kind>:<id>:<minute - 1>  the same of the previous minute
    c:<kind>:<id>               sorted set of concurrency slots, scored by expiry (ms)
    d:<kind>:<id>:<YYYY-MM-DD>  micro-dollars spent that UTC day
    M:<kind>:<id>:<YYYY-MM>     micro-dollars spent that UTC month

The comparisons are the same floating-point arithmetic as
`lockgate.access.limits._Counts.denials`, so both backends decide alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["KEYS_PER_SCOPE", "LIMITS_PER_SCOPE", "RESERVE", "SETTLE", "Script"]

KEYS_PER_SCOPE = 5
LIMITS_PER_SCOPE = 5  # rpm, tpm, max_concurrent, day and month budget; -1: unlimited


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> Script:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


# ARGV: now_ms, weight, tokens, cost (micro-USD), slot id, slot expiry (ms), slot key
# ttl (ms), minute key ttl (ms), day key ttl (ms), month key ttl (ms), then five limits
# per scope. Counts are added from the ARGV strings: Lua would print a large number
# in exponent notation. Returns {} when admitted; otherwise, for each limit that does not fit,
# four integers: scope index (0-based), check (1 rpm, 2 tpm, 3 concurrent, 4 day,
# 5 month), previous-minute count and current count.
RESERVE = Script.of(
    """
local now = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local scopes = #KEYS / 5
local denied = {}
local function deny(s, check, previous, used)
  denied[#denied + 1] = s
  denied[#denied + 1] = check
  denied[#denied + 1] = previous
  denied[#denied + 1] = used
end
for s = 0, scopes - 1 do
  local k = s * 5
  local a = 10 + s * 5
  local rpm, tpm = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local conc = tonumber(ARGV[a + 3])
  local day, month = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local cur = redis.call('HMGET', KEYS[k + 1], 'r', 't')
  local prev = redis.call('HMGET', KEYS[k + 2], 'r', 't')
  local cr, ct = tonumber(cur[1]) or 0, tonumber(cur[2]) or 0
  local pr, pt = tonumber(prev[1]) or 0, tonumber(prev[2]) or 0
  if rpm >= 0 and pr * weight + cr + 1 > rpm then deny(s, 1, pr, cr) end
  if tpm >= 0 and pt * weight + ct + tokens > tpm then deny(s, 2, pt, ct) end
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now)
  local slots = redis.call('ZCARD', KEYS[k + 3])
  if conc >= 0 and slots + 1 > conc then deny(s, 3, 0, slots) end
  local spent_day = tonumber(redis.call('GET', KEYS[k + 4])) or 0
  if day >= 0 and spent_day + cost > day then deny(s, 4, 0, spent_day) end
  local spent_month = tonumber(redis.call('GET', KEYS[k + 5])) or 0
  if month >= 0 and spent_month + cost > month then deny(s, 5, 0, spent_month) end
end
if #denied > 0 then
  return denied
end
for s = 0, scopes - 1 do
  local k = s * 5
  redis.call('HINCRBY', KEYS[k + 1], 'r', 1)
  redis.call('HINCRBY', KEYS[k + 1], 't', ARGV[3])
  redis.call('PEXPIRE', KEYS[k + 1], ARGV[8])
  redis.call('ZADD', KEYS[k + 3], ARGV[6], ARGV[5])
  redis.call('PEXPIRE', KEYS[k + 3], ARGV[7])
  redis.call('INCRBY', KEYS[k + 4], ARGV[4])
  redis.call('PEXPIRE', KEYS[k + 4], ARGV[9])
  redis.call('INCRBY', KEYS[k + 5], ARGV[4])
  redis.call('PEXPIRE', KEYS[k + 5], ARGV[10])
end
return {}
"""
)

# Settlements, releases and slot renewals of many reservations in one call.
# ARGV: slot expiry (ms), slot key ttl (ms), then one (op, value) pair per key:
#   t  HINCRBY the minute hash's tokens by value, if the key still exists
#   i  INCRBY a budget counter by value, if the key still exists
#   z  ZREM the slots named in `value` (space-separated)
#   r  renew the slots named in `value` that are still there (ZADD XX), and the key's ttl
# "if the key still exists": an expired window or day is past; adding to it would
# recreate it without a ttl.
SETTLE = Script.of(
    """
for i, key in ipairs(KEYS) do
  local op, value = ARGV[2 * i + 1], ARGV[2 * i + 2]
  if op == 'z' then
    for slot in string.gmatch(value, '%S+') do
      redis.call('ZREM', key, slot)
    end
  elseif op == 'r' then
    for slot in string.gmatch(value, '%S+') do
      redis.call('ZADD', key, 'XX', ARGV[1], slot)
    end
    redis.call('PEXPIRE', key, ARGV[2])
  elseif redis.call('EXISTS', key) == 1 then
    if op == 't' then
      redis.call('HINCRBY', key, 't', value)
    else
      redis.call('INCRBY', key, value)
    end
  end
end
return #KEYS
"""
)
