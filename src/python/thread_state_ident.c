/*
 * The thread ident (threading.get_ident()) a thread state was made on.
 *
 * CPython has no public function for it, and the field sits in the struct
 * CPython's own headers lay out (Include/cpython/pystate.h, `thread_id`, on
 * 3.10 to 3.13), so it is read here, compiled against the build's headers,
 * rather than by guessing the layout in Rust. The interrupting shutdown needs
 * it to find a thread's innermost frame without sys._current_frames(), which
 * crashes CPython 3.12 when another interpreter runs (docs/CPYTHON-NOTES.md,
 * "Interrupting threads").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

__attribute__((visibility("hidden"))) unsigned long pybridge_thread_state_ident(PyThreadState *state) {
    return state->thread_id;
}
