// weakref::by_identity and weakref::by_value: how WeakKeyDictionary keys and
// WeakSet elements are compared, the third template argument of
// WeakKeyDictionary<K, V, KeyPolicy> and the second of WeakSet<T, KeyPolicy>.
//
//     weakref::WeakSet<Node> nodes;                     // the same object
//     weakref::WeakSet<Name, weakref::by_value<>> names;  // equal referents
//
// Python compares the keys of a WeakKeyDictionary and the elements of a
// WeakSet with the referents' __hash__ and __eq__, whose default for a class
// is identity. by_identity is that default; by_value is a class that defines
// both (docs/python-mapping.md, "Weak containers").
#pragma once

namespace weakref {

/// Key policy: two keys are the same key when they are the same object,
/// whatever the static type of the Strong<> that names them (Python's
/// behaviour for classes without `__eq__`/`__hash__`). The default of
/// WeakKeyDictionary and WeakSet. Lookups run no user code, and a key's
/// hash (its object's address) stays valid after the object dies.
struct by_identity {};

/// Key policy: keys hash and compare by the referents' values, as Python
/// does for classes that define `__hash__` and `__eq__`.
///
/// @tparam Hash     the hash of a `const K&`; `void` means `std::hash<K>`.
/// @tparam KeyEqual the equality of two `const K&`; `void` means
///                  `std::equal_to<K>`.
///
/// The hash is computed once, when the key is inserted (as a CPython weakref
/// caches its referent's hash): lookups stay correct after other keys die,
/// and a key whose value changes later is found by its old hash only. With
/// this policy, lookups (`at`, `contains`, `erase`, `remove`, `discard`) also
/// accept a plain `const K&`: any equal value finds the key. Hash must not
/// use the container; KeyEqual may (even drop the last reference to another
/// key): a lookup starts again when the table changed meanwhile.
template <class Hash = void, class KeyEqual = void>
struct by_value {};

}  // namespace weakref
