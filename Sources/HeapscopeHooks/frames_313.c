// Version layer for CPython 3.13: _PyInterpreterFrames linked by `previous`,
// the innermost at tstate->current_frame; the code object is f_executable and
// instr_ptr points at the instruction being executed.
#include "cpython.h"
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
#include <internal/pycore_frame.h>

void hs_walk_python_stack(hs_thread *t, int which) {
    PyThreadState *tstate = hs_stack_owner(which);
    hs_walk_state w = {0, -1};
    for (_PyInterpreterFrame *frame = tstate ? tstate->current_frame : NULL; frame; frame = frame->previous) {
        // Each C-level eval call pushes a shim frame owned by the C stack (its
        // f_executable is None); it marks where that call began.
        if (frame->owner == FRAME_OWNED_BY_CSTACK || !PyCode_Check(frame->f_executable)) continue;
        int entry = !frame->previous || frame->previous->owner == FRAME_OWNED_BY_CSTACK;
        // Only the innermost frame can be incomplete (in its prologue).
        if (w.depth == 0 && _PyFrame_IsIncomplete(frame)) continue;
        PyCodeObject *code = (PyCodeObject *)frame->f_executable;
        if (!hs_walk_push(t, &w, code, frame->instr_ptr - _PyCode_CODE(code), entry)) break;
    }
    hs_walk_finish(t, &w);
}

PyObject *hs_code_qualname(PyCodeObject *code) { return code->co_qualname; }
#endif
