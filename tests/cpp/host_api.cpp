// host_api: what a C++ host does without dropping to the C API. Host
// functions with keyword arguments (pybridge::Kwargs): names, order, values,
// defaults, an unexpected keyword, and a function without them refusing them.
// Typed host objects (host_object, make_host_object, host_object_cast): the
// same object back in a host function, shared ownership, the destructor run
// exactly once when Python and the host let go, and the wrong type, a plain
// Python object and another binding's host object each refused with
// PYB_E_WRONG_TYPE. share_memory for every integer width, signed and
// unsigned, bool, float and double: the format and items Python sees, and a
// write from Python that the host reads.
#include <array>
#include <atomic>
#include <cinttypes>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common.hpp"

const char *const test::program = "host_api";

namespace {

std::string eval_text(const char *expression, const pybridge::Object &scope) {
    return pybridge::eval(expression, scope).to_string();
}

// --- keywords

void keyword_arguments(const pybridge::Engine &engine) {
    // scaled(a, b=2, *, scale=1): a + b * scale.
    engine.register_function("host", "scaled", [](pybridge::Args args, pybridge::Kwargs kwargs) {
        kwargs.expect_only({"b", "scale"});
        if (args.size() < 1 || args.size() > 2) {
            throw pybridge::Error(PYB_E_INVALID_ARGUMENT, "scaled takes 1 or 2 positional arguments");
        }
        int64_t a = args[0].to_int64();
        int64_t b = args.size() == 2 ? args[1].to_int64() : 2;
        if (auto given = kwargs.find("b")) {
            if (args.size() == 2) throw pybridge::Error(PYB_E_INVALID_ARGUMENT, "b given twice");
            b = given->to_int64();
        }
        int64_t scale = kwargs.contains("scale") ? kwargs.at("scale").to_int64() : 1;
        return a + b * scale;
    });
    // echo(*args, **kwargs): what arrived, in order.
    pybridge::Object builtins = pybridge::import_module("builtins");
    engine.register_function("host", "echo", [&builtins](pybridge::Args args, pybridge::Kwargs kwargs) {
        std::string seen = std::to_string(args.size()) + " positional;";
        for (size_t i = 0; i < kwargs.size(); ++i) {
            std::string repr = builtins.call_method("repr", kwargs.value(i).object()).to_string();
            seen += " " + std::string(kwargs.name(i)) + "=" + repr;
        }
        return seen;
    });
    engine.register_function("host", "positional_only", [](pybridge::Args args) {
        return static_cast<int64_t>(args.size());
    });
    pybridge::Object scope = pybridge::new_scope();
    pybridge::run(R"(
import host
results = [host.scaled(1), host.scaled(1, 5), host.scaled(1, b=5), host.scaled(1, scale=3),
           host.scaled(1, scale=3, b=4), host.scaled(1, 4, scale=10)]
echoed = host.echo(1, 2, zeta='z', alpha=2.5, mid=None)
try:
    host.scaled(1, bogus=1)
except Exception as error:
    unexpected = f'{type(error).__name__}: {error}'
try:
    host.positional_only(1, x=2)
except TypeError as error:
    refused = 'TypeError'
)", scope);
    TEST_CHECK(eval_text("repr(results)", scope) == "[3, 6, 6, 7, 13, 41]", "%s",
               eval_text("repr(results)", scope).c_str());
    TEST_CHECK(eval_text("echoed", scope) == "2 positional; zeta='z' alpha=2.5 mid=None", "%s",
               eval_text("echoed", scope).c_str());
    TEST_CHECK(eval_text("unexpected", scope) == "HostError: unexpected keyword argument 'bogus'",
               "%s", eval_text("unexpected", scope).c_str());
    TEST_CHECK(eval_text("refused", scope) == "TypeError", "keywords to a function without them");
    std::puts("host_api: keyword arguments: 6 calls, order kept, unexpected keyword refused");
}

// --- host objects

std::atomic<int> counters_destroyed{0};

struct Counter {
    explicit Counter(int64_t start) : count(start) {}
    ~Counter() { counters_destroyed.fetch_add(1); }
    int64_t count;
};

// Asserts that `body` throws an Error with PYB_E_WRONG_TYPE whose message holds `part`.
template <class F>
void expect_wrong_type(const char *what, const char *part, F &&body) {
    try {
        body();
        test::fail("%s: no error", what);
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == PYB_E_WRONG_TYPE && error.message().find(part) != std::string::npos,
                   "%s: %s", what, error.what());
    }
}

void host_objects(const pybridge::Engine &engine) {
    engine.register_function("host", "bump", [](pybridge::Args args) {
        std::shared_ptr<Counter> counter = pybridge::host_object_cast<Counter>(args.at(0));
        return ++counter->count;
    });
    pybridge::Object scope = pybridge::new_scope();
    {
        pybridge::Object counter = pybridge::make_host_object<Counter>(40);
        scope.set_item("counter", counter);
        pybridge::run("import host\nhost.bump(counter)\nlast = host.bump(counter)", scope);
        TEST_CHECK(pybridge::eval("last", scope).to_int64() == 42, "bumped twice from Python");
        TEST_CHECK(pybridge::host_object_cast<Counter>(counter)->count == 42, "the host sees the same object");

        expect_wrong_type("another type", "not a", [&] { pybridge::host_object_cast<std::string>(counter); });
        expect_wrong_type("a plain Python object", "",
                          [&] { pybridge::host_object_cast<Counter>(pybridge::eval("1 + 2j").into_object()); });
        expect_wrong_type("an int argument", "expected a host object", [&] {
            pybridge::Value three(3);
            pybridge::host_object_cast<Counter>(pybridge::Arg(three.capi()));
        });
        // A host object another binding made (a raw pointer through the C API).
        static int foreign = 7;
        pyb_object raw = 0;
        test::guarded("pyb_host_object_new", [&] { pybridge::detail::check(pyb_host_object_new(&foreign, nullptr, &raw)); });
        pybridge::Object foreign_object(raw);
        expect_wrong_type("another binding's host object", "not made by pybridge::host_object",
                          [&] { pybridge::host_object_cast<Counter>(foreign_object); });
        pybridge::run("try:\n    host.bump(7)\nexcept Exception as error:\n    bad = type(error).__name__\n", scope);
        TEST_CHECK(eval_text("bad", scope) == "TypeError", "bump(7): a wrong-type argument is a TypeError");

        // Python and the host share it: the host's shared_ptr keeps it alive.
        std::shared_ptr<Counter> kept = pybridge::host_object_cast<Counter>(counter);
        {
            pybridge::Gil gil;  // releases at once, not queued
            counter.reset();
            pybridge::run("del counter", scope);
        }
        TEST_CHECK(counters_destroyed.load() == 0, "destroyed while the host held it");
        TEST_CHECK(kept->count == 42, "kept");
    }
    TEST_CHECK(counters_destroyed.load() == 1, "destroyed %d times once both let go", counters_destroyed.load());

    // Python alone holds one: destroyed when Python lets go, exactly once.
    {
        pybridge::Gil gil;
        scope.set_item("other", pybridge::host_object(std::make_shared<Counter>(0)));
        pybridge::run("host.bump(other)\ndel other", scope);
    }
    TEST_CHECK(counters_destroyed.load() == 2, "destroyed %d times", counters_destroyed.load());
    std::puts("host_api: host objects: typed round trip, shared ownership, each destroyed once, wrong types refused");
}

// --- share_memory

template <class T>
void share_one(const char *format, const std::array<T, 3> &items, const char *python_sees) {
    std::array<T, 3> memory(items);  // not std::vector<bool>, which packs bits
    std::atomic<int> released{0};
    pybridge::Object scope = pybridge::new_scope();
    {
        pybridge::Gil gil;
        scope.set_item("view", pybridge::share_memory(memory.data(), memory.size(), true,
                                                      [&released] { released.fetch_add(1); }));
        pybridge::run("seen = repr((view.format, view.itemsize, view.tolist()))\n"
                      "view[0] = view[len(view) - 1]\n"
                      "del view",
                      scope);
    }
    std::string seen = eval_text("seen", scope);
    std::string expected = std::string("('") + format + "', " + std::to_string(sizeof(T)) + ", " + python_sees + ")";
    TEST_CHECK(seen == expected, "%s: Python saw %s, expected %s", format, seen.c_str(), expected.c_str());
    TEST_CHECK(std::memcmp(&memory[0], &memory[memory.size() - 1], sizeof(T)) == 0, "%s: Python's write", format);
    TEST_CHECK(released.load() == 1, "%s: released %d times", format, released.load());
}

void shared_memory_of_every_type() {
    share_one<int8_t>("b", {{0, -128, 127}}, "[0, -128, 127]");
    share_one<uint8_t>("B", {{0, 1, 255}}, "[0, 1, 255]");
    share_one<int16_t>("h", {{0, -32768, 32767}}, "[0, -32768, 32767]");
    share_one<uint16_t>("H", {{0, 1, 65535}}, "[0, 1, 65535]");
    share_one<int32_t>("i", {{0, std::numeric_limits<int32_t>::min(), 2147483647}}, "[0, -2147483648, 2147483647]");
    share_one<uint32_t>("I", {{0, 1, 4294967295u}}, "[0, 1, 4294967295]");
    share_one<int64_t>("q", {{0, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}},
                       "[0, -9223372036854775808, 9223372036854775807]");
    share_one<uint64_t>("Q", {{0, 1, std::numeric_limits<uint64_t>::max()}}, "[0, 1, 18446744073709551615]");
    // 64 bits on Linux, 32 on Windows (LLP64): the format follows its size.
    share_one<unsigned long>(sizeof(unsigned long) == 8 ? "Q" : "I", {{0, 2, 3}}, "[0, 2, 3]");
    share_one<bool>("?", {{false, true, true}}, "[False, True, True]");
    share_one<float>("f", {{0.0f, 0.5f, -2.25f}}, "[0.0, 0.5, -2.25]");
    share_one<double>("d", {{0.0, 0.1, -1e300}}, "[0.0, 0.1, -1e+300]");
    share_one<char>("b", {{'a', 'b', 'c'}}, "[97, 98, 99]");
    std::puts("host_api: share_memory: 13 item types, signed, unsigned, bool and floating");
}

}  // namespace

int main() {
    auto engine = test::guarded("initialize", [] { return pybridge::Engine::initialize(); });
    test::guarded("keywords", [&] { keyword_arguments(engine); });
    test::guarded("host objects", [&] { host_objects(engine); });
    test::guarded("share_memory", [] { shared_memory_of_every_type(); });
    test::guarded("shutdown", [&] { engine.shutdown(std::chrono::seconds(30)); });
    std::puts("host_api: all checks passed");
    return 0;
}
