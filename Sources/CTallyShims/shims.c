// accept4 is only declared under _GNU_SOURCE, which must be set before any system header.
#define _GNU_SOURCE
#include <sys/socket.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include "CTallyShims.h"

int ctally_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length) {
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

long long ctally_heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (long long)(info.uordblks + info.hblkhd);
}

long long ctally_heap_bytes_held(void) {
    struct mallinfo2 info = mallinfo2();
    return (long long)(info.arena + info.hblkhd);
}

char *ctally_malloc_info(size_t *length) {
    char *buffer = NULL;
    FILE *stream = open_memstream(&buffer, length);
    if (stream == NULL) return NULL;
    int failed = malloc_info(0, stream);
    fclose(stream);
    if (failed != 0) {
        free(buffer);
        return NULL;
    }
    return buffer;
}

int ctally_malloc_trim(void) {
    return malloc_trim(0);
}

int ctally_thread_id(void) {
    return (int)gettid();
}

void ctally_lock_wait(uint32_t *word) {
    // A shard is held for one command: a short spin usually outlasts the holder without a
    // system call. Then the word is marked contended (2) and the caller sleeps until the
    // holder's unlock sees the mark and wakes one sleeper, which marks it contended again.
    for (int spin = 0; spin < 16; spin++) {
        if (__atomic_load_n(word, __ATOMIC_RELAXED) == 0 && ctally_lock_try(word)) return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
    }
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0) {
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
    }
}

void ctally_lock_wake(uint32_t *word) {
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
