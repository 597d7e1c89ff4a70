"""redis-py 8.1.0 counter workload: prints `ok NAME` / `FAIL NAME detail` lines; usage: PORT."""
import sys
import threading
import time

import redis

from workload_checks import check, finish, guarded

PORT = int(sys.argv[1])


def pool_hammer():
    pool = redis.ConnectionPool(host="127.0.0.1", port=PORT, max_connections=16)
    r = redis.Redis(connection_pool=pool)
    r.delete("py:c0", "py:c1", "py:c2")
    threads, per_thread, errors = 12, 400, []

    def work(t):
        try:
            c = redis.Redis(connection_pool=pool)
            for i in range(per_thread):
                c.incrby("py:c%d" % (i % 3), t + 1)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    total = sum(int(r.get("py:c%d" % k) or 0) for k in range(3))
    expected = sum((t + 1) * per_thread for t in range(threads))
    check("pool-threads-incrby-sum", not errors and total == expected, "got %s want %s errors %s"
          % (total, expected, errors[:2]))


def pipelines():
    r = redis.Redis(host="127.0.0.1", port=PORT)
    r.delete("py:p")
    p = r.pipeline(transaction=True)
    for _ in range(100):
        p.incr("py:p")
    res = p.execute()
    check("pipeline-transaction", res == list(range(1, 101)) and r.get("py:p") == b"100", str(res[-3:]))
    p = r.pipeline(transaction=False)
    p.incrby("py:p", 5).get("py:p").set("py:s", "x").incr("py:s").hset("py:h", "f", 1).hincrby("py:h", "f", 2)
    res = p.execute(raise_on_error=False)
    check("pipeline-plain", res[0] == 105 and res[1] == b"105" and res[2] is True
          and isinstance(res[3], redis.ResponseError) and res[4] == 1 and res[5] == 3, repr(res))
    p = r.pipeline(transaction=True)
    p.incr("py:p").incr("py:s").incr("py:p")
    res = p.execute(raise_on_error=False)
    check("transaction-runtime-error", res[0] == 106 and isinstance(res[1], redis.ResponseError) and res[2] == 107,
          repr(res))


def watch_retry():
    r = redis.Redis(host="127.0.0.1", port=PORT)
    r.set("py:w", 0)
    workers, per_worker, retries, errors = 6, 60, [0], []

    def work():
        try:
            c = redis.Redis(host="127.0.0.1", port=PORT)
            for _ in range(per_worker):
                with c.pipeline() as p:
                    while True:
                        try:
                            p.watch("py:w")
                            v = int(p.get("py:w"))
                            p.multi()
                            p.set("py:w", v + 1)
                            p.execute()
                            break
                        except redis.WatchError:
                            retries[0] += 1
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=work) for _ in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    final = int(r.get("py:w"))
    check("watch-retry-exact", not errors and final == workers * per_worker,
          "final %s want %s errors %s" % (final, workers * per_worker, errors[:2]))
    print("info watch retries %d" % retries[0])


def resp3():
    r = redis.Redis(host="127.0.0.1", port=PORT, protocol=3)
    r.delete("py:r3", "py:h3")
    check("resp3-incr", r.incrby("py:r3", 7) == 7 and r.incrbyfloat("py:r3", 0.5) == 7.5)
    r.hset("py:h3", mapping={"a": 1, "b": 2})
    h = r.hgetall("py:h3")
    check("resp3-hgetall-map", h == {b"a": b"1", b"b": b"2"}, repr(h))
    check("resp3-ping", r.ping() is True)
    check("resp3-get-missing", r.get("py:missing") is None)


def pubsub_workload(protocol):
    """PubSub with get_message, a listener thread, patterns and keyspace notifications."""
    r = redis.Redis(host="127.0.0.1", port=PORT, protocol=protocol)
    tag = "resp%d" % protocol
    p = r.pubsub()
    p.subscribe("py:ch")
    p.psubscribe("py:p:*")
    confirmations = [p.get_message(timeout=2) for _ in range(2)]
    check("pubsub-%s-confirm" % tag, [m and m["type"] for m in confirmations] == ["subscribe", "psubscribe"],
          repr(confirmations))
    check("pubsub-%s-numsub" % tag, r.pubsub_numsub("py:ch") == [(b"py:ch", 1)], repr(r.pubsub_numsub("py:ch")))
    counts = [r.publish("py:ch", "m%d" % i) for i in range(50)] + [r.publish("py:p:x", "pm")]
    check("pubsub-%s-receivers" % tag, counts == [1] * 50 + [1], repr(counts[-3:]))
    got = []
    deadline = time.time() + 5
    while len(got) < 51 and time.time() < deadline:
        m = p.get_message(timeout=1)
        if m:
            got.append((m["type"], m["data"]))
    want = [("message", ("m%d" % i).encode()) for i in range(50)] + [("pmessage", b"pm")]
    check("pubsub-%s-order" % tag, got == want, repr(got[:3]))
    # A listener thread, as Celery and RQ run one.
    p.close()
    received = []
    p = r.pubsub()
    p.subscribe(**{"py:handled": lambda m: received.append(m["data"])})
    t = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        deadline = time.time() + 5
        while r.pubsub_numsub("py:handled")[0][1] != 1 and time.time() < deadline:
            time.sleep(0.01)
        for i in range(20):
            r.publish("py:handled", str(i))
        while len(received) < 20 and time.time() < deadline:
            time.sleep(0.01)
    finally:
        t.stop()
        t.join(timeout=2)
    check("pubsub-%s-thread" % tag, received == [str(i).encode() for i in range(20)], repr(received[:3]))
    # Keyspace notifications for an expiring counter window.
    r.config_set("notify-keyspace-events", "Ex")
    try:
        q = r.pubsub()
        q.psubscribe("__keyevent@0__:expired")
        q.get_message(timeout=2)
        r.set("py:window", 1, px=50)
        event = None
        deadline = time.time() + 5
        while event is None and time.time() < deadline:
            m = q.get_message(timeout=0.5)
            if m and m["type"] == "pmessage":
                event = m
        check("pubsub-%s-expired-event" % tag, event is not None and event["data"] == b"py:window"
              and event["channel"] == b"__keyevent@0__:expired", repr(event))
        q.close()
    finally:
        r.config_set("notify-keyspace-events", "")


def cache_pattern():
    r = redis.Redis(host="127.0.0.1", port=PORT)
    r.set("py:cache:a", "payload", ex=100)
    r.set("py:cache:b", "short", px=300)
    ttl = r.ttl("py:cache:a")
    check("cache-set-ex-ttl", 99 <= ttl <= 100, str(ttl))
    check("cache-get", r.get("py:cache:a") == b"payload")
    time.sleep(0.5)
    check("cache-expired", r.get("py:cache:b") is None and r.exists("py:cache:b") == 0)
    check("cache-del", r.delete("py:cache:a", "py:cache:zz") == 1 and r.get("py:cache:a") is None)
    check("getex-persist", r.set("py:g", 1, ex=50) and r.getex("py:g", persist=True) == b"1"
          and r.ttl("py:g") == -1)


def leaderboard(protocol):
    """A game leaderboard: 8 threads ZINCRBY players' points concurrently; the totals, the top 3 with
    scores (doubles in RESP3), ranks and ZSCORE must be exactly what the increments add up to."""
    pool = redis.ConnectionPool(host="127.0.0.1", port=PORT, max_connections=8, protocol=protocol)
    r = redis.Redis(connection_pool=pool)
    board = "py:board:%d" % protocol
    r.delete(board)
    players = ["alice", "bob", "carol", "dave", "eve"]
    expected = {p: 0.0 for p in players}
    for index in range(8 * 250):
        expected[players[index % 5]] += 0.5 + index % 7
    errors = []

    def work(t):
        try:
            for index in range(t * 250, (t + 1) * 250):
                r.zincrby(board, 0.5 + index % 7, players[index % 5])
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tag = "resp%d" % protocol
    check("leaderboard-%s-no-errors" % tag, not errors, "; ".join(errors[:3]))
    ranking = sorted(expected.items(), key=lambda item: (-item[1], item[0]))
    top = [tuple(pair) for pair in r.zrevrange(board, 0, 2, withscores=True)]  # RESP3: lists
    check("leaderboard-%s-top3" % tag, top == [(name.encode(), score) for name, score in ranking[:3]], repr(top))
    check("leaderboard-%s-rank" % tag, r.zrevrank(board, ranking[0][0]) == 0
          and r.zrank(board, ranking[-1][0]) == 0, repr(ranking))
    check("leaderboard-%s-score" % tag, r.zscore(board, "carol") == expected["carol"], repr(r.zscore(board, "carol")))
    check("leaderboard-%s-card" % tag, r.zcard(board) == 5)


def sliding_window_limiter():
    """The sorted-set sliding-window rate limiter (ZREMRANGEBYSCORE, ZADD, ZCARD, PEXPIRE in one
    MULTI): 6 threads race for a limit of 50 requests per window; exactly 50 are let through."""
    pool = redis.ConnectionPool(host="127.0.0.1", port=PORT, max_connections=6)
    r = redis.Redis(connection_pool=pool)
    key, limit, window_ms = "py:limiter:user42", 50, 60000
    r.delete(key)
    allowed = []
    errors = []

    def attempt(t, n):
        now_ms = int(time.time() * 1000)
        member = "%d-%d-%d" % (now_ms, t, n)
        pipe = r.pipeline(transaction=True)
        pipe.zremrangebyscore(key, 0, now_ms - window_ms)
        pipe.zadd(key, {member: now_ms})
        pipe.zcard(key)
        pipe.pexpire(key, window_ms)
        _, _, count, _ = pipe.execute()
        if count <= limit:
            allowed.append(member)
        else:
            r.zrem(key, member)

    def work(t):
        try:
            for n in range(20):
                attempt(t, n)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("limiter-no-errors", not errors, "; ".join(errors[:3]))
    check("limiter-exactly-limit", len(allowed) == limit, str(len(allowed)))
    check("limiter-window-holds-allowed", r.zcard(key) == limit
          and sorted(m.decode() for m in r.zrange(key, 0, -1)) == sorted(allowed), str(r.zcard(key)))
    check("limiter-ttl", 0 < r.pttl(key) <= window_ms, str(r.pttl(key)))


for name, fn in [("pool", pool_hammer), ("pipelines", pipelines), ("watch", watch_retry), ("resp3", resp3),
                 ("cache", cache_pattern), ("pubsub2", lambda: pubsub_workload(2)),
                 ("pubsub3", lambda: pubsub_workload(3)), ("leaderboard2", lambda: leaderboard(2)),
                 ("leaderboard3", lambda: leaderboard(3)), ("limiter", sliding_window_limiter)]:
    guarded(name, fn)
finish()
