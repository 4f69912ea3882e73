# The import guard of sub-interpreters with their own GIL (see OWN_GIL_GUARD
# in src/python/subinterpreter.rs for why each module is refused).

import sys

class PybridgeSubinterpreterGuard:
    if sys.version_info[:2] == (3, 12):
        crash = ('_asyncio', '_hashlib', '_ssl', '_zoneinfo')
        single_phase = ('_ctypes', '_curses', '_curses_panel', '_datetime', '_decimal',
                        '_elementtree', '_lsprof', '_tkinter', 'nis', 'ossaudiodev', 'pyexpat',
                        'readline')
    else:
        # `_zoneinfo` needs `_datetime`'s C API, which `_pydatetime` lacks.
        crash = ('_datetime', '_zoneinfo')
        single_phase = ()
    version = '%d.%d' % sys.version_info[:2]

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in cls.single_phase:
            raise ImportError(
                f'module {name} does not support loading in subinterpreters (refused '
                f'by pybridge before CPython {cls.version} runs its init, which crashes the '
                'process once done twice)', name=name)
        if name in cls.crash:
            raise ImportError(
                f'pybridge refuses {name} in sub-interpreters with their own GIL on '
                f'CPython {cls.version}: using it there can crash the process (a CPython '
                f'{cls.version} bug). Use a shared-GIL interpreter '
                '(PYB_INTERPRETER_SHARED_GIL) or the main interpreter for it.',
                name=name)
        return None

sys.meta_path.insert(0, PybridgeSubinterpreterGuard)
