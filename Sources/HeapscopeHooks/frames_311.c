// Version layer for CPython 3.11 and 3.12: _PyInterpreterFrames linked by
// `previous`, the innermost at tstate->cframe->current_frame.
#include "cpython.h"
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
#include <internal/pycore_frame.h>

void hs_walk_python_stack(hs_thread *t, int which) {
    PyThreadState *tstate = hs_stack_owner(which);
    hs_walk_state w = {0, -1};
    _PyInterpreterFrame *frame = tstate && tstate->cframe ? tstate->cframe->current_frame : NULL;
    for (; frame; frame = frame->previous) {
#if PY_VERSION_HEX >= 0x030C0000
        // 3.12: each C-level eval call pushes a shim frame owned by the C
        // stack; it is no Python frame, but it marks where that call began.
        if (frame->owner == FRAME_OWNED_BY_CSTACK) continue;
        int entry = !frame->previous || frame->previous->owner == FRAME_OWNED_BY_CSTACK;
#else
        int entry = frame->is_entry;
#endif
        // Only the innermost frame can be incomplete (still in its prologue,
        // e.g. MAKE_CELL allocating): every outer frame has executed a call.
        if (w.depth == 0 && _PyFrame_IsIncomplete(frame)) continue;
        if (!hs_walk_push(t, &w, frame->f_code, frame->prev_instr - _PyCode_CODE(frame->f_code), entry)) break;
    }
    hs_walk_finish(t, &w);
}

PyObject *hs_code_qualname(PyCodeObject *code) { return code->co_qualname; }
#endif
