// c_extension: the C-extension pattern. A host function runs with the GIL (as
// a C extension function does) and releases it with AllowThreads around heavy
// C work. Several Python threads call it at once: all of them are inside the
// C work together (a rendezvous that only completes when the GIL is released),
// and the work runs in parallel. The same function without AllowThreads is the
// control: its calls never overlap.
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common.hpp"

const char *const test::program = "c_extension";

namespace {

constexpr int kPythonThreads = 4;
constexpr int64_t kIterations = 20000000;

// Counts the calls inside the C work, and lets each wait until `want` are
// inside together (or the timeout passes).
struct Rendezvous {
    std::mutex mutex;
    std::condition_variable changed;
    int inside = 0;
    int max_inside = 0;
    bool all_inside = false;  // latched once `want` calls were inside together
    int met = 0;              // calls that saw that happen

    void enter(int want, std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(mutex);
        ++inside;
        max_inside = std::max(max_inside, inside);
        if (inside >= want) {
            all_inside = true;
            changed.notify_all();
        }
        if (changed.wait_for(lock, timeout, [&] { return all_inside; })) {
            ++met;
        }
    }
    void leave() {
        std::lock_guard<std::mutex> lock(mutex);
        --inside;
    }
};

// CPU-bound C work: a linear congruential generator, deterministic per seed.
uint64_t crunch(uint64_t seed, int64_t iterations) {
    uint64_t x = seed;
    for (int64_t i = 0; i < iterations; ++i) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    }
    return x >> 16;
}

const char *kScript = R"(
import threading, time, ext

def run_threads(function, iterations):
    results = [None] * N
    def worker(i):
        results[i] = function(i, iterations)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - started
)";

}  // namespace

int main() {
    auto engine = test::guarded("initialize", [] { return pybridge::Engine::initialize(); });
    Rendezvous parallel;
    Rendezvous control;
    test::guarded("register", [&] {
        // Holds the GIL like any C extension function, and gives it up for the C work.
        engine.register_function("ext", "crunch", [&parallel](pybridge::Args args) {
            args.expect(2);
            uint64_t seed = static_cast<uint64_t>(args[0].to_int64());
            int64_t iterations = args[1].to_int64();
            TEST_CHECK(pybridge::Gil::held(), "a hold-policy host function runs with the GIL");
            pybridge::AllowThreads nogil;
            TEST_CHECK(!pybridge::Gil::held(), "AllowThreads released the GIL");
            parallel.enter(kPythonThreads, std::chrono::seconds(20));
            uint64_t result = crunch(seed, iterations);
            parallel.leave();
            return static_cast<int64_t>(result);
        });
        // The control: the same work with the GIL held throughout.
        engine.register_function("ext", "crunch_holding_gil", [&control](pybridge::Args args) {
            args.expect(2);
            uint64_t seed = static_cast<uint64_t>(args[0].to_int64());
            int64_t iterations = args[1].to_int64();
            control.enter(kPythonThreads, std::chrono::milliseconds(200));
            uint64_t result = crunch(seed, iterations);
            control.leave();
            return static_cast<int64_t>(result);
        });
        return 0;
    });

    test::guarded("run", [&] {
        pybridge::Object scope = pybridge::new_scope();
        scope.set_item("N", kPythonThreads);
        pybridge::run(kScript, scope, "<c_extension>");
        pybridge::Object run_threads = scope.item("run_threads").into_object();
        pybridge::Object ext = pybridge::import_module("ext");

        // One thread alone: the time one call of the C work takes here.
        double started = test::now_ms();
        uint64_t alone = crunch(99, kIterations);
        double alone_ms = test::now_ms() - started;
        TEST_CHECK(alone != 0, "crunch result");

        auto check_results = [&](pybridge::Object results, const char *which) {
            TEST_CHECK(results.len() == kPythonThreads, "%s: %zu results", which, results.len());
            for (int i = 0; i < kPythonThreads; ++i) {
                int64_t want = static_cast<int64_t>(crunch(static_cast<uint64_t>(i), kIterations));
                int64_t got = results.item(i).to_int64();
                TEST_CHECK(got == want, "%s: thread %d got %lld, want %lld", which, i,
                           static_cast<long long>(got), static_cast<long long>(want));
            }
        };

        pybridge::Object outcome =
            run_threads.call(ext.attr("crunch"), kIterations).into_object();
        check_results(outcome.item(0).into_object(), "crunch");
        double parallel_ms = outcome.item(1).to_double() * 1e3;

        outcome = run_threads.call(ext.attr("crunch_holding_gil"), kIterations).into_object();
        check_results(outcome.item(0).into_object(), "crunch_holding_gil");
        double control_ms = outcome.item(1).to_double() * 1e3;

        std::printf("c_extension: AllowThreads: %d Python threads inside the C work at once (max %d), "
                    "%.1f ms for %d calls\n",
                    parallel.met, parallel.max_inside, parallel_ms, kPythonThreads);
        std::printf("c_extension: GIL held: max %d inside at once, %.1f ms (incl. %d x 200 ms "
                    "rendezvous timeouts)\n",
                    control.max_inside, control_ms, kPythonThreads);
        std::printf("c_extension: one call alone %.1f ms; %d parallel calls took %.2fx one call "
                    "(%.2fx the throughput of running them one after another)\n",
                    alone_ms, kPythonThreads, parallel_ms / alone_ms,
                    kPythonThreads * alone_ms / parallel_ms);
        TEST_CHECK(parallel.met == kPythonThreads && parallel.max_inside == kPythonThreads,
                   "with AllowThreads %d met, max %d inside", parallel.met,
                   parallel.max_inside);
        TEST_CHECK(control.max_inside == 1 && control.met == 0,
                   "with the GIL held %d met, max %d inside", control.met, control.max_inside);
        return 0;
    });

    // The wrapper's other promises: exceptions become Python exceptions with
    // the C++ message, and values convert both ways.
    test::guarded("wrapper", [&] {
        engine.register_function("ext", "throws", [](pybridge::Args args) -> int64_t {
            if (args.at(0).to_bool()) {
                throw std::runtime_error("boom from C++");
            }
            throw pybridge::Error(PYB_E_OUT_OF_RANGE, "a pybridge::Error from C++");
        });
        engine.register_function("ext", "echo", [](pybridge::Args args) {
            args.expect(1);
            pybridge::Arg arg = args[0];
            switch (arg.kind()) {
                case pybridge::Kind::str: return pybridge::Value(arg.string_view());
                case pybridge::Kind::bytes: return pybridge::Value(arg.to_bytes());
                case pybridge::Kind::float64: return pybridge::Value(arg.to_double());
                case pybridge::Kind::boolean: return pybridge::Value(arg.to_bool());
                case pybridge::Kind::int64: return pybridge::Value(arg.to_int64());
                default: return pybridge::Value(arg.object());
            }
        });
        pybridge::run(R"(
import ext, pybridge
try:
    ext.throws(True)
except pybridge.HostError as e:
    first = (type(e).__name__, str(e))
try:
    ext.throws(False)
except pybridge.HostError as e:
    second = str(e)
echoed = [ext.echo(x) for x in ("héllo", b"\x00\xff", 2.5, True, -2**63, [1, 2])]
)");
        pybridge::Object first = pybridge::eval("first").into_object();
        TEST_CHECK(first.item(0).to_string() == "HostError", "%s", first.item(0).to_string().c_str());
        TEST_CHECK(first.item(1).to_string() == "boom from C++", "%s", first.item(1).to_string().c_str());
        std::string second = pybridge::eval("second").to_string();
        TEST_CHECK(second == "a pybridge::Error from C++", "%s", second.c_str());
        TEST_CHECK(pybridge::eval("echoed == ['h\u00e9llo', b'\\x00\\xff', 2.5, True, -2**63, [1, 2]]")
                       .to_bool(),
                   "echo round trip: %s", pybridge::eval("repr(echoed)").to_string().c_str());
        std::vector<std::byte> bytes = pybridge::eval("echoed[1]").to_bytes();
        TEST_CHECK(bytes.size() == 2 && bytes[1] == std::byte{0xff}, "bytes");
        try {
            pybridge::run("1 / 0", pybridge::Object(), "<zero>");
            test::fail("1 / 0 did not throw");
        } catch (const pybridge::Error &error) {
            TEST_CHECK(error.status() == PYB_E_PYTHON && std::string(error.status_name()) == "PYB_E_PYTHON" &&
                           error.python_type() == "ZeroDivisionError" &&
                           error.python_message() == "division by zero" &&
                           error.traceback().find("<zero>") != std::string::npos,
                       "%s / %s / %s", error.what(), error.python_type().c_str(),
                       error.traceback().c_str());
        }
        std::puts("c_extension: C++ exceptions became pybridge.HostError with their messages");
        return 0;
    });

    test::guarded("shutdown", [&] {
        engine.shutdown(std::chrono::seconds(30));
        return 0;
    });
    std::puts("c_extension: all checks passed");
    return 0;
}
