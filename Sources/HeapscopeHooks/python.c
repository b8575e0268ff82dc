// Everything of the hook layer that needs CPython's headers but not its
// internals of one version: the PyMem and arena hooks, code object facts and
// the module object. The frame walk and the other version-dependent parts are
// the version layer (cpython.h). Swift sees none of it (heapscope_hooks.h has
// no Python.h).
#include "cpython.h"
#include <internal/pycore_pymem.h>   // _PyMem_GetCurrentAllocatorName (internal from 3.13)

#define HS_KIND_PYMEM_RAW 9
#define HS_KIND_PYMEM_MEM 10
#define HS_KIND_PYMEM_OBJ 11
#define HS_KIND_ARENA 12

// ---- Code objects -------------------------------------------------------------

// UTF-8 of a str without allocating where possible: compact ASCII strings (the
// usual case for names and paths) hold it inline, others may have it cached.
static void hs_utf8(PyObject *s, const char **out, size_t *len) {
    *out = "?";
    *len = 1;
    if (!s || !PyUnicode_Check(s)) return;
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        *out = (const char *)(((PyASCIIObject *)s) + 1);
        *len = (size_t)((PyASCIIObject *)s)->length;
    } else if (((PyCompactUnicodeObject *)s)->utf8) {
        *out = ((PyCompactUnicodeObject *)s)->utf8;
        *len = (size_t)((PyCompactUnicodeObject *)s)->utf8_length;
    } else if (PyGILState_Check()) {
        Py_ssize_t n = 0;
        const char *u = PyUnicode_AsUTF8AndSize(s, &n);
        if (u) {
            *out = u;
            *len = (size_t)n;
        } else {
            PyErr_Clear();
        }
    }
}

// The outermost frame of a stack cut at HS_MAX_FRAMES (heapscope_hooks.h).
#define HS_STRINGIFY(x) #x
#define HS_STR(x) HS_STRINGIFY(x)
static const char hs_cut_name[] = "[outer frames not recorded]";
static const char hs_cut_file[] = "<heapscope: the stack was deeper than " HS_STR(HS_MAX_FRAMES) " frames>";

void hs_code_describe(const void *p, hs_code_info *out) {
    if (p == HS_CUT_CODE) {
        *out = (hs_code_info){hs_cut_name, sizeof hs_cut_name - 1, hs_cut_name, sizeof hs_cut_name - 1,
                              hs_cut_file, sizeof hs_cut_file - 1, (const uint8_t *)"", 0, 0};
        return;
    }
    PyCodeObject *code = (PyCodeObject *)p;
    hs_utf8(code->co_name, &out->name, &out->name_len);
    hs_utf8(hs_code_qualname(code), &out->qualname, &out->qualname_len);
    hs_utf8(code->co_filename, &out->filename, &out->filename_len);
    out->firstlineno = code->co_firstlineno > 0 ? (uint32_t)code->co_firstlineno : 0;
    out->linetable = (const uint8_t *)PyBytes_AS_STRING(code->co_linetable);
    out->linetable_len = (size_t)PyBytes_GET_SIZE(code->co_linetable);
}

const char *hs_allocator_name(void) {
    const char *name = _PyMem_GetCurrentAllocatorName();
    return name ? name : "unknown";
}

uint64_t hs_code_fingerprint(const void *p) {
    if (p == HS_CUT_CODE) return 0;
    const PyCodeObject *code = (const PyCodeObject *)p;
    // A code object freed and another allocated at its address would also need
    // its line table and name at the same addresses to pass as the old one.
    return ((uint64_t)(uintptr_t)code->co_linetable * 31u) ^ (uint64_t)(uintptr_t)code->co_name ^
           ((uint64_t)code->co_firstlineno << 48);
}

// ---- PyMem domains ----------------------------------------------------------------
// The original allocator travels in ctx. IN_PYALLOC is set while it runs, so
// the malloc (or RAW-domain call) it makes for this block is not recorded
// again: every block is recorded once, by the outermost hook.

typedef struct {
    PyMemAllocatorEx original;
    uint8_t kind;
    int which;   // whose thread state holds the stack (RAW may run without the GIL)
} hs_domain;

static hs_domain hs_domains[3] = {
    {.kind = HS_KIND_PYMEM_RAW, .which = HS_STACK_OWN_THREAD},
    {.kind = HS_KIND_PYMEM_MEM, .which = HS_STACK_GIL_HELD},
    {.kind = HS_KIND_PYMEM_OBJ, .which = HS_STACK_GIL_HELD},
};
static const PyMemAllocatorDomain hs_domain_ids[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
static int hs_python_hooks_installed;

static void *hs_pymem_malloc(void *ctx, size_t size) {
    hs_domain *d = ctx;
    unsigned saved = hs_guard;
    hs_guard = saved | HS_IN_PYALLOC;
    void *p = d->original.malloc(d->original.ctx, size);
    hs_guard = saved;
    if (p && saved == 0 && hs_global.tracking) hs_on_alloc(d->kind, p, size, d->which);
    return p;
}

static void *hs_pymem_calloc(void *ctx, size_t n, size_t size) {
    hs_domain *d = ctx;
    unsigned saved = hs_guard;
    hs_guard = saved | HS_IN_PYALLOC;
    void *p = d->original.calloc(d->original.ctx, n, size);
    hs_guard = saved;
    if (p && saved == 0 && hs_global.tracking) hs_on_alloc(d->kind, p, n * size, d->which);
    return p;
}

static void *hs_pymem_realloc(void *ctx, void *old, size_t size) {
    hs_domain *d = ctx;
    unsigned saved = hs_guard;
    int record = saved == 0 && hs_global.tracking;
    if (record && old) hs_on_free(d->kind, old, d->which);
    hs_guard = saved | HS_IN_PYALLOC;
    void *p = d->original.realloc(d->original.ctx, old, size);
    hs_guard = saved;
    if (record) {
        if (p) hs_on_alloc(d->kind, p, size, d->which);
        else if (old) hs_on_alloc(d->kind, old, 0, d->which);   // failed: old block lives on, size unknown
    }
    return p;
}

static void hs_pymem_free(void *ctx, void *p) {
    hs_domain *d = ctx;
    unsigned saved = hs_guard;
    if (p && saved == 0 && hs_global.tracking) hs_on_free(d->kind, p, d->which);
    hs_guard = saved | HS_IN_PYALLOC;
    d->original.free(d->original.ctx, p);
    hs_guard = saved;
}

// ---- pymalloc arenas --------------------------------------------------------------
// Recorded even inside a PyObject_Malloc hook (an arena is its own kind, the
// one place pymalloc's mmaps show up), but never from inside the recorder.

static PyObjectArenaAllocator hs_arena_original;

static void *hs_arena_alloc(void *ctx, size_t size) {
    (void)ctx;
    unsigned saved = hs_guard;
    hs_guard = saved | HS_IN_PYALLOC;
    void *p = hs_arena_original.alloc(hs_arena_original.ctx, size);
    hs_guard = saved;
    if (p && !(saved & HS_IN_RECORD) && hs_global.tracking) hs_on_alloc(HS_KIND_ARENA, p, size, HS_STACK_GIL_HELD);
    return p;
}

static void hs_arena_free(void *ctx, void *p, size_t size) {
    (void)ctx;
    unsigned saved = hs_guard;
    if (p && !(saved & HS_IN_RECORD) && hs_global.tracking) hs_on_free(HS_KIND_ARENA, p, HS_STACK_GIL_HELD);
    hs_guard = saved | HS_IN_PYALLOC;
    hs_arena_original.free(hs_arena_original.ctx, p, size);
    hs_guard = saved;
}

static int hs_arena_hook_installed;

void hs_install_python_hooks(int trace_python_allocators) {
#if HS_TSTATE_FROM_TLS
    hs_tstate_locate();
#endif
    if (trace_python_allocators && !hs_python_hooks_installed) {
        for (int i = 0; i < 3; i++) {
            PyMem_GetAllocator(hs_domain_ids[i], &hs_domains[i].original);
            PyMemAllocatorEx hook = {&hs_domains[i], hs_pymem_malloc, hs_pymem_calloc, hs_pymem_realloc, hs_pymem_free};
            PyMem_SetAllocator(hs_domain_ids[i], &hook);
        }
        hs_python_hooks_installed = 1;
    }
    // Arenas are recorded in both modes: without Python allocator tracing they
    // are the only trace of small objects (and are not seen again as mmaps).
    if (!hs_arena_hook_installed) {
        PyObject_GetArenaAllocator(&hs_arena_original);
        PyObjectArenaAllocator hook = {NULL, hs_arena_alloc, hs_arena_free};
        PyObject_SetArenaAllocator(&hook);
        hs_arena_hook_installed = 1;
    }
}

void hs_remove_python_hooks(void) {
    if (hs_python_hooks_installed) {
        for (int i = 0; i < 3; i++) PyMem_SetAllocator(hs_domain_ids[i], &hs_domains[i].original);
        hs_python_hooks_installed = 0;
    }
    if (hs_arena_hook_installed) {
        PyObject_SetArenaAllocator(&hs_arena_original);
        hs_arena_hook_installed = 0;
    }
}

// ---- The module -----------------------------------------------------------------------

// The threads to name at start, read before tracking starts: naming them
// afterwards in Python would record heapscope's own allocations.
typedef struct {
    const char *name;
    Py_ssize_t len;
    unsigned long tid;
} hs_thread_name;

static hs_thread_name *hs_read_thread_names(PyObject *threads, Py_ssize_t *count) {
    *count = 0;
    if (!threads) return NULL;
    PyObject *items = PySequence_Fast(threads, "threads must be a sequence of (name, native_id)");
    if (!items) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    // Our malloc is libc's (this object's GOT is never patched): not recorded.
    hs_thread_name *names = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    for (Py_ssize_t i = 0; names && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        // The caller keeps the sequence and its strings alive until start returns.
        if (!PyArg_ParseTuple(item, "s#k", &names[i].name, &names[i].len, &names[i].tid)) {
            free(names);
            names = NULL;
        }
    }
    Py_DECREF(items);
    if (names) *count = n;
    else if (!PyErr_Occurred()) PyErr_NoMemory();
    return names;
}

static PyObject *hs_py_start(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"path", "native", "trace_python_allocators", "follow_fork", "overwrite",
                               "memory_interval_ms", "compress", "metadata", "memory_limit", "parent_pid",
                               "live_fd", "count_totals", "watch_floor", "threads", NULL};
    PyObject *path = NULL, *threads = NULL;
    hs_start_options options = {.trace_python_allocators = 1, .compress = 1, .memory_interval_ms = 10, .live_fd = -1};
    const char *metadata = "{}";
    Py_ssize_t metadata_len = 2;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|$ppppIps#KIippO", keywords, PyUnicode_FSConverter, &path,
                                     &options.native, &options.trace_python_allocators, &options.follow_fork,
                                     &options.overwrite, &options.memory_interval_ms, &options.compress, &metadata,
                                     &metadata_len, &options.memory_limit, &options.parent_pid, &options.live_fd, &options.count_totals,
                                     &options.watch_floor, &threads))
        return NULL;
    Py_ssize_t thread_count;
    hs_thread_name *names = hs_read_thread_names(threads, &thread_count);
    if (threads && !names) {
        Py_DECREF(path);
        return NULL;
    }
    options.path = PyBytes_AS_STRING(path);
    options.metadata = metadata;
    options.metadata_len = (size_t)metadata_len;
    char error[256] = {0};
    int rc = hs_session_start(&options, error, sizeof error);
    PyObject *result = NULL;
    if (rc == 0) {
        for (Py_ssize_t i = 0; i < thread_count; i++)
            hs_session_name_thread(names[i].name, (size_t)names[i].len, (uint32_t)names[i].tid);
        result = Py_NewRef(Py_None);
    } else {
        PyObject *name = PyUnicode_DecodeFSDefault(options.path);
        errno = rc > 0 ? rc : 0;
        if (rc > 0)
            PyErr_SetFromErrnoWithFilenameObject(rc == EEXIST ? PyExc_FileExistsError : PyExc_OSError, name);
        else
            PyErr_SetString(PyExc_RuntimeError, error);
        Py_XDECREF(name);
    }
    free(names);
    Py_DECREF(path);
    return result;
}

// Stop's first step: recording ends here, so what heapscope does before the
// capture is finished (naming threads) is not recorded as the program's.
static PyObject *hs_py_pause(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    hs_global.tracking = 0;
    Py_RETURN_NONE;
}

static PyObject *hs_py_stop(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    char error[256] = {0};
    int rc = hs_session_stop(error, sizeof error);
    if (rc == 0) Py_RETURN_NONE;
    if (rc > 0) {
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyErr_SetString(PyExc_RuntimeError, error);
    return NULL;
}

static PyObject *hs_py_is_active(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyBool_FromLong(hs_global.tracking);
}

static PyObject *hs_py_set_thread_name(PyObject *self, PyObject *args) {
    (void)self;
    const char *name;
    Py_ssize_t len;
    unsigned long tid;
    if (!PyArg_ParseTuple(args, "s#k", &name, &len, &tid)) return NULL;
    hs_session_name_thread(name, (size_t)len, (uint32_t)tid);
    Py_RETURN_NONE;
}

// Names each thread the program starts while recording, on that thread,
// before its target runs: this replaces threading.Thread._bootstrap_inner
// (bound as a method by an instancemethod) and then calls the original. It
// is C so that no frame of heapscope's sits under the thread's recorded ones.
static PyObject *hs_original_bootstrap_inner;

static PyObject *hs_py_thread_started(PyObject *self, PyObject *thread) {
    (void)self;
    if (hs_global.tracking) {
        PyObject *name = PyObject_GetAttrString(thread, "name");
        Py_ssize_t len = 0;
        const char *text = name && PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &len) : NULL;
        if (text) hs_session_name_thread(text, (size_t)len, hs_gettid());
        Py_XDECREF(name);
        PyErr_Clear();   // a thread without a usable name stays unnamed; it runs regardless
    }
    // Not PyObject_CallOneArg: inline in 3.10, so a tracker of another version
    // would fail to load before it can say which version it was built for.
    return PyObject_CallFunctionObjArgs(hs_original_bootstrap_inner, thread, NULL);
}

static PyMethodDef hs_thread_started_def = {"_bootstrap_inner", hs_py_thread_started, METH_O,
                                            "heapscope: names the thread, then runs Thread._bootstrap_inner."};

static PyObject *hs_py_thread_start_hook(PyObject *self, PyObject *original) {
    (void)self;
    Py_INCREF(original);
    Py_XSETREF(hs_original_bootstrap_inner, original);
    PyObject *function = PyCFunction_New(&hs_thread_started_def, NULL);
    if (!function) return NULL;
    PyObject *method = PyInstanceMethod_New(function);
    Py_DECREF(function);
    return method;
}

static PyObject *hs_py_allocator_name(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    return PyUnicode_FromString(hs_allocator_name());
}

// For the tests: whether the walk reads the thread state in one load.
static PyObject *hs_py_thread_state_source(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
#if HS_TSTATE_FROM_TLS
    if (__atomic_load_n(&hs_tstate_tls_offset, __ATOMIC_RELAXED) != 0) return PyUnicode_FromString("thread-local load");
#endif
    return PyUnicode_FromString("call");
}

static PyMethodDef hs_methods[] = {
    {"start", (PyCFunction)(void (*)(void))hs_py_start, METH_VARARGS | METH_KEYWORDS,
     "start(path, *, native=False, trace_python_allocators=True, follow_fork=False, overwrite=False, "
     "memory_interval_ms=10, compress=True, metadata='{}', memory_limit=0, parent_pid=0, live_fd=-1, count_totals=False, watch_floor=False, threads=())\n"
     "Start recording every allocation into path; threads: (name, native_id) of the threads running."},
    {"pause", hs_py_pause, METH_NOARGS, "Stop recording; the capture stays open for thread names until stop()."},
    {"stop", hs_py_stop, METH_NOARGS, "Stop recording and finish the capture."},
    {"is_active", hs_py_is_active, METH_NOARGS, "Whether a capture is being recorded."},
    {"set_thread_name", hs_py_set_thread_name, METH_VARARGS, "set_thread_name(name, native_id)"},
    {"allocator_name", hs_py_allocator_name, METH_NOARGS, "CPython's name for the active allocator."},
    {"thread_state_source", hs_py_thread_state_source, METH_NOARGS,
     "How the frame walk finds the current thread state once a capture has started: 'thread-local load' or 'call'."},
    {"thread_start_hook", hs_py_thread_start_hook, METH_O,
     "thread_start_hook(original): a Thread._bootstrap_inner that names the thread while recording, then calls original."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hs_module = {PyModuleDef_HEAD_INIT, "_tracker",
                                       "heapscope's in-process tracker (see heapscope.Tracker).", -1, hs_methods};

void *hs_module_create(void) {
    // The frame walk reads this minor version's internal structs: refuse any
    // other. Py_GetVersion, unlike Py_Version (3.11+), exists in every version.
    unsigned runtime_major = 0, runtime_minor = 0;
    sscanf(Py_GetVersion(), "%u.%u", &runtime_major, &runtime_minor);
    if (runtime_major != PY_MAJOR_VERSION || runtime_minor != PY_MINOR_VERSION) {
        PyErr_Format(PyExc_ImportError,
                     "heapscope's tracker was built for CPython %d.%d but was loaded by %u.%u; "
                     "reinstall heapscope with this interpreter",
                     PY_MAJOR_VERSION, PY_MINOR_VERSION, runtime_major, runtime_minor);
        return NULL;
    }
    PyObject *module = PyModule_Create(&hs_module);
    if (!module) return NULL;
    char version[16];
    snprintf(version, sizeof version, "%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    if (PyModule_AddStringConstant(module, "PYTHON_VERSION", version) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
