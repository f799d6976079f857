"""The sending rate, shared by every worker on every machine through Redis.

A token bucket kept in one Redis hash and advanced by a Lua script using
Redis's own clock, so workers with skewed clocks still agree. A worker
reserves tokens for a whole batch and is told how long to wait before
sending it. A provider's 429 sets a pause that every worker honours.
"""

from __future__ import annotations

from django.conf import settings

from dwvlist.redis import SEND_BUCKET, SEND_PAUSE, redis_client

# Reserve `want` tokens; return the seconds to wait before using them.
_RESERVE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or burst)
local stamp = tonumber(redis.call('HGET', KEYS[1], 'stamp') or now)
tokens = math.min(burst, tokens + (now - stamp) * rate)
tokens = tokens - want
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if tokens >= 0 then return '0' end
return tostring(-tokens / rate)
"""


def rate_reserve(*, count: int) -> float:
    """Reserve sending `count` messages; return the seconds to wait first (0 when unlimited)."""
    rate = settings.SEND_RATE_LIMIT
    if rate <= 0 or count <= 0:
        return 0.0
    burst = max(rate, 1.0)
    return float(redis_client().eval(_RESERVE, 1, SEND_BUCKET, rate, burst, count))


def batch_size_for_rate(size: int) -> int:
    """Return a batch size that the rate limit lets go out within about five seconds."""
    rate = settings.SEND_RATE_LIMIT
    if rate <= 0:
        return size
    return max(1, min(size, int(rate * 5)))


def provider_pause(*, seconds: float) -> None:
    """Ask every worker to hold off sending for `seconds` (a provider said 429)."""
    seconds = min(max(seconds, 1.0), 3600.0)
    client = redis_client()
    current = client.pttl(SEND_PAUSE)
    if current is None or current < seconds * 1000:
        client.set(SEND_PAUSE, "1", px=int(seconds * 1000))


def provider_pause_remaining() -> float:
    """Return the seconds left in a provider-requested pause (0 if none)."""
    remaining = redis_client().pttl(SEND_PAUSE)
    return max(0.0, (remaining or 0) / 1000.0)
