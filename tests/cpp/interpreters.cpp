// interpreters: pybridge::Interpreter and pybridge::Pool from C++. Two threads
// each lease an own-GIL interpreter of a pool and run CPU-bound Python at
// once; scopes nest across interpreters; an object stays in its interpreter
// (PYB_E_WRONG_INTERPRETER elsewhere) while plain values cross; a destroy from
// inside is refused. Before CPython 3.12 the own-GIL parts must be refused
// with PYB_E_UNSUPPORTED and the rest runs on a shared-GIL interpreter.
#include <thread>
#include <vector>

#include "common.hpp"

const char *const test::program = "interpreters";

namespace {

const char *kSetup = R"(
def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
)";

bool own_gil_supported() {
    return pybridge::eval("__import__('sys').version_info[:2] >= (3, 12)").to_bool();
}

void pool_runs_two_threads_at_once() {
    pybridge::Pool pool(2, kSetup);
    std::vector<std::thread> threads;
    std::vector<int64_t> results(2);
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            test::guarded("a lease", [&] {
                auto lease = pool.lease(std::chrono::seconds(10));
                results[t] = pybridge::eval("work(100000)").to_int64();
            });
        });
    }
    for (auto &thread : threads) {
        thread.join();
    }
    TEST_CHECK(results[0] == results[1] && results[0] > 0, "results %lld, %lld",
               static_cast<long long>(results[0]), static_cast<long long>(results[1]));
    pyb_pool_stats stats = pool.stats();
    TEST_CHECK(stats.size == 2 && stats.free == 2 && stats.borrows == 2, "size %llu free %llu borrows %llu",
               static_cast<unsigned long long>(stats.size), static_cast<unsigned long long>(stats.free),
               static_cast<unsigned long long>(stats.borrows));
    pool.destroy(std::chrono::seconds(10));
    std::printf("interpreters: 2 threads ran work() in 2 own-GIL interpreters\n");
}

void scopes_nest_and_objects_stay_home(pybridge::Interpreter::GilMode mode) {
    pybridge::Interpreter a(mode);
    pybridge::run("where = 'main'");
    {
        auto inside = a.enter();
        pybridge::run("where = 'a'");
    }
    pybridge::Object list;
    {
        pybridge::Gil main;
        TEST_CHECK(pybridge::eval("where").to_string() == "main", "main first");
        auto inside = a.enter();
        TEST_CHECK(pybridge::eval("where").to_string() == "a", "then a");
        list = pybridge::eval("[1, 2, 3]").into_object();
        try {
            pyb_status status = pyb_interpreter_destroy(a.capi(), 1000);
            pybridge::detail::check(status);
            test::fail("a destroy from inside succeeded");
        } catch (const pybridge::Error &error) {
            TEST_CHECK(error.status() == PYB_E_WOULD_DEADLOCK, "status %s", error.what());
        }
        inside.release();
        TEST_CHECK(pybridge::eval("where").to_string() == "main", "back in main");
    }
    try {
        (void)list.to_int64();
        test::fail("an object of another interpreter was used");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == PYB_E_WRONG_INTERPRETER, "status %s", error.what());
    }
    int64_t six = [&] {
        auto inside = a.enter();
        return pybridge::eval("sum([1, 2, 3])").to_int64();
    }();
    TEST_CHECK(six == 6, "a plain value crosses: %lld", static_cast<long long>(six));
    list.reset();  // queued, applied inside `a`
    a.destroy(std::chrono::seconds(10));
}

}  // namespace

int main() {
    test::guarded("main", [] {
        auto engine = pybridge::Engine::initialize();
        bool own = own_gil_supported();
        if (own) {
            pool_runs_two_threads_at_once();
            scopes_nest_and_objects_stay_home(pybridge::Interpreter::GilMode::own);
        } else {
            try {
                pybridge::Pool pool(2, kSetup);
                test::fail("an own-GIL pool before CPython 3.12");
            } catch (const pybridge::Error &error) {
                TEST_CHECK(error.status() == PYB_E_UNSUPPORTED, "status %s", error.what());
            }
            std::printf("interpreters: own GIL refused before CPython 3.12\n");
        }
        scopes_nest_and_objects_stay_home(pybridge::Interpreter::GilMode::shared);
        engine.shutdown(std::chrono::seconds(30));
    });
    std::printf("interpreters: all checks passed\n");
    return 0;
}
