// interpreters: pybridge::Interpreter and pybridge::Pool from C++. Two threads
// each lease an own-GIL interpreter of a pool and run CPU-bound Python at
// once; scopes nest across interpreters; an object stays in its interpreter
// (PYB_E_WRONG_INTERPRETER elsewhere) while plain values cross; a destroy from
// inside is refused. Before CPython 3.12 the own-GIL parts must be refused
// with PYB_E_UNSUPPORTED and the rest runs on a shared-GIL interpreter.
// Move assignment of scopes, interpreters, pools and leases ends the old one
// exactly once; destructors wait at most their destroy_timeout().
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
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

// Move assignment onto a live scope ends the old scope once, at the
// assignment, and the moved-from object ends nothing: an out-of-order or
// second release would make release() throw.
void scope_move_assignment(pybridge::Interpreter::GilMode mode) {
    TEST_CHECK(!pybridge::Gil::held(), "no GIL to begin with");
    {
        pybridge::Gil outer;
        pybridge::Gil inner;
        inner = std::move(outer);  // ends the inner scope, then holds the outer one
        TEST_CHECK(!outer.active() && inner.active(), "the outer scope moved");
        TEST_CHECK(pybridge::Gil::held(), "the outer scope still holds the GIL");
        inner.release();
        TEST_CHECK(!pybridge::Gil::held(), "both scopes ended");
    }
    pybridge::Interpreter a(mode);
    pybridge::Interpreter b(mode);
    // An array, not a braced list of pairs: GCC 16 warns that the pairs in
    // an initializer_list may dangle (-Wdangling-reference).
    const std::pair<pybridge::Interpreter *, const char *> named[] = {{&a, "a"}, {&b, "b"}};
    for (const auto &[interpreter, name] : named) {
        auto inside = interpreter->enter();
        pybridge::run(std::string("where = '") + name + "'");
    }
    {
        pybridge::Interpreter::Scope outer = a.enter();
        pybridge::Interpreter::Scope inner = b.enter();
        TEST_CHECK(pybridge::eval("where").to_string() == "b", "inside b");
        inner = std::move(outer);  // leaves b, then holds the scope in a
        TEST_CHECK(!outer.active() && inner.active(), "the scope in a moved");
        TEST_CHECK(pybridge::eval("where").to_string() == "a", "back in a");
        inner.release();
        TEST_CHECK(!pybridge::Gil::held(), "both scopes ended");
    }
    std::printf("interpreters: move-assigned Gil and Interpreter::Scope end the old scope once\n");
}

// Move assignment onto a live interpreter destroys the old one, once: its
// handle is dead afterwards, and the moved-from object's destructor leaves
// the moved interpreter alone.
void interpreter_move_assignment(pybridge::Interpreter::GilMode mode) {
    pybridge::Interpreter kept(mode);
    pyb_interpreter old = kept.capi();
    {
        pybridge::Interpreter other(mode);
        pyb_interpreter moved = other.capi();
        other.set_destroy_timeout(std::chrono::seconds(20));
        kept = std::move(other);
        TEST_CHECK(kept.capi() == moved && other.capi() == 0, "the handle moved");
        TEST_CHECK(kept.destroy_timeout() == std::chrono::seconds(20), "the bound moved with it");
    }
    pyb_status status = pyb_interpreter_destroy(old, 0);
    TEST_CHECK(status == PYB_E_BAD_HANDLE, "the old interpreter was destroyed: %s", pyb_status_name(status));
    int64_t three = [&] {
        auto inside = kept.enter();
        return pybridge::eval("1 + 2").to_int64();
    }();
    TEST_CHECK(three == 3, "the moved interpreter lives on");
    TEST_CHECK(kept.try_destroy(std::chrono::seconds(10)) == PYB_OK && kept.capi() == 0, "destroyed");
    TEST_CHECK(kept.try_destroy(std::chrono::seconds(10)) == PYB_E_BAD_HANDLE, "a second destroy");
}

// Move assignment onto a live pool destroys the old pool once; onto a live
// lease, it ends the old lease's scope and gives its interpreter back once.
void pool_and_lease_move_assignment() {
    pybridge::Pool pool(1, kSetup);
    pyb_pool old = pool.capi();
    {
        pybridge::Pool other(2, kSetup);
        pool = std::move(other);
        TEST_CHECK(other.capi() == 0, "the handle moved");
    }
    pyb_pool_stats stats{};
    stats.struct_size = sizeof stats;
    pyb_status status = pyb_pool_stats_get(old, &stats);
    TEST_CHECK(status == PYB_E_BAD_HANDLE, "the old pool was destroyed: %s", pyb_status_name(status));
    TEST_CHECK(pool.stats().size == 2 && pool.stats().free == 2, "the moved pool lives on");
    {
        pybridge::Pool::Lease outer = pool.lease(std::chrono::seconds(10));
        pybridge::run("where = 'outer'");
        pyb_interpreter outer_interpreter = outer.capi();
        pybridge::Pool::Lease inner = pool.lease(std::chrono::seconds(10));
        pybridge::run("where = 'inner'");
        TEST_CHECK(pool.stats().free == 0, "both borrowed");
        inner = std::move(outer);  // leaves and gives back the inner one
        TEST_CHECK(pool.stats().free == 1, "one given back: free %llu",
                   static_cast<unsigned long long>(pool.stats().free));
        TEST_CHECK(inner.capi() == outer_interpreter && outer.capi() == 0, "the lease moved");
        TEST_CHECK(pybridge::eval("where").to_string() == "outer", "inside the outer one");
    }
    stats = pool.stats();
    TEST_CHECK(stats.free == 2 && stats.borrows == 2, "both given back once: free %llu borrows %llu",
               static_cast<unsigned long long>(stats.free), static_cast<unsigned long long>(stats.borrows));
    TEST_CHECK(!pybridge::Gil::held(), "every scope ended");
    pool.destroy(std::chrono::seconds(10));
    std::printf("interpreters: move-assigned Interpreter, Pool and Lease end the old one once\n");
}

// The destructor's wait is bounded by destroy_timeout(): with a thread
// inside, try_destroy() times out with nothing changed, and the destructor
// gives up after its bound instead of the default 10 s.
void destroy_waits_at_most_its_bound(pybridge::Interpreter::GilMode mode) {
    std::mutex lock;
    std::condition_variable changed;
    bool inside = false;
    bool leave = false;
    auto interpreter = std::make_unique<pybridge::Interpreter>(mode);
    std::thread guest([&, handle = interpreter->capi()] {
        test::guarded("the guest", [&] {
            pybridge::Interpreter::Scope scope(handle);
            std::unique_lock<std::mutex> guard(lock);
            inside = true;
            changed.notify_all();
            changed.wait(guard, [&] { return leave; });
        });
    });
    {
        std::unique_lock<std::mutex> guard(lock);
        changed.wait(guard, [&] { return inside; });
    }
    pyb_status status = interpreter->try_destroy(std::chrono::milliseconds(50));
    TEST_CHECK(status == PYB_E_TIMEOUT, "a destroy with a thread inside: %s", pyb_status_name(status));
    TEST_CHECK(interpreter->capi() != 0, "nothing changed");
    TEST_CHECK(interpreter->destroy_timeout() == pybridge::Interpreter::default_destroy_timeout &&
                   pybridge::Interpreter::default_destroy_timeout == std::chrono::seconds(10),
               "the default bound");
    interpreter->set_destroy_timeout(std::chrono::milliseconds(50));
    double start = test::now_ms();
    interpreter.reset();  // gives up after 50 ms; the engine's shutdown ends it
    double waited = test::now_ms() - start;
    TEST_CHECK(waited < 5000, "the destructor waited %.0f ms, past its 50 ms bound", waited);
    {
        std::lock_guard<std::mutex> guard(lock);
        leave = true;
    }
    changed.notify_all();
    guest.join();
    std::printf("interpreters: destructors wait at most destroy_timeout()\n");
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
        pybridge::Interpreter::GilMode mode =
            own ? pybridge::Interpreter::GilMode::own : pybridge::Interpreter::GilMode::shared;
        scope_move_assignment(mode);
        interpreter_move_assignment(mode);
        if (own) {
            pool_and_lease_move_assignment();
            destroy_waits_at_most_its_bound(mode);
        }
        engine.shutdown(std::chrono::seconds(30));
    });
    std::printf("interpreters: all checks passed\n");
    return 0;
}
