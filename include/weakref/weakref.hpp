// Everything: #include <weakref/weakref.hpp>.
#pragma once

#include "errors.hpp"
#include "finalize.hpp"
#include "forensics.hpp"
#include "gc.hpp"
#include "getweakrefs.hpp"
#include "key_policy.hpp"
#include "proxy.hpp"
#include "ref.hpp"
#include "reference_queue.hpp"
#include "strong.hpp"
#include "unraisable.hpp"
#include "version.hpp"
#include "weak_key_dictionary.hpp"
#include "weak_method.hpp"
#include "weak_set.hpp"
#include "weak_value_dictionary.hpp"
