// The C layer of the tracker: allocator entry points, the re-entrancy guard,
// GOT patching and the CPython frame walk. It is what Swift cannot do (TLS
// models, variadic/macro C APIs, CPython's internal structs). Python.h stays
// out of this header so that Swift never imports CPython.
#ifndef HEAPSCOPE_HOOKS_H
#define HEAPSCOPE_HOOKS_H

#include <stddef.h>
#include <stdint.h>

// ---- Per-thread guard -------------------------------------------------------
// Two bits of initial-exec TLS (a dlopen'ed module may use only a few words of
// it; see DESIGN.md). IN_RECORD: this thread is inside the recorder, whose own
// allocations must never be recorded. IN_PYALLOC: this thread is inside the
// allocator behind a PyMem/arena hook, so the malloc or mmap it makes for that
// block is not a second allocation.
enum { HS_IN_RECORD = 1, HS_IN_PYALLOC = 2 };

// ---- Per-thread state -------------------------------------------------------
// Heap-allocated on a thread's first event, reached through one TLS pointer.
// The Python stack is walked into `walk` (innermost first), each frame as its
// code object and (instruction offset << 1 | is-entry bit), as FRAME stores it; the recorder keeps
// the last stack it interned in `cached*` (outermost first) so that only the
// frames that changed since the last event need a table lookup.
// The whole stack is kept, so a deep one keeps its ids from the root and an
// event re-interns only what changed: the frame arrays start with room for
// HS_INITIAL_FRAMES and double as needed up to HS_MAX_FRAMES. A stack deeper
// than that keeps its innermost HS_MAX_FRAMES - 1 frames and, as its
// outermost frame, HS_CUT_CODE: a code object of its own in the capture,
// named "[outer frames not recorded]", so every report shows the cut.
#define HS_INITIAL_FRAMES 256
#define HS_MAX_FRAMES 16384
#define HS_CUT_CODE ((const void *)1)
#define HS_SHARED_UNKNOWN 0xFFFFFFFFu
#define HS_MAX_NATIVE_FRAMES 128

typedef struct hs_thread {
    uint64_t session;          // session whose ids the cache and number belong to
    uint32_t number;           // heapscope's thread number in that session
    uint32_t os_tid;
    uint32_t walk_depth;
    uint32_t cached_depth;
    // Outermost frames of `walk` equal to the cache's, found during the walk
    // when the depth did not change; HS_SHARED_UNKNOWN otherwise.
    uint32_t walk_shared;
    // Each points at `frame_capacity` entries (one block, hs_thread_grow_frames).
    uint32_t frame_capacity;
    const void **walk_code;
    uint32_t *walk_offset;
    const void **cached_code;
    uint32_t *cached_offset;
    uint32_t *cached_code_id;
    uint32_t *cached_frame_id;
    // Native stack (native mode only): return addresses, innermost first, and
    // the last one interned, outermost first, with the trie id of each prefix
    // (HS_MAX_NATIVE_FRAMES each, stored right after the struct).
    uint32_t native_depth;
    uint32_t cached_native_depth;
    uintptr_t *native_ip;
    uintptr_t *cached_native_ip;
    uint32_t *cached_native_id;
} hs_thread;

// ---- Process-wide tracker state -----------------------------------------------
// Lives in C so that Swift's hot path reads it through a plain pointer: no lazy
// global initialisers, no exclusivity checks. Everything below `lock` is
// guarded by it.
typedef struct hs_state {
    // Read by every hook, written only at start and stop: their cache line
    // stays shared in every core's cache. The lock, written by every record,
    // starts the next line (hs_global is 64-aligned), so taking it does not
    // evict `tracking` from the other cores.
    // (Padding, not _Alignas: Swift does not import over-aligned structs.)
    volatile int tracking;     // hooks record only while set
    int native;                // walk native stacks too
    char read_mostly_line[64 - 2 * sizeof(int)];
    volatile int lock;         // spinlock over the writer and the intern tables
    int pid;                   // the process recording: a vfork child shares this memory
    uint64_t session;          // bumped at every start and in a followed fork child
    void *recorder;            // the Swift recorder (opaque here)
} hs_state;

// Defined in threads.c. Inline: the recorder reads it on every event.
extern hs_state hs_global;
static inline hs_state *hs_state_ptr(void) { return &hs_global; }
unsigned *hs_guard_ptr(void);
hs_thread *hs_current_thread(void);   // creates the thread's state on first use
// Doubles the frame arrays, keeping their contents; 0 at HS_MAX_FRAMES or out of memory.
int hs_thread_grow_frames(hs_thread *t);

int sched_yield(void);

static inline void hs_lock(hs_state *s) {
    while (__atomic_exchange_n(&s->lock, 1, __ATOMIC_ACQUIRE)) {
        // The holder may have been descheduled (2 cores, busy machine): spin
        // briefly, then give it the CPU rather than burn our time slice.
        for (int spins = 0; __atomic_load_n(&s->lock, __ATOMIC_RELAXED); spins++) {
            if (spins < 64) __builtin_ia32_pause();
            else sched_yield();
        }
    }
}

static inline void hs_unlock(hs_state *s) {
    __atomic_store_n(&s->lock, 0, __ATOMIC_RELEASE);
}

// Swift has no prefetch: the writer thread's live-heap table (LiveHeap.swift).
static inline void hs_prefetch(const void *p) { __builtin_prefetch(p); }

// ---- Installing the hooks -----------------------------------------------------
// Patches (install=1) or restores (install=0) the GOT slots of every loaded
// object except ld.so, the vdso, libc and this module. Returns the slots changed.
int hs_patch_got(int install);
// PyMem domains (RAW, MEM, OBJ) and pymalloc's arena allocator. Need the GIL.
void hs_install_python_hooks(int trace_python_allocators);
void hs_remove_python_hooks(void);

// ---- CPython facts the recorder needs ------------------------------------------
typedef struct hs_code_info {
    const char *name; size_t name_len;
    const char *qualname; size_t qualname_len;
    const char *filename; size_t filename_len;
    const uint8_t *linetable; size_t linetable_len;
    uint32_t firstlineno;
} hs_code_info;

void hs_code_describe(const void *code, hs_code_info *out);
// Fields that change when a code object is freed and its address reused.
uint64_t hs_code_fingerprint(const void *code);
const char *hs_allocator_name(void);

// ---- Loaded objects (native mode) ----------------------------------------------
// What a report needs to turn a return address into a symbol later, offline.
#define HS_MAX_SEGMENTS 8
typedef struct hs_mapping {
    const char *path;          // valid until hs_mappings_free
    uintptr_t base;            // load bias
    uint8_t build_id[64];
    size_t build_id_len;
    uintptr_t segment_start[HS_MAX_SEGMENTS];   // absolute addresses of PT_LOAD segments
    size_t segment_size[HS_MAX_SEGMENTS];
    int segments;
} hs_mapping;

int hs_mappings_collect(hs_mapping **out);   // returns the count; hs_mappings_free after
void hs_mappings_free(hs_mapping *mappings, int count);

// ---- Implemented in Swift (HeapscopeTracker) --------------------------------------
// Called with HS_IN_RECORD set and the thread's Python stack already in `walk`.
void hs_record_alloc(hs_thread *thread, uint8_t kind, uintptr_t address, size_t size);
void hs_record_free(hs_thread *thread, uint8_t kind, uintptr_t address);
void hs_record_munmap(hs_thread *thread, uintptr_t address, size_t length);
void hs_record_mappings(void);   // after dlopen/dlclose in native mode
void hs_after_fork_child(void);
void hs_finish_before_exit(void);   // writes END and flushes; the process is about to end

// ---- The Python module ------------------------------------------------------------
// C builds the module object and parses arguments (variadic CPython APIs);
// Swift's PyInit__tracker calls hs_module_create, and the methods call the
// session functions below.
void *hs_module_create(void);

typedef struct hs_start_options {
    const char *path;
    const char *metadata; size_t metadata_len;   // JSON, see docs/FORMAT.md
    int native, trace_python_allocators, follow_fork, overwrite, compress;
    unsigned memory_interval_ms;
    unsigned long long memory_limit;   // bytes of traced heap; 0: none
    unsigned parent_pid;               // the header's parent pid: 0, or for a child of a followed process its parent
    int live_fd;                       // live mode: a socket the writer also sends the stream to (FileSink); -1: none
    int count_totals;                  // the writer counts the summary trailer's totals (StreamTotals): run and attach,
                                       // for their exit summary; it costs the writer a table of the live blocks
    int watch_floor;                   // the writer stops the process under the memory floor (a Tracker with a
                                       // memory limit; run and attach watch the floor from outside)
} hs_start_options;

// 0 on success; otherwise an errno value (OS errors) or -1 (message in `error`).
int hs_session_start(const hs_start_options *options, char *error, size_t error_cap);
int hs_session_stop(char *error, size_t error_cap);
void hs_session_name_thread(const char *name, size_t name_len, uint32_t os_tid);

// ---- Background writer ----------------------------------------------------------
// The recorder fills chunks; full ones are queued to heapscope's writer thread,
// which compresses and writes them in the order they were queued (so records
// reach the file in stream order) and every interval asks for a memory
// snapshot. The hooks never wait for the writer: an empty chunk is taken from
// the free list, or allocated when the writer is behind.
typedef struct hs_chunk {
    struct hs_chunk *next;
    size_t used;
    uint8_t data[];
} hs_chunk;

#define HS_CHUNK_SIZE ((size_t)1 << 20)
static inline uint8_t *hs_chunk_data(hs_chunk *c) { return c->data; }   // Swift does not see `data[]`

hs_chunk *hs_chunk_take(void);                  // an empty chunk
hs_chunk *hs_chunk_submit(hs_chunk *full);      // queues `full`; returns an empty chunk
int hs_writer_start(unsigned interval_ms);      // starts the thread
void hs_writer_stop(void);                      // writes what is queued, joins the thread
void hs_writer_drain(void);                     // writes what is queued, on the calling thread
void hs_writer_after_fork(void);                // in a child: forget the parent's queue and thread
// The writer finishes the capture, then ends the process with `status`
// (called under the lock; the hook that asked then waits, hs_on_alloc).
void hs_writer_request_exit(int status);

// Implemented in Swift:
void hs_snapshot_tick(void);                    // a SNAPSHOT record; the current chunk is submitted
void hs_write_chunk(const uint8_t *bytes, size_t count);   // compress and write (writer thread)
void hs_write_sync_point(void);                 // make all written so far decodable (zstd flush)
void hs_finish_from_writer(void);               // writer thread, a signal or exit pending: END, close

// ---- Fatal signals (signals.c) ------------------------------------------------------
// SIGTERM/SIGINT left at SIG_DFL get a handler while a session records: the
// writer finishes the capture, then the process dies of the signal.
void hs_signals_install(void);                  // at start: only where the disposition is SIG_DFL
void hs_signals_remove(void);                   // at stop: SIG_DFL again where ours is installed
// Around a capture finished by stop or `_exit`: a signal meanwhile waits for
// the end (on the finishing thread: is raised at the end).
void hs_signals_finish_begin(void);
void hs_signals_finish_end(void);
int hs_writer_is_running(void);

void hs_register_atfork(void);
uint32_t hs_gettid(void);
void hs_thread_os_name(char *out, size_t cap);

#endif
