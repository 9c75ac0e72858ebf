# GDB pretty-printers for the weakref library (docs/gdb.md).
#
# Load them with `source <dir>/weakref-gdb.py` (source tree: tools/gdb/,
# installed: <prefix>/share/weakref/gdb/), or from Python:
#
#     import weakref_printers
#     weakref_printers.register_printers(None)    # None: every program
#
# What they print (the text in <...> is exactly what operator<< prints):
#
#     weakref::Strong<Node> (empty)
#     weakref::Strong<Node> <Node object at 0x4172c0> (strong 2, weakrefs 1) = {get() = 0x4172c0}
#     weakref::ref<Node> <weakref at 0x418300; to 'Node' at 0x4172c0> (strong 2, callback) = {...}
#     weakref::ref<Node> <weakref at 0x418300; dead>
#     weakref::proxy<Node> <weakproxy at 0x418340 to Node at 0x4172c0> (strong 2)
#     weakref::WeakMethod<...> <weakref at 0x418380; to 'Node' at 0x4172c0> (strong 2, callback)
#     weakref::finalize <finalize object at 0x4183c0; for 'Node' at 0x4172c0> (alive, atexit)
#     weakref::WeakSet<Node> with 2 elements = {0x4172c0, 0x417320}
#     weakref::WeakValueDictionary<std::string, Node> with 1 entry = {["a"] = 0x4172c0}
#     weakref::WeakKeyDictionary<Node, int> with 1 entry = {[0x4172c0] = 7}
#
# and the convenience function $weakref_get(handle): the referent of a
# Strong / ref / proxy / WeakMethod / finalize as a pointer to its dynamic
# type (null when empty or dead), so that `print *$weakref_get(r)` shows the
# object.
#
# The printers read the library's internal objects from the inferior's
# memory and never call functions in it, so they work on core files and do
# not take the library's locks. Everything about the layout is in the
# "Layout" section below; adding printers for more types is described in
# the "Adding printers" section at the end.

import gdb
import gdb.printing
import gdb.types

# ---------------------------------------------------------------------------
# Layout of the library's internal objects.
#
# Offsets are taken from the program's debug information when it describes
# the type (any program built with -g that uses the header does); the
# numbers below are the fallback for LP64 when it does not (for example a
# program built without -g). tests/gdb checks that both agree; keep them in
# sync with the headers named here.

_LAYOUT = {
    # include/weakref/detail/object.hpp
    "weakref::detail::ObjectHeader": {"word": 0, "type": 8},
    "weakref::detail::TypeInfo": {"type": 24},
    "weakref::detail::SideTable": {"word": 0, "object": 8, "weak": 16, "head": 24},
    # include/weakref/detail/weak_object.hpp (a vtable pointer at 0)
    "weakref::detail::WeakObject": {
        "side": 8, "refs": 16, "kind": 20, "has_callback": 21, "state": 23, "next": 32},
    # include/weakref/finalize.hpp (a WeakObject: the finalizer is its weakref)
    "weakref::detail::FinalizerState": {"registered": 40, "atexit": 41},
    # include/weakref/detail/entry_weak.hpp
    "weakref::detail::EntryWeak": {"offset": 52},
    "weakref::detail::ContainerControl": {"head": 8, "queued_extra": 16},
}

# detail::Segments (segments.hpp): segment s holds kFirst << s entries.
SEG_FIRST_SHIFT = 3
SEG_FIRST = 1 << SEG_FIRST_SHIFT

# The count word (include/weakref/detail/count_word.hpp: HeaderWord, SideWord).
K_SIDE = 1
K_COUNT_AT_SIDE = 1  # detail::kCountAtSide, in Strong::hdr_
K_FROZEN = 2
K_TOUCHED = 4
K_FINALIZED = 8
K_SHARED = 16
COUNT_SHIFT = 32

# detail::WeakKind
WEAK_KINDS = ("ref", "proxy", "method", "finalizer", "container")
# WeakObject::state: the side table holds a reference on it (its "pin");
# SideTable::head, bit 0: the head is the pinned basic ref; bit 1: others;
# bit 2: the side lock is held.
K_WEAK_PINNED = 1
K_HEAD_BITS = 7
# ContainerControl::head (entry_weak.hpp): EntryWeak* | how many it holds
# (up to 7), or the closed queue.
K_QUEUE_COUNT = 7
K_QUEUE_CLOSED = 1

# The object lives right after its 16-byte header (object.hpp).
HEADER_SIZE = 16

_offsets = {}


def _offset(struct, field):
    """Byte offset of `field` in the library type `struct`."""
    key = (struct, field)
    if key not in _offsets:
        _offsets[key] = _dwarf_offset(struct, field)
        if _offsets[key] is None:
            _offsets[key] = _LAYOUT[struct][field]
    return _offsets[key]


def _dwarf_offset(struct, field):
    try:
        t = gdb.lookup_type(struct).strip_typedefs()
        for f in t.fields():
            if f.name == field and not f.is_base_class:
                return f.bitpos // 8
    except (gdb.error, RuntimeError, TypeError):
        pass
    return None


def check_layout():
    """Compares the fallback offsets with the debug information.

    Returns a list of mismatch descriptions (empty: all agree). Types the
    debug information does not describe are reported too, prefixed with
    'unknown:'."""
    problems = []
    for struct, fields in sorted(_LAYOUT.items()):
        for field, default in sorted(fields.items()):
            found = _dwarf_offset(struct, field)
            if found is None:
                problems.append("unknown: %s::%s" % (struct, field))
            elif found != default:
                problems.append("%s::%s is at %d, the printers assume %d"
                                % (struct, field, found, default))
    return problems


# ---------------------------------------------------------------------------
# Reading memory

_uint_types = {}


def _uint(size):
    if size not in _uint_types:
        for name in ("unsigned char", "unsigned short", "unsigned int",
                     "unsigned long", "unsigned long long"):
            t = gdb.lookup_type(name)
            if t.sizeof == size:
                _uint_types[size] = t
                break
    return _uint_types[size]


def _ptr_size():
    return gdb.lookup_type("void").pointer().sizeof


def _read(addr, size):
    """Unsigned integer of `size` bytes at `addr` (target byte order)."""
    return int(gdb.Value(addr).cast(_uint(size).pointer()).dereference())


def _read_signed(addr, size):
    v = _read(addr, size)
    return v - (1 << (8 * size)) if v >> (8 * size - 1) else v


def _read_ptr(addr):
    return _read(addr, _ptr_size())


def _read_cstring(addr, limit=1024):
    inferior = gdb.selected_inferior()
    out = bytearray()
    while len(out) < limit:
        try:
            chunk = bytes(inferior.read_memory(addr + len(out), 64))
        except gdb.MemoryError:
            chunk = bytes(inferior.read_memory(addr + len(out), 1))
        nul = chunk.find(b"\0")
        if nul >= 0:
            out += chunk[:nul]
            break
        out += chunk
    return out.decode("utf-8", "replace")


def _hex(addr):
    return "0x%x" % addr


# ---------------------------------------------------------------------------
# Decoding objects

_demangled = {}


def _demangle_type(mangled):
    """Itanium type mangling ('4Node') -> 'Node', as detail::type_name."""
    if mangled.startswith("*"):  # GCC's mark for a type compared by name
        mangled = mangled[1:]
    if mangled not in _demangled:
        name = mangled
        try:
            out = gdb.execute("demangle -l c++ -- _ZTS" + mangled, to_string=True).strip()
            prefix = "typeinfo name for "
            if out.startswith(prefix):
                name = out[len(prefix):]
        except gdb.error:
            pass
        _demangled[mangled] = name
    return _demangled[mangled]


def _strong_header(val):
    """The object header of a Strong: its hdr_ is the header's address, or
    (bit 0 set) the address of the object's side table, for a Strong made by
    a weak lock (detail::CountRef)."""
    ref = int(val["hdr_"])
    if ref & K_COUNT_AT_SIDE:
        return _read_ptr((ref & ~K_COUNT_AT_SIDE) +
                         _offset("weakref::detail::SideTable", "object"))
    return ref


class Object:
    """A live (or dying) managed object, from the address of its header."""

    def __init__(self, header):
        self.header = header
        self.address = header + HEADER_SIZE
        word = _read(header + _offset("weakref::detail::ObjectHeader", "word"), 8)
        self.side = word & ~K_SIDE if word & K_SIDE else 0
        if self.side:
            word = _read(self.side + _offset("weakref::detail::SideTable", "word"), 8)
        self.count = word >> COUNT_SHIFT
        self.flags = word & ((1 << COUNT_SHIFT) - 1)
        self._type_name = None

    @property
    def type_name(self):
        """The demangled dynamic type ('ns::Node')."""
        if self._type_name is None:
            info = _read_ptr(self.header + _offset("weakref::detail::ObjectHeader", "type"))
            tinfo = _read_ptr(info + _offset("weakref::detail::TypeInfo", "type"))
            # Itanium C++ ABI std::type_info: vtable pointer, then the name.
            self._type_name = _demangle_type(_read_cstring(_read_ptr(tinfo + _ptr_size())))
        return self._type_name

    def weakrefs(self):
        """getweakrefcount: the weakref objects in the object's list that
        someone holds (not a basic ref held only by its side table's pin,
        nor a retired one, which is cleared)."""
        if not self.side:
            return 0
        layout = "weakref::detail::WeakObject"
        n = 0
        seen = set()
        w = _read_ptr(self.side + _offset("weakref::detail::SideTable", "head")) & ~K_HEAD_BITS
        while w and w not in seen and len(seen) < 1000000:
            seen.add(w)
            cleared = _read_ptr(w + _offset(layout, "side")) & 1
            refs = _read(w + _offset(layout, "refs"), 4)
            pinned = _read(w + _offset(layout, "state"), 1) & K_WEAK_PINNED
            if not cleared and refs - pinned > 0:
                n += 1
            w = _read_ptr(w + _offset(layout, "next"))
        return n

    def repr(self):
        """operator<<(Strong): <Node object at 0x...>"""
        return "<%s object at %s>" % (self.type_name, _hex(self.address))

    def state(self):
        parts = ["strong %d" % self.count] if self.count else ["dying"]
        if self.side:
            parts.append("weakrefs %d" % self.weakrefs())
        if self.flags & K_FROZEN:
            parts.append("frozen")
        if self.flags & K_FINALIZED:
            parts.append("finalized")
        if self.flags & K_SHARED:
            parts.append("shared")
        return ", ".join(parts)

    def pointer(self, fallback_type=None):
        """The object's address as a pointer to its dynamic type when gdb
        knows that type, else to `fallback_type` (or void)."""
        try:
            t = gdb.lookup_type(self.type_name)
        except gdb.error:
            t = fallback_type if fallback_type is not None else gdb.lookup_type("void")
        return gdb.Value(self.address).cast(t.pointer())


class Weak:
    """A weakref object (detail::WeakObject), from its address."""

    def __init__(self, address):
        self.address = address
        layout = "weakref::detail::WeakObject"
        side = _read_ptr(address + _offset(layout, "side"))
        self.cleared = bool(side & 1)
        self.side = side & ~3  # bits 0-1: cleared, holds the dead object's unit
        kind = _read(address + _offset(layout, "kind"), 1)
        self.kind = WEAK_KINDS[kind] if kind < len(WEAK_KINDS) else "kind %d" % kind
        # ref::has_callback(), CPython's `__callback__ is not None`: a
        # cleared weakref has none left.
        self.has_callback = (not self.cleared and
                             bool(_read(address + _offset(layout, "has_callback"), 1)))
        self.referent = None  # Object while alive
        if not self.cleared and self.side:
            word = _read(self.side + _offset("weakref::detail::SideTable", "word"), 8)
            if word >> COUNT_SHIFT:
                header = _read_ptr(self.side + _offset("weakref::detail::SideTable", "object"))
                self.referent = Object(header)

    @property
    def alive(self):
        return self.referent is not None

    def repr(self):
        """detail::write_weak, the text of operator<< for ref/proxy/WeakMethod."""
        proxy = self.kind == "proxy"
        if not self.alive:
            return "<%s at %s; dead>" % ("weakproxy" if proxy else "weakref", _hex(self.address))
        r = self.referent
        if proxy:
            return "<weakproxy at %s to %s at %s>" % (
                _hex(self.address), r.type_name, _hex(r.address))
        return "<weakref at %s; to '%s' at %s>" % (
            _hex(self.address), r.type_name, _hex(r.address))

    def state(self):
        parts = []
        if self.alive:
            parts.append("strong %d" % self.referent.count)
        if self.has_callback:
            parts.append("callback")
        return ", ".join(parts)


class Finalizer:
    """A detail::FinalizerState (weakref::finalize), from its address. It is
    its own weakref object (a WeakObject at the same address)."""

    def __init__(self, address):
        layout = "weakref::detail::FinalizerState"
        self.address = address
        self.alive = bool(_read(address + _offset(layout, "registered"), 1))
        self.atexit = bool(_read(address + _offset(layout, "atexit"), 1))
        self.weak = Weak(address) if self.alive else None

    def repr(self):
        """detail::finalizer_write, the text of operator<<."""
        if self.weak is not None and self.weak.alive:
            r = self.weak.referent
            return "<finalize object at %s; for '%s' at %s>" % (
                _hex(self.address), r.type_name, _hex(r.address))
        return "<finalize object at %s; dead>" % _hex(self.address)

    def state(self):
        if not self.alive:
            return ""
        return "alive, atexit" if self.atexit else "alive"


# ---------------------------------------------------------------------------
# Printers of the public handles

def _type_name(val):
    return str(gdb.types.get_basic_type(val.type))


def _with_state(text, state):
    return "%s (%s)" % (text, state) if state else text


def _guard(method):
    """A printer must not throw on garbage (uninitialized variables)."""
    def wrapper(self):
        try:
            return method(self)
        except (gdb.MemoryError, gdb.error, OverflowError) as e:
            return "%s <unreadable: %s>" % (_type_name(self.val), e)
    return wrapper


class StrongPrinter:
    """weakref::Strong<T>: the object, its dynamic type and its counts."""

    def __init__(self, val):
        self.val = val

    def header(self):
        return _strong_header(self.val)

    @_guard
    def to_string(self):
        name = _type_name(self.val)
        if not self.header():
            return name + " (empty)"
        obj = Object(self.header())
        return "%s %s (%s)" % (name, obj.repr(), obj.state())

    def children(self):
        if self.header():
            yield "get()", self.val["ptr_"]


class _WeakHandlePrinter:
    """ref<T>, proxy<T>, WeakMethod<P>: one weakref object (or none)."""

    def __init__(self, val):
        self.val = val

    def weak(self):
        w = int(self.val["w_"])
        return Weak(w) if w else None

    @_guard
    def to_string(self):
        w = self.weak()
        name = _type_name(self.val)
        if w is None:
            return name + " (empty)"
        return "%s %s" % (name, _with_state(w.repr(), w.state()))

    def referent(self, w):
        """The referent as a typed pointer: the handle's own T* when set."""
        ptr = self.val["ptr_"]
        if int(ptr):
            return ptr
        return w.referent.pointer(ptr.type.target())

    def children(self):
        try:
            w = self.weak()
            if w is not None and w.alive:
                yield "referent", self.referent(w)
        except gdb.MemoryError:
            pass  # garbage (uninitialized): to_string says so


class RefPrinter(_WeakHandlePrinter):
    """weakref::ref<T>"""


class ProxyPrinter(_WeakHandlePrinter):
    """weakref::proxy<T>"""


class WeakMethodPrinter(_WeakHandlePrinter):
    """weakref::WeakMethod<Pmf>: also shows the member function."""

    def children(self):
        yield from super().children()
        if int(self.val["w_"]):
            yield "function", self.val["pmf_"]


class FinalizePrinter:
    """weakref::finalize"""

    def __init__(self, val):
        self.val = val

    @_guard
    def to_string(self):
        s = int(self.val["s_"])
        name = _type_name(self.val)
        if not s:
            return name + " (empty)"
        f = Finalizer(s)
        return "%s %s" % (name, _with_state(f.repr(), f.state()))


# ---------------------------------------------------------------------------
# Weak containers: WeakSet<T>, WeakValueDictionary<K, V>, WeakKeyDictionary<K, V>
#
# Each holds a detail::WeakTable `table_`: entries in insertion order, in
# segments that never move; an entry's first word `w` is 0 (free), odd
# (removed) or its EntryWeak*; its payload `p.value` is the WVD's key or the
# WKD's value. The printers show the entries whose referent is alive, in
# iteration order, and size() as the container computes it (entries whose
# death is queued but not yet drained do not count).

def _type_text(t):
    """A type's name, shortened by the registered type printers (std::string)."""
    try:
        name = gdb.types.apply_type_recognizers(gdb.types.get_type_recognizers(), t)
        if name:
            return name
    except (gdb.error, RuntimeError, AttributeError):
        pass
    return str(t)


def _vector_data(vec):
    """(pointer to the first element, size) of a std::vector (libstdc++ or libc++)."""
    for begin, end in (("_M_start", "_M_finish"), ("__begin_", "__end_")):
        try:
            impl = vec["_M_impl"] if begin == "_M_start" else vec
            first, last = impl[begin], impl[end]
            return first, int(last - first)
        except gdb.error:
            continue
    raise gdb.error("unknown std::vector layout")


def _count(n, singular, plural):
    return "%d %s" % (n, singular if n == 1 else plural)


class _WeakContainerPrinter:
    template = None       # "WeakSet", ...
    referent_arg = 0      # template argument: the weakly held type
    name_args = 1         # template arguments shown in the name
    has_payload = True

    def __init__(self, val):
        self.val = val
        self.type = gdb.types.get_basic_type(val.type)

    def name(self):
        args = ", ".join(_type_text(self.type.template_argument(i))
                         for i in range(self.name_args))
        return "weakref::%s<%s>" % (self.template, args)

    def size(self):
        """WeakTable::size(): live entries minus the deaths not yet drained
        (those queued: the count in the queue head's low bits, plus
        queued_extra). A death in flight in the stopped thread's ~T, not
        queued yet, is still counted here."""
        table = self.val["table_"]
        ctrl = int(table["ctrl_"])
        queued = 0
        if ctrl:
            cc = "weakref::detail::ContainerControl"
            head = _read_signed(ctrl + _offset(cc, "head"), 8) & 0xFFFFFFFFFFFFFFFF
            queued = (0 if head == K_QUEUE_CLOSED else head & K_QUEUE_COUNT) + \
                _read_signed(ctrl + _offset(cc, "queued_extra"), 8)
        return max(int(table["live_"]) - (queued - int(table["dead_settled_"])), 0)

    def entries(self):
        """(referent as a T*, payload or None) of the live entries, in order."""
        table = self.val["table_"]
        used = int(table["used_"])
        segs = table["segs_"]
        # Segments<E>::base_[s]: segment s's address less its first entry's
        # index times sizeof(E) (segments.hpp), so entry i is at
        # base_[s] + i * sizeof(E).
        entry_type = gdb.types.get_basic_type(segs.type).template_argument(0)
        bases, count = _vector_data(segs["base_"])
        referent_type = self.type.template_argument(self.referent_arg)
        for i in range(used):
            u = i + SEG_FIRST
            seg = u.bit_length() - SEG_FIRST_SHIFT - 1
            if seg >= count:
                break
            address = (int((bases + seg).dereference()) + i * entry_type.sizeof) % (1 << 64)
            entry = gdb.Value(address).cast(entry_type.pointer()).dereference()
            w = int(entry["w"])
            if w == 0 or w & 1:
                continue  # free, or removed
            weak = Weak(w)
            if not weak.alive:
                continue  # dead, its removal not drained yet
            delta = _read_signed(w + _offset("weakref::detail::EntryWeak", "offset"), 4)
            referent = gdb.Value(weak.referent.address + delta).cast(referent_type.pointer())
            yield referent, (self.payload(entry) if self.has_payload else None)

    def payload(self, entry):
        """entry.p.value; clang may describe PayloadSlot<P> as incomplete
        (its constructor is never emitted), so fall back to p's offset."""
        try:
            return entry["p"]["value"]
        except gdb.error:
            pass
        for f in entry.type.strip_typedefs().fields():
            if f.name == "p":
                payload_type = self.type.template_argument(self.payload_arg)
                address = int(entry.address) + f.bitpos // 8
                return gdb.Value(address).cast(payload_type.pointer()).dereference()
        raise gdb.error("no payload in " + str(entry.type))

    @_guard
    def to_string(self):
        return "%s with %s" % (self.name(), _count(self.size(), *self.noun))

    def children(self):
        try:
            for i, (referent, payload) in enumerate(self.entries()):
                yield from self.entry_children(i, referent, payload)
        except gdb.MemoryError:
            return  # garbage (uninitialized): show what was readable


class WeakSetPrinter(_WeakContainerPrinter):
    """weakref::WeakSet<T>: its elements, as T*."""
    template = "WeakSet"
    noun = ("element", "elements")
    has_payload = False

    def display_hint(self):
        return "array"

    def entry_children(self, i, referent, payload):
        yield "[%d]" % i, referent


class WeakValueDictionaryPrinter(_WeakContainerPrinter):
    """weakref::WeakValueDictionary<K, V>: key -> V*."""
    template = "WeakValueDictionary"
    noun = ("entry", "entries")
    referent_arg = 1
    payload_arg = 0
    name_args = 2

    def display_hint(self):
        return "map"

    def entry_children(self, i, referent, payload):
        yield "key[%d]" % i, payload
        yield "value[%d]" % i, referent


class WeakKeyDictionaryPrinter(WeakValueDictionaryPrinter):
    """weakref::WeakKeyDictionary<K, V>: K* -> value."""
    template = "WeakKeyDictionary"
    referent_arg = 0
    payload_arg = 1

    def entry_children(self, i, referent, payload):
        yield "key[%d]" % i, referent
        yield "value[%d]" % i, payload


# ---------------------------------------------------------------------------
# $weakref_get(handle)

def referent_of(val):
    """The referent of a Strong / ref / proxy / WeakMethod / finalize value
    as a pointer to its dynamic type, or None when empty or dead."""
    val = val.referenced_value() if val.type.code in (gdb.TYPE_CODE_REF,
                                                      gdb.TYPE_CODE_RVALUE_REF) else val
    name = _type_name(val)
    if name.startswith("weakref::Strong<"):
        h = _strong_header(val)
        return Object(h).pointer(val["ptr_"].type.target()) if h else None
    if name == "weakref::finalize":
        s = int(val["s_"])
        f = Finalizer(s) if s else None
        if f is None or f.weak is None or not f.weak.alive:
            return None
        return f.weak.referent.pointer()
    for prefix in ("weakref::ref<", "weakref::proxy<", "weakref::WeakMethod<"):
        if name.startswith(prefix):
            w = int(val["w_"])
            weak = Weak(w) if w else None
            if weak is None or not weak.alive:
                return None
            return weak.referent.pointer(val["ptr_"].type.target())
    raise gdb.GdbError("$weakref_get: not a weakref handle: " + name)


class _GetFunction(gdb.Function):
    """$weakref_get(handle): the referent of a weakref::Strong, ref, proxy,
WeakMethod or finalize, as a pointer to the object's dynamic type (a null
pointer when the handle is empty or its referent dead).
Example: print *$weakref_get(r)"""

    def __init__(self):
        super().__init__("weakref_get")

    def invoke(self, val):
        p = referent_of(val)
        if p is None:
            return gdb.Value(0).cast(gdb.lookup_type("void").pointer())
        return p


_GetFunction()

# ---------------------------------------------------------------------------
# Adding printers
#
# Every printer lives in one collection, named "weakref", with one entry per
# type (`info pretty-printer` lists them; `disable pretty-printer global
# weakref;ref` turns one off). To add a printer, write a class with
# to_string() (and children() / display_hint() for a container: see
# https://sourceware.org/gdb/current/onlinedocs/gdb.html/Pretty-Printing-API.html),
# reuse Object / Weak / _WeakContainerPrinter above, and append a line to
# _PRINTERS below -- or, from outside this file:
#
#     weakref_printers.add_printer("Thing", "^weakref::Thing<.*>$", ThingPrinter)
#
# Printers added after register_printers() are seen too (the collection is
# shared).

_PRINTERS = [
    # (name, regexp on the type's tag, printer class)
    ("Strong", r"^weakref::Strong<.*>$", StrongPrinter),
    ("ref", r"^weakref::ref<.*>$", RefPrinter),
    ("proxy", r"^weakref::proxy<.*>$", ProxyPrinter),
    ("WeakMethod", r"^weakref::WeakMethod<.*>$", WeakMethodPrinter),
    ("finalize", r"^weakref::finalize$", FinalizePrinter),
    ("WeakSet", r"^weakref::WeakSet<.*>$", WeakSetPrinter),
    ("WeakValueDictionary", r"^weakref::WeakValueDictionary<.*>$", WeakValueDictionaryPrinter),
    ("WeakKeyDictionary", r"^weakref::WeakKeyDictionary<.*>$", WeakKeyDictionaryPrinter),
]

_collection = None


def build_pretty_printer():
    """The "weakref" printer collection (made once, shared)."""
    global _collection
    if _collection is None:
        _collection = gdb.printing.RegexpCollectionPrettyPrinter("weakref")
        for name, regexp, cls in _PRINTERS:
            _collection.add_printer(name, regexp, cls)
    return _collection


def add_printer(name, regexp, cls):
    """Adds a printer for the types whose tag matches `regexp`."""
    build_pretty_printer().add_printer(name, regexp, cls)


def register_printers(objfile=None):
    """Registers the printers for `objfile` (None: for every program)."""
    gdb.printing.register_pretty_printer(objfile, build_pretty_printer(), replace=True)
