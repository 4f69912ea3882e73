// Helpers shared by the C++ host programs in tests/cpp/: each program exits
// non-zero with a message naming the failed check, and prints
// "<program>: all checks passed" (or its own final line) at the end.
#ifndef PYBRIDGE_TESTS_COMMON_HPP
#define PYBRIDGE_TESTS_COMMON_HPP

#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "pybridge.hpp"

namespace test {

extern const char *const program;  // each program defines its name

// mingw checks formats against Microsoft's printf unless the host is built
// with -D__USE_MINGW_ANSI_STDIO=1 (as scripts/test-windows.sh does), which
// gives C99's %zu and %lld; this follows whichever printf is in use.
#ifdef __MINGW_PRINTF_FORMAT
#define TEST_PRINTF __MINGW_PRINTF_FORMAT
#else
#define TEST_PRINTF printf
#endif

// Prints "<program>: FAILED: <prefix><message>" and exits at once: _Exit,
// because exit() from a worker thread would run static destructors while other
// threads still run.
[[noreturn]] inline void vfail(const char *prefix, const char *format, std::va_list args) {
    std::fprintf(stderr, "%s: FAILED: %s", program, prefix);
    std::vfprintf(stderr, format, args);
    std::fputc('\n', stderr);
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(1);
}

[[noreturn]] inline void fail(const char *format, ...) __attribute__((format(TEST_PRINTF, 1, 2)));
[[noreturn]] inline void fail(const char *format, ...) {
    std::va_list args;
    va_start(args, format);
    vfail("", format, args);
}

// Fails with "file:line: condition: message" unless `condition` holds.
[[noreturn]] inline void fail_check(const char *file, int line, const char *condition,
                                    const char *format, ...)
    __attribute__((format(TEST_PRINTF, 4, 5)));
[[noreturn]] inline void fail_check(const char *file, int line, const char *condition,
                                    const char *format, ...) {
    char where[512];
    std::snprintf(where, sizeof where, "%s:%d: %s: ", file, line, condition);
    std::va_list args;
    va_start(args, format);
    vfail(where, format, args);
}

#define TEST_CHECK(condition, ...)                                            \
    do {                                                                      \
        if (!(condition)) {                                                   \
            test::fail_check(__FILE__, __LINE__, #condition, __VA_ARGS__);    \
        }                                                                     \
    } while (0)

[[noreturn]] inline void fail_error(const char *what, const pybridge::Error &error) {
    fail("%s threw %s\npython type: %s\n%s", what, error.what(), error.python_type().c_str(),
         error.traceback().c_str());
}

// Runs `body`, turning an escaping exception into a failure naming `what`.
template <class F>
auto guarded(const char *what, F &&body) -> decltype(body()) {
    try {
        return body();
    } catch (const pybridge::Error &error) {
        fail_error(what, error);
    } catch (const std::exception &error) {
        fail("%s threw %s", what, error.what());
    }
}

inline double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// A reusable barrier (std::barrier is C++20) that fails instead of hanging.
class Barrier {
public:
    explicit Barrier(int parties) : parties_(parties) {}
    void arrive_and_wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        long generation = generation_;
        if (++waiting_ == parties_) {
            waiting_ = 0;
            ++generation_;
            changed_.notify_all();
            return;
        }
        if (!changed_.wait_for(lock, std::chrono::seconds(30),
                               [&] { return generation_ != generation; })) {
            fail("barrier: %d of %d threads arrived within 30 s", waiting_, parties_);
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int parties_;
    int waiting_ = 0;
    long generation_ = 0;
};

}  // namespace test

#endif
