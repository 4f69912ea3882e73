// calls_and_containers: keyword arguments (pybridge::kw) in call and
// call_method, containers built from arguments and from C++ ranges, and
// iterables read back into std::vector; as<T>() refuses an int T cannot
// hold, and Value refuses a null const char *.
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common.hpp"

const char *const test::program = "calls_and_containers";

namespace {

const char *kSetup = R"(
def describe(a, b=2, *rest, c=3, **more):
    return f"a={a} b={b} rest={list(rest)} c={c} more={sorted(more.items())}"
)";

void keyword_calls() {
    pybridge::run(kSetup);
    pybridge::Object describe = pybridge::eval("describe").into_object();
    TEST_CHECK(describe.call(1).to_string() == "a=1 b=2 rest=[] c=3 more=[]", "positional only");
    std::string text = "x";
    int64_t lvalue = 40;
    std::string got = describe.call(1, pybridge::kw("c", lvalue + 2), pybridge::kw("name", text))
                          .to_string();
    TEST_CHECK(got == "a=1 b=2 rest=[] c=42 more=[('name', 'x')]", "keywords: %s", got.c_str());
    got = describe.call(1, 2, 3, pybridge::kw("b2", 5.5)).to_string();
    TEST_CHECK(got == "a=1 b=2 rest=[3] c=3 more=[('b2', 5.5)]", "mixed: %s", got.c_str());
    pybridge::Object json = pybridge::import_module("json");
    pybridge::Object data = pybridge::make_dict(pybridge::kw("k", 1));
    got = json.call_method("dumps", data, pybridge::kw("indent", 2)).to_string();
    TEST_CHECK(got == "{\n  \"k\": 1\n}", "json.dumps(indent=2): %s", got.c_str());
    // Python's own TypeError for a keyword the function does not take.
    try {
        json.call_method("dumps", data, pybridge::kw("no_such_option", true));
        test::fail("an unknown keyword was accepted");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == PYB_E_PYTHON && error.python_type() == "TypeError",
                   "unknown keyword: %s", error.what());
    }
}

void containers() {
    pybridge::Object scope = pybridge::new_scope();
    scope.set_item("t", pybridge::make_tuple(1, "two", 3.0, nullptr));
    scope.set_item("l", pybridge::make_list());
    scope.set_item("d", pybridge::make_dict(pybridge::kw("a", 1), pybridge::kw("b", "two")));
    std::vector<int64_t> numbers{5, 6, 7};
    scope.set_item("v", pybridge::list_from(numbers));
    std::map<std::string, double> weights{{"x", 0.5}, {"y", 1.5}};
    scope.set_item("m", pybridge::dict_from(weights));
    std::string got = pybridge::eval("repr((t, l, d, v, m))", scope).to_string();
    TEST_CHECK(got == "((1, 'two', 3.0, None), [], {'a': 1, 'b': 'two'}, [5, 6, 7], {'x': 0.5, 'y': 1.5})",
               "containers: %s", got.c_str());
    std::vector<int64_t> squares =
        pybridge::to_vector<int64_t>(pybridge::eval("(i * i for i in range(5))", scope).into_object());
    TEST_CHECK((squares == std::vector<int64_t>{0, 1, 4, 9, 16}), "to_vector: %zu items", squares.size());
    std::vector<std::string> keys = pybridge::to_vector<std::string>(pybridge::eval("m", scope).into_object());
    TEST_CHECK((keys == std::vector<std::string>{"x", "y"}), "dict keys: %zu", keys.size());
    // A wrong item type is the binding's exception, with its status.
    try {
        pybridge::to_vector<int64_t>(pybridge::eval("['a']", scope).into_object());
        test::fail("a str item read as int64");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == PYB_E_WRONG_TYPE, "str as int64: %s", error.what());
    }
}

void exceptions() {
    pybridge::Object scope = pybridge::new_scope();
    pybridge::run("class ScopeError(LookupError):\n    def __init__(self, code):\n        super().__init__(code)\n"
                  "        self.code = code\n",
                  scope);
    try {
        pybridge::run("raise ScopeError(7)", scope);
        test::fail("nothing was raised");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.python_type() == "ScopeError", "type %s", error.python_type().c_str());
        TEST_CHECK((error.python_types() ==
                    std::vector<std::string>{"ScopeError", "LookupError", "Exception", "BaseException"}),
                   "%zu bases", error.python_types().size());
        TEST_CHECK(error.is("LookupError") && error.is("ScopeError") && !error.is("KeyError"), "is()");
        pybridge::Error copy = error;  // copies share the exception object
        TEST_CHECK(copy.exception().attr("code").to_int64() == 7, "the exception object's attribute");
    }
    try {
        pybridge::run("import json\njson.loads('{')");
        test::fail("json.loads('{') parsed");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.is("JSONDecodeError") && error.is("json.decoder.JSONDecodeError") && error.is("ValueError") &&
                       !error.is("decoder.JSONDecodeError"),
                   "is() with qualified and bare names: %s", error.python_type().c_str());
    }
    try {
        pybridge::import_module("no_such_module_xyz");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.is("ImportError"), "ModuleNotFoundError is an ImportError");
    }
    pybridge::Error plain(PYB_E_TIMEOUT, "not Python");
    TEST_CHECK(!plain.exception() && plain.python_types().empty() && !plain.is("Exception"), "a non-Python error");
}

// Expects `body` to throw a pybridge::Error with `status` whose message
// contains `text`.
template <class F>
void expect_error(const char *what, pyb_status status, const char *text, F &&body) {
    try {
        body();
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == status, "%s: %s", what, error.what());
        TEST_CHECK(error.message().find(text) != std::string::npos, "%s: message %s", what,
                   error.what());
        return;
    }
    test::fail("%s: no error", what);
}

// as<T>() of an int that T cannot hold throws PYB_E_OUT_OF_RANGE instead of
// truncating; values at T's limits convert exactly.
void checked_narrowing() {
    TEST_CHECK(pybridge::eval("255").as<uint8_t>() == 255, "uint8 max");
    TEST_CHECK(pybridge::eval("-128").as<int8_t>() == -128, "int8 min");
    TEST_CHECK(pybridge::eval("2**31 - 1").as<int32_t>() == INT32_MAX, "int32 max");
    TEST_CHECK(pybridge::eval("2**63 - 1").as<uint64_t>() == uint64_t(INT64_MAX), "uint64 of int64 max");
    TEST_CHECK(pybridge::eval("-2**63").as<int64_t>() == INT64_MIN, "int64 min");
    TEST_CHECK(pybridge::Value(true).as<int>() == 1, "a bool is an int");
    expect_error("as<uint8_t>() of 256", PYB_E_OUT_OF_RANGE,
                 "the int 256 does not fit in a 8-bit unsigned integer (0..255)",
                 [] { (void)pybridge::eval("256").as<uint8_t>(); });
    expect_error("as<int8_t>() of -129", PYB_E_OUT_OF_RANGE,
                 "the int -129 does not fit in a 8-bit signed integer (-128..127)",
                 [] { (void)pybridge::eval("-129").as<int8_t>(); });
    expect_error("as<int32_t>() of 2**31", PYB_E_OUT_OF_RANGE, "the int 2147483648 does not fit",
                 [] { (void)pybridge::eval("2**31").as<int32_t>(); });
    expect_error("as<uint64_t>() of -1", PYB_E_OUT_OF_RANGE,
                 "the int -1 does not fit in a 64-bit unsigned integer",
                 [] { (void)pybridge::Value(-1).as<uint64_t>(); });
    expect_error("as<unsigned>() of -1", PYB_E_OUT_OF_RANGE, "the int -1 does not fit",
                 [] { (void)pybridge::Value(int64_t(-1)).as<unsigned>(); });
    // to_vector<T> converts each item the same way.
    pybridge::Object items = pybridge::eval("[1, 2, 300]").into_object();
    TEST_CHECK(pybridge::to_vector<int16_t>(items) == (std::vector<int16_t>{1, 2, 300}), "int16 items");
    expect_error("to_vector<uint8_t> of [1, 2, 300]", PYB_E_OUT_OF_RANGE, "the int 300 does not fit",
                 [&] { (void)pybridge::to_vector<uint8_t>(items); });
    // An int beyond int64 fails in the C API already.
    expect_error("as<int64_t>() of 2**64", PYB_E_OUT_OF_RANGE, "",
                 [] { (void)pybridge::eval("2**64").as<int64_t>(); });
}

// Value(const char *) refuses a null pointer; Value(nullptr) stays None.
void null_c_strings() {
    const char *none = nullptr;
    expect_error("Value(null const char *)", PYB_E_NULL_ARGUMENT, "Value(const char *): the pointer is null",
                 [&] { pybridge::Value value(none); });
    pybridge::Object str = pybridge::eval("str").into_object();
    expect_error("call with a null const char *", PYB_E_NULL_ARGUMENT, "the pointer is null",
                 [&] { (void)str.call(none); });
    TEST_CHECK(pybridge::Value(nullptr).is_none(), "Value(nullptr) is None");
    TEST_CHECK(pybridge::Value("").to_string().empty(), "an empty str");
}

}  // namespace

int main() {
    auto engine = test::guarded("initialize", [] {
        pybridge::Options options;
        options.argv = {"cpp-host", "-c", "x"};  // sys.argv as given, nothing parsed out
        return pybridge::Engine::initialize(options);
    });
    test::guarded("argv", [] {
        std::string argv = pybridge::eval("repr(__import__('sys').argv)").to_string();
        TEST_CHECK(argv == "['cpp-host', '-c', 'x']", "sys.argv is %s", argv.c_str());
        return 0;
    });
    test::guarded("keyword calls", [] {
        keyword_calls();
        return 0;
    });
    test::guarded("containers", [] {
        containers();
        return 0;
    });
    test::guarded("exceptions", [] {
        exceptions();
        return 0;
    });
    test::guarded("checked narrowing", [] {
        checked_narrowing();
        return 0;
    });
    test::guarded("null C strings", [] {
        null_c_strings();
        return 0;
    });
    test::guarded("shutdown", [&] {
        engine.shutdown(std::chrono::seconds(30));
        return 0;
    });
    std::puts("calls_and_containers: all checks passed");
    return 0;
}
