// accept4 is only declared under _GNU_SOURCE, which must be set before any system header.
#define _GNU_SOURCE
#include <sys/socket.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
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
