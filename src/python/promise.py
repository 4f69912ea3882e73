# What an async host function gives Python (module `_pybridge_promise`, made
# by src/python/promise.rs): a result the host delivers later, from any
# thread, through pyb_promise_resolve or pyb_promise_reject. Awaitable on any
# running event loop, by any number of coroutines; the host's completion
# reaches each awaiting loop with call_soon_threadsafe, so no awaiter runs on
# the host's thread. When the last coroutine awaiting it is cancelled before
# the host completed it, `cancelled(id)` (pybridge) tells the host.

import asyncio
import threading

PENDING, RESOLVED, REJECTED = 0, 1, 2


class HostPromise:
    __slots__ = ('_id', '_cancelled', '_lock', '_state', '_value', '_waiters', '__weakref__')

    def __init__(self, promise_id, cancelled):
        self._id = promise_id
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self._state = PENDING
        self._value = None
        self._waiters = []

    def __repr__(self):
        state = ('pending', 'resolved', 'rejected')[self._state]
        return f'<pybridge host promise {self._id} {state}>'

    def done(self):
        return self._state != PENDING

    def _complete(self, state, value):
        """Called by pybridge, with the GIL, on the host's thread: once."""
        with self._lock:
            if self._state != PENDING:
                return False
            self._state, self._value = state, value
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(self._settle, future)
            except RuntimeError:
                pass  # that loop is closed: nothing awaits there any more
        return True

    def _settle(self, future):
        if future.done():
            return
        if self._state == RESOLVED:
            future.set_result(self._value)
        else:
            future.set_exception(self._value)

    def __await__(self):
        if self._state == PENDING:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            with self._lock:
                if self._state == PENDING:
                    self._waiters.append((loop, future))
            if self._state != PENDING:
                self._settle(future)
            try:
                return (yield from future.__await__())
            except asyncio.CancelledError:
                with self._lock:
                    self._waiters = [w for w in self._waiters if w[1] is not future]
                    tell = self._state == PENDING and not self._waiters
                if tell:
                    self._cancelled(self._id)
                raise
        if self._state == RESOLVED:
            return self._value
        raise self._value
