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

#endif
