// Shared between the C files of the hook layer; not visible to Swift.
#ifndef HEAPSCOPE_HOOKS_INTERNAL_H
#define HEAPSCOPE_HOOKS_INTERNAL_H
#include "heapscope_hooks.h"

extern __thread unsigned hs_guard __attribute__((tls_model("initial-exec")));

// Which thread state to read the Python stack from. A PyMem MEM/OBJ or arena
// hook runs with the GIL held, so the GIL holder is the caller. Anything else
// (RAW domain, malloc, mmap) may run without the GIL: it must read the calling
// thread's own thread state, never the GIL holder's, whose frames are moving.
enum { HS_STACK_GIL_HELD = 0, HS_STACK_OWN_THREAD = 1 };

// Fills t->walk with the calling thread's Python frames (python.c).
void hs_walk_python_stack(hs_thread *t, int which);

// Fills t->native_ip with the calling thread's return addresses (native.c).
void hs_walk_native_stack(hs_thread *t);

// The common tail of every hook: called only when hs_guard allowed recording.
// noinline keeps the hook bodies (which run for every allocation) small.
__attribute__((noinline)) void hs_on_alloc(uint8_t kind, void *p, size_t size, int which);
__attribute__((noinline)) void hs_on_free(uint8_t kind, void *p, int which);
// signals.c and the writer thread.
#include <signal.h>
extern volatile sig_atomic_t hs_pending_signal;   // a fatal signal the writer must finish the capture for
void hs_signal_finished(int sig);                 // the capture is complete: die of `sig`
void hs_signals_after_fork(void);
// From the `_exit` and exec hooks, before the process image goes: the capture
// is finished, by this thread or by whoever is already finishing it. Not
// gated on `tracking`, which a pending signal or a paused stop has cleared.
void hs_finish_at_exit(void);

// writer.c: the exit status the writer will end the process with (0: none
// asked); the asking thread waits for it there.
extern volatile int hs_writer_exit_status;
__attribute__((noinline, noreturn)) void hs_wait_for_writer_exit(void);
#endif
