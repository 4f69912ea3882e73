# The engine's helper module in the main interpreter (`_pybridge_engine`,
# made by src/python/interpreter.rs at start): the virtual environment and
# paths from pyb_config, the re-import guard, and the watch on os.fork().

# Made by pybridge before this module (src/python/interrupts.rs), so the
# import finds it in sys.modules; kept here under its public name.
from _pybridge_interrupts import ShutdownInterrupt
from _thread import get_ident as _get_ident

def extend_path(virtual_env, paths):
    import os, site, sys
    if virtual_env:
        version = 'python%d.%d' % sys.version_info[:2]
        for candidate in (os.path.join(virtual_env, 'lib', version, 'site-packages'),
                          os.path.join(virtual_env, 'Lib', 'site-packages')):
            if os.path.isdir(candidate):
                site.addsitedir(candidate)
                break
        else:
            raise FileNotFoundError('no site-packages under virtual environment ' + virtual_env)
    sys.path[0:0] = list(paths)

class ReinitGuard:
    'Refuses extension modules CPython crashes re-initializing (src/python/reinit_guard.rs).'
    def __init__(self, hazards, refused, message):
        self.hazards = frozenset(hazards)
        self.refused = frozenset(refused)
        self.message = message
        self.seen = set()

    def find_spec(self, name, path=None, target=None):
        if name in self.refused:
            raise ImportError(self.message % name, name=name)
        if name in self.hazards:
            self.seen.add(name)
        return None

reinit_guard = None

def guard_reimports(hazards, refused, message):
    global reinit_guard
    import sys
    reinit_guard = ReinitGuard(hazards, refused, message)
    sys.meta_path.insert(0, reinit_guard)

# The threads (`_thread.get_ident()`) inside os.fork(), from its
# PyOS_BeforeFork to its PyOS_AfterFork_*: src/python/fork.rs leaves CPython's
# fork protocol to os.fork() on those threads. A set, because these hooks run
# for every thread's fork, pybridge's own protocol included, and forks on
# several threads can overlap.
python_forking = set()

def _python_fork_started():
    python_forking.add(_get_ident())

def _python_fork_ended_in_parent():
    python_forking.discard(_get_ident())

def _python_fork_ended_in_child():
    python_forking.clear()  # the forking thread is the child's only one

def watch_python_forks():
    import os
    if not hasattr(os, 'register_at_fork'):
        return  # no fork() here (Windows)
    os.register_at_fork(before=_python_fork_started,
                        after_in_parent=_python_fork_ended_in_parent,
                        after_in_child=_python_fork_ended_in_child)

def initialized_hazards():
    import sys
    if reinit_guard is None:
        return []
    return sorted(reinit_guard.seen | (reinit_guard.hazards & set(sys.modules)))
