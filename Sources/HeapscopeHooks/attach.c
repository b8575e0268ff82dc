// `heapscope attach`: the entry points it calls inside a running CPython
// after it has dlopen'ed this tracker (docs/ATTACH.md), on the main thread,
// which it stopped at an arbitrary instruction, maybe inside malloc or
// without the GIL, so these entries only take note and schedule the work with
// Py_AddPendingCall: the interpreter runs it on its main thread, holding the
// GIL, between two bytecodes. The work itself is Python
// (heapscope/_attach.py, imported from this tracker's own package): a
// heapscope.Tracker started and stopped like any other.
//
// Protocol with the CLI (Sources/heapscope/AttachSession.swift, StatusFile.swift): the status file
// holds one line, rewritten at each step: "starting", then "running <capture>"
// or "error <message>", and at the end "stopped request|exit <capture>".
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define HS_ATTACH_API __attribute__((visibility("default"), used))

// hs_attach_start results (the CLI's TrackerCalls.swift reads them).
enum { HS_ATTACH_SCHEDULED = 0, HS_ATTACH_BUSY = 1, HS_ATTACH_QUEUE_FULL = 2, HS_ATTACH_NO_MEMORY = 3 };
// hs_attach_stop results.
enum { HS_DETACH_NOT_TRACKED = 0, HS_DETACH_SCHEDULED = 1, HS_DETACH_ALREADY = 2, HS_DETACH_OTHER_TRACKER = 3,
       HS_DETACH_QUEUE_FULL = 4, HS_DETACH_CANCELLED = 5 };

// RUNNING is set as soon as a start is claimed, before it is done: a stop
// scheduled meanwhile then runs after it (pending calls run in order).
enum { HS_PHASE_IDLE, HS_PHASE_START_PENDING, HS_PHASE_RUNNING, HS_PHASE_STOP_PENDING };

// Written by the entries, which attach calls on the stopped main thread, and
// read by the pending calls, which run on that same thread (Py_AddPendingCall
// queues for the main thread in 3.10-3.13): no two of them ever run at once.
static int hs_attach_phase = HS_PHASE_IDLE;
// Each start has its own number: a pending start left from an attach that gave
// up (the target never reached a safe point in time) sees that it is stale.
static uintptr_t hs_attach_generation;
static uint64_t hs_attach_deadline_ns;   // CLOCK_MONOTONIC: the start is void after it
static char *hs_attach_package_parent;   // the directory holding this tracker's heapscope package
static char *hs_attach_status_path;
static char *hs_attach_options;          // JSON for heapscope._attach.start

static uint64_t hs_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void hs_write_status(const char *word, const char *detail) {
    int fd = open(hs_attach_status_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return;
    char line[1024];
    int n = snprintf(line, sizeof line, "%s%s%s\n", word, detail ? " " : "", detail ? detail : "");
    if (n > (int)sizeof line - 1) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    ssize_t ignored = write(fd, line, (size_t)n);
    (void)ignored;
    close(fd);
}

// The current exception as one status line (and cleared: it must not leak
// into the code the pending call interrupted).
static void hs_status_from_exception(const char *what) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *text = value ? PyObject_Str(value) : NULL;
    const char *message = text ? PyUnicode_AsUTF8(text) : NULL;
    char detail[768];
    snprintf(detail, sizeof detail, "%s: %s: %s", what, type ? ((PyTypeObject *)type)->tp_name : "error",
             message ? message : "?");
    hs_write_status("error", detail);
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

// heapscope._attach from this tracker's package: the package directory's
// parent goes first on sys.path for the import only.
static PyObject *hs_import_attach_module(void) {
    PyObject *path = PySys_GetObject("path");   // borrowed
    PyObject *parent = PyUnicode_DecodeFSDefault(hs_attach_package_parent);
    if (!path || !PyList_Check(path) || !parent || PyList_Insert(path, 0, parent) < 0) {
        Py_XDECREF(parent);
        return NULL;
    }
    PyObject *module = PyImport_ImportModule("heapscope._attach");
    PyObject *saved_type, *saved_value, *saved_tb;
    PyErr_Fetch(&saved_type, &saved_value, &saved_tb);
    Py_ssize_t n = PyList_GET_SIZE(path);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyList_GET_ITEM(path, i) == parent) {
            PyList_SetSlice(path, i, i + 1, NULL);
            break;
        }
    }
    PyErr_Restore(saved_type, saved_value, saved_tb);
    Py_DECREF(parent);
    return module;
}

static int hs_attach_run_start(void *arg) {
    if ((uintptr_t)arg != hs_attach_generation || hs_attach_phase != HS_PHASE_START_PENDING) return 0;
    if (hs_monotonic_ns() > hs_attach_deadline_ns) {
        // attach has given up and told its user so: starting now would surprise.
        hs_attach_phase = HS_PHASE_IDLE;
        return 0;
    }
    hs_attach_phase = HS_PHASE_RUNNING;
    hs_write_status("starting", NULL);
    PyObject *module = hs_import_attach_module();
    if (!module) {
        hs_status_from_exception("cannot import heapscope._attach");
        hs_attach_phase = HS_PHASE_IDLE;
        return 0;
    }
    PyObject *started = PyObject_CallMethod(module, "start", "ss", hs_attach_status_path, hs_attach_options);
    Py_DECREF(module);
    int ok = started && PyObject_IsTrue(started) == 1;
    if (!started) hs_status_from_exception("heapscope._attach.start failed");
    Py_XDECREF(started);
    PyErr_Clear();
    if (!ok) hs_attach_phase = HS_PHASE_IDLE;
    return 0;
}

static int hs_attach_run_stop(void *arg) {
    (void)arg;
    if (hs_attach_phase != HS_PHASE_STOP_PENDING) return 0;
    PyObject *module = PyImport_ImportModule("heapscope._attach");   // already in sys.modules
    PyObject *stopped = module ? PyObject_CallMethod(module, "stop", NULL) : NULL;
    if (!stopped) hs_status_from_exception("stopping failed");
    Py_XDECREF(stopped);
    Py_XDECREF(module);
    PyErr_Clear();
    hs_attach_phase = HS_PHASE_IDLE;
    return 0;
}

static int hs_replace(char **slot, const char *value) {
    char *copy = strdup(value);
    if (!copy) return 0;
    free(*slot);
    *slot = copy;
    return 1;
}

// Called by attach. Schedules tracking to start at the next safe point, unless
// heapscope already tracks this process; the start is void after
// `deadline_ns` (CLOCK_MONOTONIC), when attach stops waiting for it.
HS_ATTACH_API int hs_attach_start(const char *package_parent, const char *status_path, const char *options,
                                  unsigned long long deadline_ns) {
    if (hs_global.recorder || hs_attach_phase == HS_PHASE_RUNNING || hs_attach_phase == HS_PHASE_STOP_PENDING)
        return HS_ATTACH_BUSY;
    if (hs_attach_phase == HS_PHASE_START_PENDING && hs_monotonic_ns() <= hs_attach_deadline_ns)
        return HS_ATTACH_BUSY;   // another attach is waiting for its start
    if (!hs_replace(&hs_attach_package_parent, package_parent) || !hs_replace(&hs_attach_status_path, status_path) ||
        !hs_replace(&hs_attach_options, options))
        return HS_ATTACH_NO_MEMORY;
    hs_attach_generation++;
    hs_attach_deadline_ns = deadline_ns;
    if (Py_AddPendingCall(hs_attach_run_start, (void *)hs_attach_generation) != 0) {
        hs_attach_phase = HS_PHASE_IDLE;
        return HS_ATTACH_QUEUE_FULL;
    }
    hs_attach_phase = HS_PHASE_START_PENDING;
    return HS_ATTACH_SCHEDULED;
}

// Called by `heapscope detach`, or by attach when --duration is over or it
// gives up waiting: stops tracking at the next safe point, or cancels a start
// still waiting for one.
HS_ATTACH_API int hs_attach_stop(void) {
    if (hs_attach_phase == HS_PHASE_STOP_PENDING) return HS_DETACH_ALREADY;
    if (hs_attach_phase == HS_PHASE_START_PENDING) {
        hs_attach_phase = HS_PHASE_IDLE;
        return HS_DETACH_CANCELLED;
    }
    if (hs_attach_phase != HS_PHASE_RUNNING)
        return hs_global.recorder ? HS_DETACH_OTHER_TRACKER : HS_DETACH_NOT_TRACKED;
    if (Py_AddPendingCall(hs_attach_run_stop, NULL) != 0) return HS_DETACH_QUEUE_FULL;
    hs_attach_phase = HS_PHASE_STOP_PENDING;
    return HS_DETACH_SCHEDULED;
}

// Called by `heapscope detach`: where the attach that started tracking
// watches for the stop.
HS_ATTACH_API const char *hs_attach_status(void) {
    return hs_attach_status_path ? hs_attach_status_path : "";
}
