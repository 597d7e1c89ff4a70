"""Real script users: the `limits` library's Redis rate limiters (fixed window, moving window,
sliding window counter: every strategy runs through EVALSHA with a SCRIPT LOAD fallback) and
redis-py's Lock (acquire/extend/release are scripts), and django-redis's cache, whose incr/decr
are an EVAL of EXISTS + INCRBY. Prints `ok NAME` / `FAIL NAME detail`
lines; usage: PORT."""
import sys
import threading
import time

import redis

from workload_checks import check, finish, guarded

PORT = int(sys.argv[1])


def limiters():
    from limits import RateLimitItemPerMinute, storage, strategies

    store = storage.RedisStorage("redis://127.0.0.1:%d" % PORT)
    client = redis.Redis(port=PORT)
    client.script_flush()  # the first EVALSHA of each script must take the NOSCRIPT fallback
    for name, strategy in [("fixed-window", strategies.FixedWindowRateLimiter),
                           ("moving-window", strategies.MovingWindowRateLimiter),
                           ("sliding-window", strategies.SlidingWindowCounterRateLimiter)]:
        limiter = strategy(store)
        item = RateLimitItemPerMinute(10)
        key = "user-%s" % name
        granted = sum(1 for _ in range(15) if limiter.hit(item, key))
        check("limits-%s-hits" % name, granted == 10, "granted %d of 15 with a limit of 10" % granted)
        check("limits-%s-test" % name, not limiter.test(item, key), "test() after the limit said allowed")
        stats = limiter.get_window_stats(item, key)
        check("limits-%s-remaining" % name, stats.remaining == 0, "remaining %r" % (stats,))
        limiter.clear(item, key)
        check("limits-%s-clear" % name, limiter.hit(item, key), "hit after clear refused")

    # Concurrent hits from threads: exactly the limit gets through.
    limiter = strategies.MovingWindowRateLimiter(store)
    item = RateLimitItemPerMinute(50)
    granted = []

    def work():
        for _ in range(20):
            if limiter.hit(item, "shared"):
                granted.append(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("limits-concurrent-moving-window", len(granted) == 50, "granted %d with a limit of 50" % len(granted))


def locks():
    client = redis.Redis(port=PORT)
    lock = client.lock("resource", timeout=10)
    check("lock-acquire", lock.acquire(blocking=False))
    other = client.lock("resource", timeout=10)
    check("lock-exclusive", not other.acquire(blocking=False))
    check("lock-extend", lock.extend(5))
    ttl = client.pttl("resource")
    check("lock-extend-ttl", 10000 < ttl <= 15000, "pttl %d" % ttl)
    check("lock-reacquire", lock.reacquire())
    lock.release()
    check("lock-release", client.get("resource") is None)
    check("lock-after-release", other.acquire(blocking=False))
    try:
        lock.release()
        check("lock-release-not-owned", False, "releasing a lock owned by another token succeeded")
    except redis.exceptions.LockError:
        check("lock-release-not-owned", True)
    other.release()

    # Many threads increment a plain GET/SET counter under the lock: no lost update.
    client.set("locked-counter", 0)

    def work():
        c = redis.Redis(port=PORT)
        for _ in range(25):
            with c.lock("counter-lock", timeout=5, sleep=0.001):
                value = int(c.get("locked-counter"))
                c.set("locked-counter", value + 1)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("lock-mutual-exclusion", int(client.get("locked-counter")) == 150, client.get("locked-counter"))


def script_objects():
    client = redis.Redis(port=PORT)
    limiter = client.register_script(
        "local current = redis.call('incr', KEYS[1])\n"
        "if current == 1 then redis.call('expire', KEYS[1], ARGV[1]) end\n"
        "return current")
    client.script_flush()
    values = [limiter(keys=["fixed:1"], args=[60]) for _ in range(5)]
    check("register-script-noscript-fallback", values == [1, 2, 3, 4, 5], values)
    check("register-script-ttl", 0 < client.ttl("fixed:1") <= 60)
    pipe = client.pipeline()
    for _ in range(3):
        limiter(keys=["fixed:2"], args=[60], client=pipe)
    check("register-script-pipeline", pipe.execute() == [1, 2, 3])


def django_cache():
    import django
    from django.conf import settings

    settings.configure(CACHES={"default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:%d/2" % PORT,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }})
    django.setup()
    from django.core.cache import cache

    cache.clear()
    cache.set("hits", 10, timeout=60)
    check("django-incr", cache.incr("hits") == 11 and cache.incr("hits", 5) == 16)
    check("django-decr", cache.decr("hits", 6) == 10 and cache.get("hits") == 10)
    check("django-incr-keeps-ttl", 58 <= cache.ttl("hits") <= 60, str(cache.ttl("hits")))
    try:
        cache.incr("missing")
        check("django-incr-missing-raises", False, "no ValueError")
    except ValueError:
        check("django-incr-missing-raises", True)
    cache.set("shared", 0, timeout=None)
    errors = []

    def work():
        try:
            for _ in range(100):
                cache.incr("shared")
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("django-incr-concurrent", not errors and cache.get("shared") == 800,
          "%r %r" % (cache.get("shared"), errors[:2]))
    check("django-get-many", cache.get_many(["hits", "shared", "nope"]) == {"hits": 10, "shared": 800})


guarded("limits", limiters)
guarded("locks", locks)
guarded("script-objects", script_objects)
guarded("django-redis", django_cache)
finish()
