// shutdown_race: shutdown from a thread that did not initialize, while other
// C++ threads keep calling into Python (eval, calls on a shared object, nested
// GIL scopes with AllowThreads, imports and clones) and one runs an endless
// Python loop. Every call must succeed or fail with a documented status; the
// shutdown (with PYB_SHUTDOWN_INTERRUPT) must succeed; nothing may hang.
#include <atomic>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "common.hpp"

const char *const test::program = "shutdown_race";

namespace {

constexpr int kCallers = 4;
constexpr int kOkBeforeShutdown = 300;  // per caller, before the shutdown starts
constexpr int kCallsAfterShutdown = 200;  // per caller, once the engine is gone

// The statuses a call may return while and after the engine shuts down.
bool documented(const pybridge::Error &error) {
    pyb_status status = error.status();
    if (status == PYB_E_SHUTTING_DOWN || status == PYB_E_NOT_INITIALIZED ||
        status == PYB_E_BAD_HANDLE) {
        return true;
    }
    // PYB_SHUTDOWN_INTERRUPT raises this in host threads running Python.
    return status == PYB_E_PYTHON && error.python_type() == "_pybridge_engine.ShutdownInterrupt";
}

struct Tally {
    std::map<std::string, int> by_status;
    int ok = 0;
    int after_shutdown = 0;
};

}  // namespace

int main() {
    auto engine = test::guarded("initialize", [] { return pybridge::Engine::initialize(); });
    pybridge::Object add = test::guarded("setup", [] {
        pybridge::run("import time, math\ndef add(a, b):\n    return a + b\n");
        return pybridge::eval("add").into_object();
    });

    std::atomic<int> callers_ready{0};
    // Set by the looper's Python code itself, once inside the loop's script.
    std::atomic<bool> looping{false};
    test::guarded("register", [&] {
        engine.register_function("race", "looping", [&looping](pybridge::Args) { looping = true; });
        return 0;
    });
    std::vector<Tally> tallies(kCallers);
    std::vector<std::thread> callers;
    for (int c = 0; c < kCallers; ++c) {
        callers.emplace_back([&, c] {
            Tally &tally = tallies[c];
            bool counted_ready = false;
            for (int64_t i = 0; tally.after_shutdown < kCallsAfterShutdown; ++i) {
                bool gone = pybridge::Engine::state() == pybridge::State::uninitialized &&
                            callers_ready == kCallers;
                try {
                    switch (i % 5) {
                        case 0:
                            TEST_CHECK(pybridge::eval("6 * 7").to_int64() == 42, "eval");
                            break;
                        case 1:
                            TEST_CHECK(add.call(i, 1).to_int64() == i + 1, "add");
                            break;
                        case 2: {
                            pybridge::Gil outer;
                            pybridge::Gil inner;  // nests even once a shutdown has begun
                            pybridge::run("x = sum(range(100))");
                            pybridge::AllowThreads nogil;
                            std::this_thread::sleep_for(std::chrono::microseconds(50));
                            break;
                        }
                        case 3: {
                            pybridge::Object math = pybridge::import_module("math");
                            pybridge::Object copy = math.clone();
                            TEST_CHECK(copy.attr("pi").to_double() > 3.14, "math.pi");
                            break;
                        }
                        case 4:
                            TEST_CHECK(add.call("a", "b").to_string() == "ab", "add str");
                            break;
                    }
                    ++tally.ok;
                    ++tally.by_status["PYB_OK"];
                    TEST_CHECK(!gone, "caller %d: a call succeeded after the shutdown", c);
                } catch (const pybridge::Error &error) {
                    if (!documented(error)) {
                        test::fail_error("a call during shutdown", error);
                    }
                    ++tally.by_status[error.status_name()];
                }
                if (gone) {
                    ++tally.after_shutdown;
                }
                if (!counted_ready && tally.ok >= kOkBeforeShutdown) {
                    counted_ready = true;
                    ++callers_ready;
                }
            }
        });
    }
    // A host thread inside an endless Python loop: only the interrupt ends it.
    std::string looper_status;
    std::string looper_type;
    std::thread looper([&] {
        try {
            pybridge::run("import race\nrace.looping()\nwhile True:\n    time.sleep(0.001)\n");
            looper_status = "returned";
        } catch (const pybridge::Error &error) {
            looper_status = error.status_name();
            looper_type = error.python_type();
        }
    });

    // The shutdown comes from a third thread, once every caller got going.
    pyb_status status = PYB_E_PANIC;
    double shutdown_ms = 0;
    std::thread stopper([&] {
        double waited = test::now_ms();
        while (callers_ready < kCallers || !looping) {
            TEST_CHECK(test::now_ms() - waited < 30000, "callers did not get going");
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        double started = test::now_ms();
        status = engine.try_shutdown(std::chrono::seconds(30), pybridge::ShutdownMode::interrupt);
        shutdown_ms = test::now_ms() - started;
    });
    stopper.join();
    looper.join();
    for (std::thread &caller : callers) {
        caller.join();
    }
    add.reset();  // a handle of the finalized interpreter: released harmlessly

    std::printf("shutdown_race: shutdown from a non-initializing thread -> %s in %.1f ms\n",
                pyb_status_name(status), shutdown_ms);
    std::printf("shutdown_race: endless Python loop on a host thread -> %s %s\n",
                looper_status.c_str(), looper_type.c_str());
    std::map<std::string, int> total;
    for (int c = 0; c < kCallers; ++c) {
        for (auto &entry : tallies[c].by_status) {
            total[entry.first] += entry.second;
        }
        TEST_CHECK(tallies[c].after_shutdown == kCallsAfterShutdown, "caller %d", c);
    }
    for (auto &entry : total) {
        std::printf("shutdown_race: %s: %d calls\n", entry.first.c_str(), entry.second);
    }
    TEST_CHECK(status == PYB_OK, "shutdown returned %s", pyb_status_name(status));
    TEST_CHECK(looper_status == "PYB_E_PYTHON" &&
                   looper_type == "_pybridge_engine.ShutdownInterrupt",
               "looper: %s %s", looper_status.c_str(), looper_type.c_str());
    TEST_CHECK(total["PYB_OK"] >= kCallers * kOkBeforeShutdown, "ok calls");
    TEST_CHECK(total["PYB_E_NOT_INITIALIZED"] + total["PYB_E_BAD_HANDLE"] >=
                   kCallers * kCallsAfterShutdown,
               "calls after the shutdown");
    TEST_CHECK(pybridge::stats().interpreters_finalized == 1, "one finalization");
    std::puts("shutdown_race: all checks passed");
    return 0;
}
