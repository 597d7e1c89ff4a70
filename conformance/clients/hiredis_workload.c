/* hiredis counter workload: prints "ok NAME" / "FAIL NAME detail"; usage: ./hiredis_workload PORT */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

static void check(const char *name, int cond, const char *detail) {
    if (cond) {
        printf("ok %s\n", name);
    } else {
        failures++;
        printf("FAIL %s %s\n", name, detail ? detail : "");
    }
}

static int int_reply(redisReply *r, long long want) {
    return r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == want;
}

static int str_reply(redisReply *r, const char *want) {
    return r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    redisContext *c = redisConnect("127.0.0.1", atoi(argv[1]));
    if (c == NULL || c->err) {
        printf("FAIL connect %s\n", c ? c->errstr : "alloc");
        return 1;
    }
    redisReply *r = redisCommand(c, "DEL hi:c hi:p hi:m");
    freeReplyObject(r);
    long long last = 0;
    for (int i = 1; i <= 30; i++) {
        r = redisCommand(c, "INCRBY hi:c %d", i);
        if (r && r->type == REDIS_REPLY_INTEGER) last = r->integer;
        freeReplyObject(r);
    }
    check("incrby", last == 465, NULL);
    r = redisCommand(c, "GET hi:c");
    check("get", str_reply(r, "465"), NULL);
    freeReplyObject(r);
    r = redisCommand(c, "DEL hi:c");
    check("del", int_reply(r, 1), NULL);
    freeReplyObject(r);
    /* binary-safe key and value */
    r = redisCommand(c, "SET %b %b", "hi:\0bin", (size_t)7, "\xff\x00v", (size_t)3);
    freeReplyObject(r);
    r = redisCommand(c, "GET %b", "hi:\0bin", (size_t)7);
    check("binary", r && r->type == REDIS_REPLY_STRING && r->len == 3 && memcmp(r->str, "\xff\x00v", 3) == 0, NULL);
    freeReplyObject(r);
    for (int i = 0; i < 500; i++) redisAppendCommand(c, "INCR hi:p");
    int ok = 1;
    for (int i = 0; i < 500; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK) { ok = 0; break; }
        if (!int_reply(r, i + 1)) ok = 0;
        freeReplyObject(r);
    }
    check("pipeline", ok, NULL);
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "INCRBY hi:m 10");
    redisAppendCommand(c, "DECRBY hi:m 3");
    redisAppendCommand(c, "EXEC");
    redisReply *q[4] = {0};
    for (int i = 0; i < 4; i++) redisGetReply(c, (void **)&q[i]);
    check("multi-queued", q[1] && q[1]->type == REDIS_REPLY_STATUS && strcmp(q[1]->str, "QUEUED") == 0, NULL);
    check("multi-exec", q[3] && q[3]->type == REDIS_REPLY_ARRAY && q[3]->elements == 2 &&
          int_reply(q[3]->element[0], 10) && int_reply(q[3]->element[1], 7), NULL);
    for (int i = 0; i < 4; i++) freeReplyObject(q[i]);
    r = redisCommand(c, "INCR hi:m extra");
    check("error-reply", r && r->type == REDIS_REPLY_ERROR &&
          strcmp(r->str, "ERR wrong number of arguments for 'incr' command") == 0, r ? r->str : "null");
    freeReplyObject(r);
    redisFree(c);
    return failures ? 1 : 0;
}
