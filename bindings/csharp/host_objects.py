"""Host objects of the C# binding: how Python sees a .NET object handed to it.

Run once per interpreter by bindings/csharp/HostObjects.cs as the module
``_pybridge_dotnet``. ``equals`` and ``hash_of`` are host functions (module
``_pybridge_dotnet_host``) that call the objects' .NET ``Equals`` and
``GetHashCode`` (main interpreter only).
"""

import weakref

try:
    from _pybridge_dotnet_host import equals, hash_of
except ImportError:
    # A sub-interpreter: host functions exist in the main interpreter only, so
    # equality there is identity (one HostObject per .NET object still holds).
    equals = hash_of = None


class HostObject:
    """A .NET object: the same one is the same HostObject while Python holds it
    (``is`` holds), ``repr`` names its .NET type, ``==`` and ``hash`` follow its
    ``Equals`` and ``GetHashCode``. Dropping the last reference lets .NET's GC
    have the object."""

    __slots__ = ("_capsule", "_type", "__weakref__")

    def __repr__(self):
        return f"<.NET {self._type} object at {id(self):#x}>"

    def __eq__(self, other):
        if not isinstance(other, HostObject):
            return NotImplemented
        if equals is None:
            return self is other
        return equals(self._capsule, other._capsule)

    def __hash__(self):
        if hash_of is None:
            return object.__hash__(self)
        return hash_of(self._capsule)


# The HostObject of each .NET object Python holds, by the binding's key for it.
_live = weakref.WeakValueDictionary()


def lookup(key):
    """The HostObject Python holds for ``key``, or None."""
    return _live.get(key)


def wrap(key, capsule, type_name):
    """The HostObject for ``key``: the one Python holds, else a new one around
    ``capsule`` (made on another thread at the same time, only one is kept)."""
    existing = _live.get(key)
    if existing is not None:
        return existing
    made = HostObject.__new__(HostObject)
    made._capsule = capsule
    made._type = type_name
    _live[key] = made
    return made


def capsule_of(obj):
    """The capsule of a HostObject, or None for any other object."""
    return obj._capsule if type(obj) is HostObject else None
