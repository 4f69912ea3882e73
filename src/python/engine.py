# The engine's helper module in the main interpreter (`_pybridge_engine`,
# made by src/python/interpreter.rs at start): the virtual environment and
# paths from pyb_config, the re-import guard, and the watch on os.fork().

# Made by pybridge before this module (src/python/interrupts.rs), so the
# import finds it in sys.modules; kept here under its public name.
from _pybridge_interrupts import ShutdownInterrupt

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

# True while os.fork() (PyOS_BeforeFork to PyOS_AfterFork_*) is under way:
# src/python/fork.rs then leaves CPython's fork protocol to it.
python_forking = False

def _python_fork_started():
    global python_forking
    python_forking = True

def _python_fork_ended():
    global python_forking
    python_forking = False

def watch_python_forks():
    import os
    if not hasattr(os, "register_at_fork"):
        return  # Windows: no fork (CPython 3.12, 3.13)
    os.register_at_fork(before=_python_fork_started, after_in_parent=_python_fork_ended,
                        after_in_child=_python_fork_ended)

def initialized_hazards():
    import sys
    if reinit_guard is None:
        return []
    return sorted(reinit_guard.seen | (reinit_guard.hazards & set(sys.modules)))
