# Pending results (module `_pybridge_pending`, made by src/python/pending.rs):
# awaitables a host function returns before its result exists, which the host
# completes later from any thread (pyb_pending_resolve, pyb_pending_reject).
#
# Every method runs with the GIL held and none gives it away before its state
# is written, so the GIL orders them: no lock of its own.

import asyncio
import sys

PENDING, DONE, CANCELLED = 'pending', 'done', 'cancelled'


def _host_error(message):
    """The exception a host function's failure raises: pybridge.HostError
    where the host registered functions in this interpreter, else RuntimeError."""
    kind = getattr(sys.modules.get('pybridge'), 'HostError', RuntimeError)
    return kind(message)


class PendingResult:
    """A host's result that is not there yet: `await` it.

    The host completes it once, from any thread; a coroutine awaiting it
    resumes on its own event loop. Cancelling the awaiting task before the
    result came tells the host (its on_cancel), and the host's completion is
    then refused. Completed before anyone awaits it, an await returns (or
    raises) at once.
    """

    __slots__ = ('_state', '_outcome', '_future', '_host', '_on_cancel')

    def __init__(self, host, on_cancel):
        self._state = PENDING
        self._outcome = None  # (True, value) or (False, exception)
        self._future = None
        self._host = host  # the host's callbacks and user data (a capsule)
        self._on_cancel = on_cancel

    def __repr__(self):
        return f'<pybridge.PendingResult {self._state}>'

    def _complete(self, ok, value):
        """pybridge: the host's outcome; says what became of it."""
        if self._state != PENDING:
            return self._state
        self._state = DONE
        self._outcome = (ok, value if ok else _host_error(value))
        future = self._future
        if future is not None:
            try:
                future.get_loop().call_soon_threadsafe(self._settle, future)
            except RuntimeError:
                pass  # its loop is closed: nobody is waiting any more
        return 'ok'

    def _settle(self, future):
        if not future.done():
            ok, value = self._outcome
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _done(self, future):
        if future.cancelled() and self._state == PENDING:
            self._state = CANCELLED
            self._on_cancel(self._host)

    def __await__(self):
        if self._future is None:
            if self._state == DONE:
                ok, value = self._outcome
                if ok:
                    return value
                raise value
            if self._state == CANCELLED:
                raise asyncio.CancelledError()
            self._future = asyncio.get_running_loop().create_future()
            self._future.add_done_callback(self._done)
        return (yield from self._future)
