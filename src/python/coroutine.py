# pybridge's asyncio event loop (module `_pybridge_asyncio`, made by
# src/python/coroutine.rs). Host threads never call into this loop: they hand
# their work to pybridge (Rust), which queues it and wakes the loop through a
# pipe of its own (a socket pair where the selector watches only sockets). The
# loop takes the work with `take`, which also empties that pipe. So no host thread runs
# Python code after the hand-over, and none writes into the loop's self-pipe
# while the loop closes it (SIGPIPE, exit 141).

import asyncio
import threading

# The phases `take` reports (src/python/coroutine.rs, `Phase::code`).
RUN, STOP, FORCE, STALE = 0, 1, 2, 3


class Runner:
    """One event loop on its own daemon thread, for one engine life.

    `attempt` says which start this is: a thread whose start the host saw
    fail is told it is stale and ends before it runs anything.
    """

    def __init__(self, hooks, wake_fd, attempt):
        self._complete, self._attach, self._take, self._detach = hooks
        self._wake_fd = wake_fd
        self._attempt = attempt
        self._tasks = {}
        self._stopping = False
        self._stopped = False
        self._loop = None
        self._thread = threading.Thread(target=self._run, name='pybridge-asyncio', daemon=True)
        self._thread.start()

    def join(self, timeout):
        """Waits up to `timeout` seconds for the thread to end; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self):
        if not self._attach(self, self._attempt):
            return
        try:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.add_reader(self._wake_fd, self._wake)
            except NotImplementedError:
                # A loop without `add_reader` (the proactor, asyncio's default
                # on Windows): a selector loop instead, which has it.
                self._loop.close()
                self._loop = asyncio.SelectorEventLoop()
                self._loop.add_reader(self._wake_fd, self._wake)
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(self._wake)
            # Only pybridge ends this loop: a task that calls `loop.stop()`
            # returns from `run_forever`, and one that raises SystemExit or
            # KeyboardInterrupt raises out of it (asyncio re-raises them after
            # failing the task, whose callback then reports the exception;
            # checked on 3.11.7, 3.12.1, 3.13.0); an interrupting shutdown's
            # SystemExit lands here too. Each time the loop runs on.
            while not self._stopped:
                try:
                    self._loop.run_forever()
                except BaseException:
                    pass
        finally:
            self._close()

    def _close(self):
        try:
            if self._loop is not None:
                self._loop.remove_reader(self._wake_fd)
                # asyncio's own worker threads (to_thread, getaddrinfo) wake
                # the loop through its self-pipe: close the writing end first,
                # so a late one gets an OSError (which asyncio ignores) rather
                # than a write into a socket whose reader is gone (SIGPIPE).
                # `_csock` is its name, and `_write_to_self` guards against it
                # being closed (checked on 3.10.13, 3.11.7, 3.12.1, 3.13.0).
                writer = getattr(self._loop, '_csock', None)
                if writer is not None:
                    writer.close()
                self._loop.close()
        finally:
            # pybridge closes the wake-up pipe, under the lock its writers take.
            self._detach(self._attempt)

    def _wake(self):
        work, phase = self._take(self._attempt)
        for task_id, awaitable in work:
            if awaitable is None:
                self._cancel(task_id)
            else:
                self._start(task_id, awaitable)
        if phase == STOP and not self._stopping:
            self._stop()
        elif phase == FORCE or phase == STALE:
            # A task swallows its cancellation: stop the loop under it.
            self._stopped = True
            self._loop.stop()

    def _start(self, task_id, awaitable):
        try:
            task = asyncio.ensure_future(awaitable, loop=self._loop)
        except BaseException as error:
            failed = self._loop.create_future()
            failed.set_exception(error)
            self._complete(task_id, failed, False)
            return
        self._tasks[task_id] = task
        task.add_done_callback(lambda done: self._done(task_id, done))

    def _done(self, task_id, task):
        self._tasks.pop(task_id, None)
        self._complete(task_id, task, self._stopping)

    def _cancel(self, task_id):
        task = self._tasks.get(task_id)
        if task is not None:
            task.cancel()

    def _stop(self):
        self._stopping = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            waiter = asyncio.gather(*tasks, return_exceptions=True)
            waiter.add_done_callback(lambda _: self._end())
        else:
            self._end()

    def _end(self):
        self._stopped = True
        self._loop.stop()
