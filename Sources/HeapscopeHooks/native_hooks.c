// Replacements for the libc allocation functions, installed into other
// objects' GOT slots (got.c). Each calls the real function (this object's own
// GOT is never patched, so `malloc` here is libc's) and records the result
// when the guard allows. Frees are recorded *before* the block is released:
// once released, another thread may be handed the same address, and its
// ALLOC must not land in the stream ahead of our FREE.
#define _GNU_SOURCE
#include "internal.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HS_KIND_MALLOC 0
#define HS_KIND_CALLOC 1
#define HS_KIND_REALLOC 2
#define HS_KIND_POSIX_MEMALIGN 3
#define HS_KIND_ALIGNED_ALLOC 4
#define HS_KIND_MEMALIGN 5
#define HS_KIND_VALLOC 6
#define HS_KIND_PVALLOC 7
#define HS_KIND_MMAP 8

// Recording is allowed when no hook of ours is active on this thread.
#define HS_MAY_RECORD() (__builtin_expect(hs_guard == 0, 1) && hs_global.tracking)

void hs_on_alloc(uint8_t kind, void *p, size_t size, int which) {
    unsigned saved = hs_guard;
    hs_guard = saved | HS_IN_RECORD;
    hs_thread *t = hs_current_thread();
    if (t) {
        hs_walk_python_stack(t, which);
        if (hs_global.native) hs_walk_native_stack(t);
        hs_record_alloc(t, kind, (uintptr_t)p, size);
        if (__builtin_expect(hs_writer_exit_status != 0, 0)) hs_wait_for_writer_exit();
    }
    hs_guard = saved;
}

void hs_on_free(uint8_t kind, void *p, int which) {
    (void)which;   // frees carry no stack
    unsigned saved = hs_guard;
    hs_guard = saved | HS_IN_RECORD;
    hs_thread *t = hs_current_thread();
    if (t) hs_record_free(t, kind, (uintptr_t)p);
    hs_guard = saved;
}

void *hs_malloc(size_t size) {
    void *p = malloc(size);
    if (p && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_MALLOC, p, size, HS_STACK_OWN_THREAD);
    return p;
}

void hs_free(void *p) {
    if (p && HS_MAY_RECORD()) hs_on_free(HS_KIND_MALLOC, p, HS_STACK_OWN_THREAD);
    free(p);
}

void *hs_calloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (p && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_CALLOC, p, n * size, HS_STACK_OWN_THREAD);
    return p;
}

void *hs_realloc(void *old, size_t size) {
    int record = HS_MAY_RECORD();
    size_t old_size = 0;
    if (record && old) {
        old_size = malloc_usable_size(old);
        hs_on_free(HS_KIND_REALLOC, old, HS_STACK_OWN_THREAD);
    }
    void *p = realloc(old, size);
    if (record) {
        if (p) hs_on_alloc(HS_KIND_REALLOC, p, size, HS_STACK_OWN_THREAD);
        else if (old && size != 0) hs_on_alloc(HS_KIND_REALLOC, old, old_size, HS_STACK_OWN_THREAD);  // failed: old block lives on
    }
    return p;
}

int hs_posix_memalign(void **out, size_t alignment, size_t size) {
    int rc = posix_memalign(out, alignment, size);
    if (rc == 0 && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_POSIX_MEMALIGN, *out, size, HS_STACK_OWN_THREAD);
    return rc;
}

void *hs_aligned_alloc(size_t alignment, size_t size) {
    void *p = aligned_alloc(alignment, size);
    if (p && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_ALIGNED_ALLOC, p, size, HS_STACK_OWN_THREAD);
    return p;
}

void *hs_memalign(size_t alignment, size_t size) {
    void *p = memalign(alignment, size);
    if (p && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_MEMALIGN, p, size, HS_STACK_OWN_THREAD);
    return p;
}

void *hs_valloc(size_t size) {
    void *p = valloc(size);
    if (p && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_VALLOC, p, size, HS_STACK_OWN_THREAD);
    return p;
}

void *hs_pvalloc(size_t size) {
    void *p = pvalloc(size);
    if (p && HS_MAY_RECORD()) {
        size_t page = 4096;
        hs_on_alloc(HS_KIND_PVALLOC, p, (size + page - 1) & ~(page - 1), HS_STACK_OWN_THREAD);
    }
    return p;
}

void *hs_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset) {
    void *p = mmap(addr, length, prot, flags, fd, offset);
    if (p != MAP_FAILED && HS_MAY_RECORD()) hs_on_alloc(HS_KIND_MMAP, p, length, HS_STACK_OWN_THREAD);
    return p;
}

int hs_munmap(void *addr, size_t length) {
    if (HS_MAY_RECORD()) {
        unsigned saved = hs_guard;
        hs_guard = saved | HS_IN_RECORD;
        hs_thread *t = hs_current_thread();
        if (t) hs_record_munmap(t, (uintptr_t)addr, length);
        hs_guard = saved;
    }
    return munmap(addr, length);
}

// os._exit() and C code that calls _exit skip atexit, so Tracker.stop never
// runs: end the capture here, uncompressed, rather than lose its last records.
void hs__exit(int status) {
    hs_finish_at_exit();
    _exit(status);
}

// exec replaces the process image without atexit or `_exit`: the capture
// ends here, complete (a Python exec'd under --follow-fork starts its own).
// Should exec fail, the process goes on untracked.
int hs_execv(const char *path, char *const argv[]) {
    hs_finish_at_exit();
    return execv(path, argv);
}

int hs_execve(const char *path, char *const argv[], char *const envp[]) {
    hs_finish_at_exit();
    return execve(path, argv, envp);
}

int hs_execvp(const char *file, char *const argv[]) {
    hs_finish_at_exit();
    return execvp(file, argv);
}

int hs_fexecve(int fd, char *const argv[], char *const envp[]) {
    hs_finish_at_exit();
    return fexecve(fd, argv, envp);
}

// ctypes (`CDLL("libc.so.6").malloc`), cffi's ABI mode and C code that looks
// an allocator up itself call it through a pointer from dlsym, never through
// a GOT slot: a lookup that finds libc's allocator (the function this object
// calls) gets our hook instead. The pointer may outlive the session: the hook
// then only passes the call through. RTLD_NEXT is resolved relative to the
// caller, so that lookup is left to dlsym as a tail call (its return address
// stays the caller's): it comes from an interposer that wants the next one.
static void *hs_hook_for(void *real) {
    if (!real) return NULL;
    static const struct {
        void *(*real)(void);
        void *hook;
    } hooks[] = {
        {(void *(*)(void))malloc, (void *)hs_malloc},
        {(void *(*)(void))free, (void *)hs_free},
        {(void *(*)(void))calloc, (void *)hs_calloc},
        {(void *(*)(void))realloc, (void *)hs_realloc},
        {(void *(*)(void))posix_memalign, (void *)hs_posix_memalign},
        {(void *(*)(void))aligned_alloc, (void *)hs_aligned_alloc},
        {(void *(*)(void))memalign, (void *)hs_memalign},
        {(void *(*)(void))valloc, (void *)hs_valloc},
        {(void *(*)(void))pvalloc, (void *)hs_pvalloc},
        {(void *(*)(void))mmap, (void *)hs_mmap},
        {(void *(*)(void))munmap, (void *)hs_munmap},
    };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
        if ((void *)hooks[i].real == real) return hooks[i].hook;
    return real;
}

void *hs_dlsym(void *handle, const char *name) {
    if (handle == RTLD_NEXT) __attribute__((musttail)) return dlsym(handle, name);
    return hs_hook_for(dlsym(handle, name));
}

void *hs_dlvsym(void *handle, const char *name, const char *version) {
    if (handle == RTLD_NEXT) __attribute__((musttail)) return dlvsym(handle, name, version);
    return hs_hook_for(dlvsym(handle, name, version));
}

// A newly loaded object calls malloc through its own GOT: patch it too.
void *hs_dlopen(const char *file, int mode) {
    void *handle = dlopen(file, mode);
    if (handle && hs_global.tracking) {
        unsigned saved = hs_guard;
        hs_guard = saved | HS_IN_RECORD;
        hs_patch_got(1);
        if (hs_global.native) hs_record_mappings();
        hs_guard = saved;
    }
    return handle;
}

// An unloaded object's addresses may be reused by the next one loaded: the
// capture gets the new list of objects.
int hs_dlclose(void *handle) {
    int rc = dlclose(handle);
    if (rc == 0 && hs_global.tracking && hs_global.native) {
        unsigned saved = hs_guard;
        hs_guard = saved | HS_IN_RECORD;
        hs_record_mappings();
        hs_guard = saved;
    }
    return rc;
}
