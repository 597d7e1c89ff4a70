// C declarations that Swift's Glibc module does not expose on Linux: epoll, eventfd, TCP options
// and accept4 (which needs _GNU_SOURCE, defined in shims.c).
#ifndef CTALLY_SHIMS_H
#define CTALLY_SHIMS_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC.
int ctally_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length);

/// Bytes the C allocator has handed out and not freed (mallinfo2: in-use + mmapped).
long long ctally_heap_bytes_in_use(void);

/// Bytes the C allocator holds from the system (mallinfo2: arena + mmapped), free chunks included.
long long ctally_heap_bytes_held(void);

/// glibc's malloc_info(3) XML report in a buffer the caller frees; NULL on failure.
char *ctally_malloc_info(size_t *length);

/// malloc_trim(0): hands free heap memory back to the kernel; 1 if any was released.
int ctally_malloc_trim(void);

/// The calling thread's kernel id (gettid(2)), for per-thread scheduling calls.
int ctally_thread_id(void);

/// Shard locks (TallyKeyspace's ShardLock): one 32-bit word each, 0 free, 1 held, 2 held with
/// a thread possibly asleep on it in futex(2) (Drepper, "Futexes Are Tricky", mutex 2). The
/// uncontended lock and unlock are one atomic instruction each, inlined into Swift; only a
/// contended lock or an unlock with a sleeper calls into shims.c.
#include <stdint.h>

/// Sleeps (or spins briefly) until the lock word is taken by the caller; marks it contended.
void ctally_lock_wait(uint32_t *word);

/// Wakes one thread asleep on the lock word.
void ctally_lock_wake(uint32_t *word);

/// Takes the lock word if it is free; 1 on success (acquire ordering).
static inline int ctally_lock_try(uint32_t *word) {
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(word, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/// Takes the lock word, waiting for it when held.
static inline void ctally_lock(uint32_t *word) {
    if (!ctally_lock_try(word)) ctally_lock_wait(word);
}

/// Frees the lock word (release ordering), waking a sleeper if one may wait.
static inline void ctally_unlock(uint32_t *word) {
    if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) == 2) ctally_lock_wake(word);
}

#endif
