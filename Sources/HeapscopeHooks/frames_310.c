// Version layer for CPython 3.10: frames are PyFrameObjects linked by f_back,
// and every Python frame runs in its own C-level call of the eval loop.
#include "cpython.h"
#if PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030B0000
#include <frameobject.h>

void hs_walk_python_stack(hs_thread *t, int which) {
    PyThreadState *tstate = hs_stack_owner(which);
    hs_walk_state w = {0, -1};
    // f_lasti counts code units, -1 before the first instruction.
    for (PyFrameObject *frame = tstate ? tstate->frame : NULL; frame; frame = frame->f_back)
        if (!hs_walk_push(t, &w, frame->f_code, frame->f_lasti, 1)) break;
    hs_walk_finish(t, &w);
}

PyObject *hs_code_qualname(PyCodeObject *code) { return code->co_name; }   // 3.10 has no co_qualname
#endif
