// A host function registered through the raw C API (no pybridge.hpp) that
// lets a C++ exception escape: pybridge stops it at the boundary and Python
// sees pybridge.HostError naming the function and the exception. Before, the
// process aborted ("Rust cannot catch foreign exceptions").
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common.hpp"

const char *const test::program = "raw_host_exceptions";

namespace {

int32_t throws_std(const pyb_value *, size_t, pyb_value *, void *) {
    throw std::runtime_error("boom");
}

int32_t throws_int(const pyb_value *, size_t, pyb_value *, void *) {
    throw 42;
}

int32_t returns_seven(const pyb_value *, size_t, pyb_value *result, void *) {
    result->tag = PYB_VALUE_INT;
    result->data.int64 = 7;
    return PYB_OK;
}

std::string last_error() {
    char message[1024];
    pyb_last_error_message(message, sizeof message);
    return message;
}

void check_ok(const char *what, pyb_status status) {
    TEST_CHECK(status == PYB_OK, "%s: %s: %s", what, pyb_status_name(status),
               last_error().c_str());
}

long long eval_int(const char *expression) {
    pyb_value value;
    check_ok(expression, pyb_eval(expression, "<test>", 0, &value));
    TEST_CHECK(value.tag == PYB_VALUE_INT, "%s: tag %u", expression, value.tag);
    return static_cast<long long>(value.data.int64);
}

}  // namespace

int main() {
    check_ok("initialize", pyb_engine_initialize(nullptr));
    check_ok("register std", pyb_register_function("native", "throws_std", throws_std, nullptr,
                                                   nullptr, 0));
    check_ok("register int", pyb_register_function("native", "throws_int", throws_int, nullptr,
                                                   nullptr, PYB_FN_RELEASE_GIL));
    check_ok("register ok", pyb_register_function("native", "seven", returns_seven, nullptr,
                                                  nullptr, 0));
    check_ok("run", pyb_run("import native, pybridge\n"
                            "messages = []\n"
                            "for f in (native.throws_std, native.throws_int):\n"
                            "    try:\n"
                            "        f()\n"
                            "    except pybridge.HostError as error:\n"
                            "        messages.append(str(error))\n"
                            "expected = [\n"
                            "    'host function native.throws_std threw a C++ exception: boom',\n"
                            "    'host function native.throws_int threw a C++ exception that is "
                            "not a std::exception',\n"
                            "]\n"
                            "matched = int(messages == expected)\n",
                            "<test>", 0));
    if (eval_int("matched") != 1) {
        pyb_value messages;
        check_ok("messages", pyb_eval("repr(messages)", "<test>", 0, &messages));
        test::fail("unexpected messages: %.*s", static_cast<int>(messages.data.str.len),
                   messages.data.str.ptr);
    }
    // The engine, and the thread that caught the exceptions, go on working.
    TEST_CHECK(eval_int("native.seven() * 6") == 42, "a normal host function after the throws");
    for (int round = 0; round < 1000; ++round) {
        TEST_CHECK(pyb_run("try:\n    native.throws_std()\nexcept pybridge.HostError:\n    pass\n",
                           "<loop>", 0) == PYB_OK,
                   "round %d: %s", round, last_error().c_str());
    }
    check_ok("shutdown", pyb_engine_shutdown(10000, 0));
    std::printf("raw_host_exceptions: 2 kinds of C++ exception became pybridge.HostError, "
                "1000 more caught\n");
    std::printf("raw_host_exceptions: all checks passed\n");
    return 0;
}
