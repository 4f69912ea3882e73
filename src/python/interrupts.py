# What a shutdown with PYB_SHUTDOWN_INTERRUPT needs from Python in each
# interpreter it interrupts (module `_pybridge_interrupts`, made by
# src/python/interrupts.rs): the exception it raises in host threads, and the
# interpreter's own Python threads, in which it raises SystemExit instead.
# Made in a sub-interpreter only when a shutdown interrupts there (CPython
# 3.12 and 3.13 keep an own-GIL interpreter's allocator arenas after it ends,
# so whatever pybridge made in every interpreter would stay behind).

import sys


class ShutdownInterrupt(BaseException):
    'Raised in host threads running Python by a shutdown with PYB_SHUTDOWN_INTERRUPT.'



def python_threads():
    """(ident, native_id, name, daemon) of each live `threading` thread but
    the main one and host (dummy) threads. `threading` is looked up, never
    imported: an interpreter that never imported it started no such thread."""
    t = sys.modules.get('threading')
    if t is None:
        return []
    main = t.main_thread()
    return [
        (x.ident, x.native_id, x.name, x.daemon)
        for x in t.enumerate()
        if x is not main and not isinstance(x, t._DummyThread) and x.is_alive()
    ]
