// Per-thread state, the process-wide state and fork handling: the small C
// runtime the Swift recorder stands on.
#define _GNU_SOURCE
#include "internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// initial-exec: a plain %fs-relative load. The default (global-dynamic) model
// calls __tls_get_addr, which may allocate, i.e. re-enter our malloc hook.
__thread unsigned hs_guard __attribute__((tls_model("initial-exec")));
static __thread hs_thread *hs_thread_state __attribute__((tls_model("initial-exec")));

hs_state hs_global __attribute__((aligned(64)));   // the lock's own cache line: heapscope_hooks.h
static pthread_key_t hs_thread_key;
static pthread_once_t hs_thread_key_once = PTHREAD_ONCE_INIT;

unsigned *hs_guard_ptr(void) { return &hs_guard; }

uint32_t hs_gettid(void) { return (uint32_t)syscall(SYS_gettid); }

void hs_thread_os_name(char *out, size_t cap) {
    char name[17] = {0};
    if (prctl(PR_GET_NAME, name, 0, 0, 0) != 0) name[0] = 0;
    strncpy(out, name, cap - 1);
    out[cap - 1] = 0;
}

// The six frame arrays of `capacity` entries in one block: the pointers
// first (8-byte aligned), then the 32-bit words.
static int hs_thread_set_frames(hs_thread *t, uint32_t capacity) {
    char *block = malloc((size_t)capacity * (2 * sizeof(void *) + 4 * sizeof(uint32_t)));
    if (!block) return 0;
    const void **walk_code = (const void **)block, **cached_code = walk_code + capacity;
    uint32_t *walk_offset = (uint32_t *)(cached_code + capacity);
    uint32_t *cached_offset = walk_offset + capacity, *cached_code_id = cached_offset + capacity;
    uint32_t *cached_frame_id = cached_code_id + capacity;
    if (t->walk_code) {
        // Mid-walk: the walk so far and the whole cache carry over.
        size_t n = t->frame_capacity;
        memcpy(walk_code, t->walk_code, n * sizeof(void *));
        memcpy(cached_code, t->cached_code, n * sizeof(void *));
        memcpy(walk_offset, t->walk_offset, n * sizeof(uint32_t));
        memcpy(cached_offset, t->cached_offset, n * sizeof(uint32_t));
        memcpy(cached_code_id, t->cached_code_id, n * sizeof(uint32_t));
        memcpy(cached_frame_id, t->cached_frame_id, n * sizeof(uint32_t));
        free(t->walk_code);
    }
    t->walk_code = walk_code;
    t->cached_code = cached_code;
    t->walk_offset = walk_offset;
    t->cached_offset = cached_offset;
    t->cached_code_id = cached_code_id;
    t->cached_frame_id = cached_frame_id;
    t->frame_capacity = capacity;
    return 1;
}

// Called from the walk, with HS_IN_RECORD set: our malloc is libc's.
int hs_thread_grow_frames(hs_thread *t) {
    return t->frame_capacity < HS_MAX_FRAMES && hs_thread_set_frames(t, t->frame_capacity * 2);
}

static void hs_thread_destroy(void *p) {
    // Runs at thread exit. A later allocation in this thread's teardown makes
    // a fresh state, which is then leaked: that is rare and small.
    hs_thread_state = NULL;
    free(((hs_thread *)p)->walk_code);
    free(p);
}

static void hs_make_thread_key(void) { pthread_key_create(&hs_thread_key, hs_thread_destroy); }

hs_thread *hs_current_thread(void) {
    hs_thread *t = hs_thread_state;
    if (__builtin_expect(t != NULL, 1)) return t;
    // Our own calls to malloc go straight to libc (this object's GOT is never
    // patched), and the caller holds HS_IN_RECORD, so nothing here is recorded.
    pthread_once(&hs_thread_key_once, hs_make_thread_key);
    size_t pointers = 2 * HS_MAX_NATIVE_FRAMES * sizeof(uintptr_t);
    size_t words = HS_MAX_NATIVE_FRAMES * sizeof(uint32_t);
    t = calloc(1, sizeof(hs_thread) + pointers + words);
    if (!t) return NULL;
    if (!hs_thread_set_frames(t, HS_INITIAL_FRAMES)) {
        free(t);
        return NULL;
    }
    t->native_ip = (uintptr_t *)(t + 1);
    t->cached_native_ip = t->native_ip + HS_MAX_NATIVE_FRAMES;
    t->cached_native_id = (uint32_t *)(t->cached_native_ip + HS_MAX_NATIVE_FRAMES);
    t->os_tid = hs_gettid();
    hs_thread_state = t;
    pthread_setspecific(hs_thread_key, t);
    return t;
}

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
    // A SIGTERM while the child's capture is being opened would find no
    // session to finish: it waits until there is one (signals.c).
    sigset_t fatal, mask;
    sigemptyset(&fatal);
    sigaddset(&fatal, SIGTERM);
    sigaddset(&fatal, SIGINT);
    pthread_sigmask(SIG_BLOCK, &fatal, &mask);
    hs_writer_after_fork();   // the writer thread did not survive the fork
    unsigned saved = hs_guard;
    hs_guard |= HS_IN_RECORD;
    hs_thread *t = hs_current_thread();
    if (t) t->os_tid = hs_gettid();   // the forking thread's state came along with a stale id
    hs_after_fork_child();   // Swift: follow into a new capture, or stop recording
    hs_guard = saved;
    hs_unlock(&hs_global);
    pthread_sigmask(SIG_SETMASK, &mask, NULL);
}

void hs_register_atfork(void) {
    static int registered;
    if (!registered) {
        registered = 1;
        pthread_atfork(hs_prepare_fork, hs_parent_after_fork, hs_child_after_fork);
    }
}
