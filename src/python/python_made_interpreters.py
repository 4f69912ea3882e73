"""What keeps an engine shutdown from ending the interpreters that Python code
made (PEP 734: concurrent.interpreters, InterpreterPoolExecutor; 3.14+).

Py_FinalizeEx ends those interpreters itself (with a RuntimeWarning) and
copes with idle ones; it waits for an InterpreterPoolExecutor's queued work
(its atexit hook joins the workers). Only flags are read here, never an
interpreter entered: an _interpreters.exec() probe into an executor worker's
interpreter crashed CPython 3.14.10 (SIGSEGV in its allocator). So a thread
started *inside* such an interpreter goes unseen; Py_FinalizeEx waits for it.
Checked with the main GIL held, before the point of no return.
"""
import sys


def _queued_executor_work():
    thread = sys.modules.get('concurrent.futures.thread')
    if thread is None:
        return 0
    queued = 0
    for worker, queue in list(thread._threads_queues.items()):
        args = getattr(worker, '_args', ())
        context = args[1] if len(args) > 1 else None
        if type(context).__module__ == 'concurrent.futures.interpreter':
            queued += queue.qsize()
    return queued


def _running():
    """The id of a Python-made interpreter that runs code now, else None."""
    interpreters = sys.modules.get('_interpreters')
    stdlib = getattr(interpreters, 'WHENCE_STDLIB', None)
    if stdlib is None:
        return None
    for id, whence in interpreters.list_all():
        if whence != stdlib:
            continue  # the main one, or made through the C API (pybridge's own)
        try:
            if interpreters.is_running(id, restrict=True):
                return id
        except Exception:
            pass  # closed meanwhile
    return None


def blocker():
    """None when Py_FinalizeEx can end every Python-made interpreter now;
    else what stops it, for the shutdown's message."""
    running = _running()
    if running is not None:
        return (f"an interpreter made by Python code (concurrent.interpreters, id {running}) "
                "is running code; let it finish or close it")
    queued = _queued_executor_work()
    if queued:
        return (f"an InterpreterPoolExecutor has {queued} queued work item(s), which "
                "Py_FinalizeEx would wait for; shut it down (cancel_futures=True) first")
    return None


def is_running():
    """True while a Python-made interpreter runs code (no exception can reach it)."""
    return _running() is not None
