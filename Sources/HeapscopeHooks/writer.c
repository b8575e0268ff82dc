// The chunk queue between the recorder and heapscope's writer thread.
#define _GNU_SOURCE
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t hs_queue_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hs_queue_cond;
static hs_chunk *hs_queue_head, *hs_queue_tail;   // full chunks, oldest first
static hs_chunk *hs_free_chunks;
static pthread_t hs_writer_thread;
static volatile int hs_writer_running;
static unsigned hs_interval_ms;
volatile int hs_writer_exit_status;

hs_chunk *hs_chunk_take(void) {
    pthread_mutex_lock(&hs_queue_mutex);
    hs_chunk *c = hs_free_chunks;
    if (c) hs_free_chunks = c->next;
    pthread_mutex_unlock(&hs_queue_mutex);
    // Our malloc is libc's: this object's GOT is never patched.
    if (!c) c = malloc(sizeof(hs_chunk) + HS_CHUNK_SIZE);
    if (c) {
        c->next = NULL;
        c->used = 0;
    }
    return c;
}

hs_chunk *hs_chunk_submit(hs_chunk *full) {
    pthread_mutex_lock(&hs_queue_mutex);
    full->next = NULL;
    if (hs_queue_tail) hs_queue_tail->next = full;
    else hs_queue_head = full;
    hs_queue_tail = full;
    pthread_cond_signal(&hs_queue_cond);
    pthread_mutex_unlock(&hs_queue_mutex);
    return hs_chunk_take();
}

// Called with the mutex held; returns with it held.
static void hs_write_queued(void) {
    while (hs_queue_head) {
        hs_chunk *c = hs_queue_head;
        hs_queue_head = c->next;
        if (!hs_queue_head) hs_queue_tail = NULL;
        pthread_mutex_unlock(&hs_queue_mutex);
        hs_write_chunk(c->data, c->used);
        pthread_mutex_lock(&hs_queue_mutex);
        c->next = hs_free_chunks;
        hs_free_chunks = c;
    }
}

void hs_writer_drain(void) {
    pthread_mutex_lock(&hs_queue_mutex);
    hs_write_queued();
    pthread_mutex_unlock(&hs_queue_mutex);
}

static void hs_deadline_after(struct timespec *t, unsigned ms) {
    clock_gettime(CLOCK_MONOTONIC, t);
    uint64_t ns = (uint64_t)t->tv_nsec + (uint64_t)ms * 1000000u;
    t->tv_sec += (time_t)(ns / 1000000000u);
    t->tv_nsec = (long)(ns % 1000000000u);
}

static int hs_before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int hs_passed(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return !hs_before(&now, deadline);
}

// A signal handler cannot signal a condition variable: the writer looks for
// a pending signal (signals.c) at least this often.
#define HS_SIGNAL_POLL_MS 20

static void *hs_writer_main(void *arg) {
    (void)arg;
    // This thread belongs to heapscope: nothing it allocates is recorded.
    hs_guard = HS_IN_RECORD;
    struct timespec deadline;
    hs_deadline_after(&deadline, hs_interval_ms);
    pthread_mutex_lock(&hs_queue_mutex);
    while (hs_writer_running && !hs_pending_signal && !hs_writer_exit_status) {
        if (!hs_queue_head) {
            struct timespec wake;
            hs_deadline_after(&wake, HS_SIGNAL_POLL_MS);
            pthread_cond_timedwait(&hs_queue_cond, &hs_queue_mutex, hs_before(&deadline, &wake) ? &deadline : &wake);
        }
        hs_write_queued();
        if (hs_writer_running && hs_passed(&deadline)) {
            pthread_mutex_unlock(&hs_queue_mutex);
            hs_snapshot_tick();
            pthread_mutex_lock(&hs_queue_mutex);
            hs_write_queued();
            // Everything up to this snapshot is now decodable from the file:
            // a SIGKILL loses at most one interval.
            pthread_mutex_unlock(&hs_queue_mutex);
            hs_write_sync_point();
            pthread_mutex_lock(&hs_queue_mutex);
            hs_deadline_after(&deadline, hs_interval_ms);
        }
    }
    hs_write_queued();
    pthread_mutex_unlock(&hs_queue_mutex);
    int sig = hs_pending_signal, status = hs_writer_exit_status;
    if (sig || status) {
        hs_finish_from_writer();   // Swift: the last records, then the file is closed
        if (sig) hs_signal_finished(sig);
        else _exit(status);   // libc's: this object's GOT is not patched
    }
    return NULL;
}

int hs_writer_start(unsigned interval_ms) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&hs_queue_cond, &attr);
    pthread_condattr_destroy(&attr);
    hs_interval_ms = interval_ms ? interval_ms : 10;
    hs_writer_running = 1;
    unsigned saved = hs_guard;
    hs_guard |= HS_IN_RECORD;   // the thread's stack and TLS are not the program's
    // The program's signals go to the program's threads (the thread inherits this mask).
    sigset_t all, previous;
    sigfillset(&all);
    int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++) sigdelset(&all, synchronous[i]);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    int rc = pthread_create(&hs_writer_thread, NULL, hs_writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    hs_guard = saved;
    if (rc != 0) hs_writer_running = 0;
    return rc;
}

int hs_writer_is_running(void) { return hs_writer_running; }

void hs_writer_request_exit(int status) {
    pthread_mutex_lock(&hs_queue_mutex);
    hs_writer_exit_status = status;
    pthread_cond_signal(&hs_queue_cond);
    pthread_mutex_unlock(&hs_queue_mutex);
}

void hs_wait_for_writer_exit(void) {
    // Bounded, like a signal's wait: a stuck writer must not hang the program.
    struct timespec ms = {0, 1000000};
    for (int waited = 0; waited < 5000; waited++) nanosleep(&ms, NULL);
    _exit(hs_writer_exit_status);
}

void hs_writer_stop(void) {
    pthread_mutex_lock(&hs_queue_mutex);
    int was_running = hs_writer_running;
    hs_writer_running = 0;
    pthread_cond_signal(&hs_queue_cond);
    pthread_mutex_unlock(&hs_queue_mutex);
    if (was_running) pthread_join(hs_writer_thread, NULL);
}

void hs_writer_after_fork(void) {
    // The queue holds the parent's records, and the thread (maybe holding the
    // mutex) is gone. The chunks are left to leak: a child's few megabytes.
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    hs_queue_mutex = fresh;
    hs_queue_head = hs_queue_tail = NULL;
    hs_writer_running = 0;
    hs_writer_exit_status = 0;
    hs_signals_after_fork();
}
