// accept4 is only declared under _GNU_SOURCE, which must be set before any system header.
#define _GNU_SOURCE
#include <sys/socket.h>
#include <malloc.h>
#include "CTallyShims.h"

int ctally_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length) {
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

long long ctally_heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (long long)(info.uordblks + info.hblkhd);
}
