"""The rate-limiter backend on Redis: Dramatiq's own, plus reservations and leases in Lua.

Each operation is one Lua script, so it is atomic on the server and reads the server's clock
(``TIME``): workers on hosts whose clocks differ still agree on every slot.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import redis
from dramatiq.rate_limits.backends.redis import RedisBackend as DramatiqRedisBackend

from ..errors import RateLimiterUnavailable
from ..rate_limits import Lease, LimiterBackend, Slot, slots_kept, spacing_ms

#: Redis key prefix of the reservation logs (lists of slots, oldest first).
SLOTS_PREFIX = "geotasks:slots:"
#: Redis key prefix of the concurrency leases (sorted sets of holders scored by expiry).
LEASES_PREFIX = "geotasks:leases:"

_NOW = """
local clock = redis.call("TIME")
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# KEYS[1]: the log. ARGV: limit, period_ms, burst, spacing_ms, keep. Same rule as the Postgres
# statement: the latest of now, the last slot, the burst-th last + spacing, the limit-th last +
# period; the log keeps `keep` slots (or more, if an earlier caller needed more).
_RESERVE = (
    _NOW
    + """
local limit, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local burst, spacing, keep = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local length = redis.call("LLEN", KEYS[1])
local function nth_last_plus(n, plus)
    if n > length then return 0 end
    return tonumber(redis.call("LINDEX", KEYS[1], -n)) + plus
end
local slot = math.max(now, nth_last_plus(1, 0), nth_last_plus(burst, spacing),
                      nth_last_plus(limit, period))
redis.call("RPUSH", KEYS[1], string.format("%.0f", slot))
redis.call("LTRIM", KEYS[1], -math.max(keep, length), -1)
local ttl = slot + period - now
if redis.call("PTTL", KEYS[1]) < ttl then
    redis.call("PEXPIRE", KEYS[1], ttl)
end
return {slot, now}
"""
)

_EXPIRE_WITH_LAST_LEASE = """
local last = redis.call("ZRANGE", KEYS[1], -1, -1, "WITHSCORES")
if last[2] then
    redis.call("PEXPIRE", KEYS[1], math.max(1, tonumber(last[2]) - now))
end
"""

# KEYS[1]: the leases. ARGV: holder, limit, ttl_ms.
_ACQUIRE = (
    _NOW
    + """
redis.call("ZREMRANGEBYSCORE", KEYS[1], "-inf", now)
local others = redis.call("ZCARD", KEYS[1])
if redis.call("ZSCORE", KEYS[1], ARGV[1]) then
    others = others - 1
end
if others >= tonumber(ARGV[2]) then
    return 0
end
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
"""
    + _EXPIRE_WITH_LAST_LEASE
    + "return 1"
)

# KEYS[1]: the leases. ARGV: holder, ttl_ms. Only a lease that is still live is renewed.
_RENEW = (
    _NOW
    + """
local expiry = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
    return 0
end
redis.call("ZADD", KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
"""
    + _EXPIRE_WITH_LAST_LEASE
    + "return 1"
)

_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class RedisBackend(DramatiqRedisBackend, LimiterBackend):
    """Dramatiq's Redis rate-limiter backend with geotasks' reservations and leases.

    Parameters:
      client: A Redis client; when given, ``url`` and ``parameters`` are ignored.
      url: A ``redis://`` URL.
      **parameters: Passed to :class:`redis.Redis`.
    """

    def __init__(
        self, *, client: redis.Redis | None = None, url: str | None = None, **parameters: Any
    ) -> None:
        if client is None:
            client = redis.Redis.from_url(url, **parameters) if url else redis.Redis(**parameters)
        self.client: redis.Redis = client
        self._reserve = self.client.register_script(_RESERVE)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._renew = self.client.register_script(_RENEW)

    def reserve(self, key: str, limit: int, period_ms: int, *, burst: int = 1) -> Slot:
        """Reserve the next start slot under ``key`` in one script (see the base class)."""
        args = [limit, period_ms, burst, spacing_ms(limit, period_ms, burst)]
        try:
            start_ms, now_ms = cast(
                list[int],
                self._reserve([SLOTS_PREFIX + key], [*args, slots_kept(limit, burst)]),
            )
        except _UNREACHABLE as exc:
            raise RateLimiterUnavailable(f"cannot reach Redis to reserve a slot: {exc}") from exc
        return Slot(int(start_ms), int(now_ms))

    def now_ms(self) -> int:
        """Return the Redis server's clock in epoch milliseconds."""
        try:
            seconds, microseconds = self.client.time()
        except _UNREACHABLE as exc:
            raise RateLimiterUnavailable(f"cannot reach Redis to read its clock: {exc}") from exc
        return seconds * 1000 + microseconds // 1000

    def acquire_lease(self, key: str, holder: str, limit: int, ttl_ms: int) -> bool:
        """Take a concurrency slot under ``key`` for ``holder`` (see the base class)."""
        try:
            return bool(self._acquire([LEASES_PREFIX + key], [holder, limit, ttl_ms]))
        except _UNREACHABLE as exc:
            raise RateLimiterUnavailable(f"cannot reach Redis to take a slot: {exc}") from exc

    def release_lease(self, key: str, holder: str) -> None:
        """Give back ``holder``'s slot under ``key``."""
        try:
            self.client.zrem(LEASES_PREFIX + key, holder)
        except _UNREACHABLE as exc:
            raise RateLimiterUnavailable(f"cannot reach Redis to free a slot: {exc}") from exc

    def renew_leases(self, leases: Collection[Lease], ttl_ms: int) -> set[Lease]:
        """Extend live leases by ``ttl_ms``; return those that had expired."""
        wanted = list(set(leases))
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for key, holder in wanted:
                    self._renew([LEASES_PREFIX + key], [holder, ttl_ms], client=pipe)
                renewed = pipe.execute()
        except _UNREACHABLE as exc:
            raise RateLimiterUnavailable(f"cannot reach Redis to renew slots: {exc}") from exc
        return {lease for lease, ok in zip(wanted, renewed, strict=True) if not ok}
