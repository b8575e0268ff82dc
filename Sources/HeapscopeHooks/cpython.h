// The hook layer's one include of CPython's headers, the versions it supports,
// and the version layer: what each CPython minor version must provide.
#ifndef HEAPSCOPE_HOOKS_CPYTHON_H
#define HEAPSCOPE_HOOKS_CPYTHON_H
#define PY_SSIZE_T_CLEAN
// The frame structs are internal (Py_BUILD_CORE). _MODULE makes
// _PyThreadState_GET call libpython's exported getter: 3.12 and 3.13 would
// otherwise read a thread-local variable that libpython does not export.
#define Py_BUILD_CORE_MODULE 1
#include <Python.h>

#if PY_VERSION_HEX < 0x030A0000 || PY_VERSION_HEX >= 0x030E0000
#error "heapscope supports CPython 3.10, 3.11, 3.12 and 3.13: the tracker reads each version's internal frame layout, and only these four can be built and tested here (3.9 and older lack the APIs it uses; 3.14 is not available to test)"
#endif
#ifdef Py_GIL_DISABLED
#error "heapscope does not support free-threaded CPython (built with --disable-gil): its stack walk and allocator hooks rely on the GIL"
#endif

#include <internal/pycore_pystate.h>   // _PyThreadState_GET

#include "internal.h"

// ---- The version layer ----------------------------------------------------------
// One file per family of versions implements it, and compiles to nothing for
// the others: frames_310.c (3.10: PyFrameObject chain), frames_311.c (3.11 and
// 3.12: tstate->cframe->current_frame), frames_313.c (3.13: tstate->current_frame).
//   hs_walk_python_stack (internal.h)  the frame walk, with the entry bit that
//                                       marks where a C-level eval call began
//   hs_code_qualname                    the name a report shows for a code object
//   hs_current_tstate (below)           the current thread state; 3.12+ on x86-64
//                                       read in one load (tstate_312.c)
// A new version adds its file here and to the build check in cpython.h's #if.
PyObject *hs_code_qualname(PyCodeObject *code);

// ---- Steps every walk shares ------------------------------------------------------
// While chasing frame pointers (latency-bound), each frame is also compared
// with the previous stack's frame at the same depth, assuming the depth did not
// change: the compare rides in the shadow of the pointer chase, and the
// recorder then need not compare at all.

typedef struct {
    uint32_t depth;
    int64_t last_difference;   // innermost depth that differs from the cache, -1 if none
} hs_walk_state;

// `offset` is in code units; `entry` marks the first Python frame run by its
// C-level eval call (hybrid stacks splice Python frames into native ones there).
static inline void hs_walk_store(hs_thread *t, hs_walk_state *w, const void *code, uint32_t off) {
    uint32_t depth = w->depth;
    t->walk_code[depth] = code;
    t->walk_offset[depth] = off;
    int64_t level = (int64_t)t->cached_depth - 1 - (int64_t)depth;   // same depth from the root
    if (level < 0 || t->cached_code[level] != code || t->cached_offset[level] != off) w->last_difference = depth;
    w->depth = depth + 1;
}

// Returns 0 when the walk is full: the last slot then holds HS_CUT_CODE in
// place of this frame and all outer ones (heapscope_hooks.h).
static inline int hs_walk_push(hs_thread *t, hs_walk_state *w, PyCodeObject *code, ptrdiff_t offset, int entry) {
    // One slot is always left for the cut marker.
    if (__builtin_expect(w->depth + 1 >= t->frame_capacity, 0) && !hs_thread_grow_frames(t)) {
        hs_walk_store(t, w, HS_CUT_CODE, 0);
        return 0;
    }
    // As in the FRAME record: offset << 1, low bit the entry mark.
    hs_walk_store(t, w, code, (offset > 0 ? (uint32_t)offset << 1 : 0) | (entry ? 1u : 0u));
    return 1;
}

static inline void hs_walk_finish(hs_thread *t, const hs_walk_state *w) {
    t->walk_depth = w->depth;
    t->walk_shared = w->depth == t->cached_depth ? (uint32_t)((int64_t)w->depth - 1 - w->last_difference)
                                                 : HS_SHARED_UNKNOWN;
}

// The calling thread's current thread state (the GIL holder's, in a hook
// that holds the GIL). 3.12 and 3.13 on x86-64 read libpython's thread-local
// variable directly where tstate_312.c found it at start.
#if PY_VERSION_HEX >= 0x030C0000 && defined(__x86_64__) && defined(__GLIBC__)
#define HS_TSTATE_FROM_TLS 1
extern long hs_tstate_tls_offset;   // from the thread pointer; 0 until found (or never)
void hs_tstate_locate(void);        // with the GIL held, at start
static inline PyThreadState *hs_current_tstate(void) {
    long offset = __atomic_load_n(&hs_tstate_tls_offset, __ATOMIC_RELAXED);
    if (__builtin_expect(offset == 0, 0)) return _PyThreadState_GET();
    PyThreadState *tstate;
    __asm__ volatile("movq %%fs:(%1), %0" : "=r"(tstate) : "r"(offset));
    return tstate;
}
#else
#define HS_TSTATE_FROM_TLS 0
static inline PyThreadState *hs_current_tstate(void) { return _PyThreadState_GET(); }
#endif

// Whose thread state holds the stack (internal.h: HS_STACK_*).
static inline PyThreadState *hs_stack_owner(int which) {
    return which == HS_STACK_GIL_HELD ? hs_current_tstate() : PyGILState_GetThisThreadState();
}
#endif
