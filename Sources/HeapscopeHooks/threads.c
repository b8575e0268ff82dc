// Per-thread state, the process-wide state, the snapshot thread and fork
// handling: the small C runtime the Swift recorder stands on.
#define _GNU_SOURCE
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// initial-exec: a plain %fs-relative load. The default (global-dynamic) model
// calls __tls_get_addr, which may allocate, i.e. re-enter our malloc hook.
__thread unsigned hs_guard __attribute__((tls_model("initial-exec")));
static __thread hs_thread *hs_thread_state __attribute__((tls_model("initial-exec")));

hs_state hs_global;
static pthread_key_t hs_thread_key;
static pthread_once_t hs_thread_key_once = PTHREAD_ONCE_INIT;

hs_state *hs_state_ptr(void) { return &hs_global; }
unsigned *hs_guard_ptr(void) { return &hs_guard; }

uint32_t hs_gettid(void) { return (uint32_t)syscall(SYS_gettid); }

void hs_thread_os_name(char *out, size_t cap) {
    char name[17] = {0};
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0) name[0] = 0;
    strncpy(out, name, cap - 1);
    out[cap - 1] = 0;
}

static void hs_thread_destroy(void *p) {
    // Runs at thread exit. A later allocation in this thread's teardown makes
    // a fresh state, which is then leaked: that is rare and small.
    hs_thread_state = NULL;
    free(p);
}

static void hs_make_thread_key(void) { pthread_key_create(&hs_thread_key, hs_thread_destroy); }

hs_thread *hs_current_thread(void) {
    hs_thread *t = hs_thread_state;
    if (__builtin_expect(t != NULL, 1)) return t;
    // Our own calls to malloc go straight to libc (this object's GOT is never
    // patched), and the caller holds HS_IN_RECORD, so nothing here is recorded.
    pthread_once(&hs_thread_key_once, hs_make_thread_key);
    size_t pointers = 2 * HS_MAX_FRAMES * sizeof(void *) + 2 * HS_MAX_NATIVE_FRAMES * sizeof(uintptr_t);
    size_t words = 4 * HS_MAX_FRAMES * sizeof(uint32_t) + HS_MAX_NATIVE_FRAMES * sizeof(uint32_t);
    t = calloc(1, sizeof(hs_thread) + pointers + words);
    if (!t) return NULL;
    char *storage = (char *)(t + 1);
    t->walk_code = (const void **)storage;
    t->cached_code = t->walk_code + HS_MAX_FRAMES;
    t->native_ip = (uintptr_t *)(t->cached_code + HS_MAX_FRAMES);
    t->cached_native_ip = t->native_ip + HS_MAX_NATIVE_FRAMES;
    t->walk_offset = (uint32_t *)(storage + pointers);
    t->cached_offset = t->walk_offset + HS_MAX_FRAMES;
    t->cached_code_id = t->cached_offset + HS_MAX_FRAMES;
    t->cached_frame_id = t->cached_code_id + HS_MAX_FRAMES;
    t->cached_native_id = t->cached_frame_id + HS_MAX_FRAMES;
    t->os_tid = hs_gettid();
    hs_thread_state = t;
    pthread_setspecific(hs_thread_key, t);
    return t;
}

// ---- Snapshot thread ----------------------------------------------------------

static pthread_t hs_snapshot_thread;
static int hs_snapshot_running;
static unsigned hs_snapshot_interval_ms;
static pthread_mutex_t hs_snapshot_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hs_snapshot_cond;

static void *hs_snapshot_main(void *arg) {
    (void)arg;
    // This thread belongs to heapscope: nothing it allocates is recorded.
    hs_guard = HS_IN_RECORD;
    pthread_mutex_lock(&hs_snapshot_mutex);
    while (hs_snapshot_running) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        uint64_t ns = (uint64_t)deadline.tv_nsec + (uint64_t)hs_snapshot_interval_ms * 1000000u;
        deadline.tv_sec += (time_t)(ns / 1000000000u);
        deadline.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&hs_snapshot_cond, &hs_snapshot_mutex, &deadline);
        if (!hs_snapshot_running) break;
        pthread_mutex_unlock(&hs_snapshot_mutex);
        hs_snapshot_tick();
        pthread_mutex_lock(&hs_snapshot_mutex);
    }
    pthread_mutex_unlock(&hs_snapshot_mutex);
    return NULL;
}

int hs_snapshot_thread_start(unsigned interval_ms) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&hs_snapshot_cond, &attr);
    pthread_condattr_destroy(&attr);
    hs_snapshot_interval_ms = interval_ms ? interval_ms : 10;
    hs_snapshot_running = 1;
    unsigned saved = hs_guard;
    hs_guard |= HS_IN_RECORD;   // the thread's stack and TLS are not the program's
    int rc = pthread_create(&hs_snapshot_thread, NULL, hs_snapshot_main, NULL);
    hs_guard = saved;
    if (rc != 0) hs_snapshot_running = 0;
    return rc;
}

void hs_snapshot_thread_stop(void) {
    pthread_mutex_lock(&hs_snapshot_mutex);
    int was_running = hs_snapshot_running;
    hs_snapshot_running = 0;
    pthread_cond_signal(&hs_snapshot_cond);
    pthread_mutex_unlock(&hs_snapshot_mutex);
    if (was_running) pthread_join(hs_snapshot_thread, NULL);
}

static pthread_mutex_t hs_file_mutex = PTHREAD_MUTEX_INITIALIZER;
void hs_file_lock(void) { pthread_mutex_lock(&hs_file_mutex); }
void hs_file_unlock(void) { pthread_mutex_unlock(&hs_file_mutex); }

// ---- fork -------------------------------------------------------------------------
// The lock is held across fork() so the child never inherits a half-written
// record or a locked spinlock with no owner.

static void hs_prepare_fork(void) {
    if (hs_global.tracking) hs_lock(&hs_global);
}

static void hs_parent_after_fork(void) {
    if (hs_global.tracking) hs_unlock(&hs_global);
}

static void hs_child_after_fork(void) {
    if (!hs_global.tracking) return;
    // The snapshot thread did not survive the fork; its mutex may be held.
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    hs_snapshot_mutex = fresh;
    hs_file_mutex = fresh;   // it may have been mid-write
    hs_snapshot_running = 0;
    unsigned saved = hs_guard;
    hs_guard |= HS_IN_RECORD;
    hs_thread *t = hs_current_thread();
    if (t) t->os_tid = hs_gettid();   // the forking thread's state came along with a stale id
    hs_after_fork_child();   // Swift: follow into a new capture, or stop recording
    hs_guard = saved;
    hs_unlock(&hs_global);
}

void hs_register_atfork(void) {
    static int registered;
    if (!registered) {
        registered = 1;
        pthread_atfork(hs_prepare_fork, hs_parent_after_fork, hs_child_after_fork);
    }
}
