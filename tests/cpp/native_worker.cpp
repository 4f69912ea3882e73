// native_worker: the native-worker callback. A Python subscriber loop (a
// non-daemon Python thread) receives messages and hands each to a C++
// processor; the processor's own std::thread (not created by Python) processes
// it and calls the message's Python callback. The loop keeps receiving while
// callbacks arrive; N of N arrive. Then the worker thread itself, holding no
// GIL, shuts the engine down, and the process exits cleanly.
#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "common.hpp"

const char *const test::program = "native_worker";

namespace {

constexpr int kMessages = 1000;

std::atomic<int> captures_freed{0};

struct Job {
    int64_t id;
    std::string text;
    pybridge::Object callback;  // an owning handle, used and dropped on the worker thread
};

struct Processor {
    std::mutex mutex;
    std::condition_variable changed;
    std::deque<Job> queue;
    int delivered = 0;

    void submit(Job job) {
        std::lock_guard<std::mutex> lock(mutex);
        queue.push_back(std::move(job));
        changed.notify_all();
    }
    Job take() {
        std::unique_lock<std::mutex> lock(mutex);
        if (!changed.wait_for(lock, std::chrono::seconds(30), [&] { return !queue.empty(); })) {
            test::fail("the worker waited 30 s for message %d", delivered);
        }
        Job job = std::move(queue.front());
        queue.pop_front();
        return job;
    }
    void wait_delivered(int count) {
        std::unique_lock<std::mutex> lock(mutex);
        if (!changed.wait_for(lock, std::chrono::seconds(30), [&] { return delivered >= count; })) {
            test::fail("only %d of %d callbacks arrived within 30 s", delivered, count);
        }
    }
    void mark_delivered() {
        std::lock_guard<std::mutex> lock(mutex);
        ++delivered;
        changed.notify_all();
    }
};

// The capture of the registered lambda: counts its destruction, which the
// engine's free callback causes at shutdown. Holds no pybridge::Object (its
// destructor must not call into pybridge).
struct Capture {
    Processor *processor;
    explicit Capture(Processor *p) : processor(p) {}
    Capture(const Capture &) = delete;
    Capture(Capture &&other) noexcept : processor(other.processor) { other.processor = nullptr; }
    ~Capture() {
        if (processor != nullptr) {
            ++captures_freed;
        }
    }
};

const char *kScript = R"(
import queue, threading, proc

inbox = queue.Queue()
done = []
done_lock = threading.Lock()
received = 0
callbacks_seen_at_receive = []
subscriber_ident = None

def on_done(message_id, text):
    # Runs on the C++ worker thread.
    assert text == f"MESSAGE {message_id}", text
    assert threading.get_ident() != subscriber_ident
    with done_lock:
        done.append(message_id)
        return len(done)

def subscriber():
    global received, subscriber_ident
    subscriber_ident = threading.get_ident()
    while True:
        message_id = inbox.get()
        if message_id is None:
            return
        received += 1
        with done_lock:
            callbacks_seen_at_receive.append(len(done))
        proc.submit(message_id, f"message {message_id}", on_done)

thread = threading.Thread(target=subscriber, daemon=False)
thread.start()
)";

}  // namespace

int main() {
    auto engine = test::guarded("initialize", [] { return pybridge::Engine::initialize(); });
    Processor processor;
    test::guarded("register", [&] {
        engine.register_function("proc", "submit",
                                 [capture = Capture(&processor)](pybridge::Args args) {
                                     args.expect(3);
                                     capture.processor->submit(Job{args[0].to_int64(),
                                                                   args[1].to_string(),
                                                                   args[2].object()});
                                 });
        return 0;
    });
    pybridge::Object inbox = test::guarded("script", [] {
        pybridge::run(kScript, pybridge::Object(), "<subscriber>");
        return pybridge::eval("inbox").into_object();
    });

    // The worker: processes each message and calls back into Python from a
    // thread Python never saw; after the last one it shuts the engine down.
    pyb_status deadlock_status = PYB_OK;
    pyb_status shutdown_status = PYB_E_PANIC;
    double shutdown_ms = 0;
    int64_t last_count = 0;
    int64_t received = 0;
    int64_t max_seen_at_receive = 0;
    std::thread worker([&] {
        test::guarded("worker", [&] {
            for (int i = 0; i < kMessages; ++i) {
                Job job = processor.take();
                std::string upper = job.text;
                for (char &c : upper) {
                    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                }
                last_count = job.callback.call(job.id, upper).to_int64();
                processor.mark_delivered();
            }  // each Job (and its callback handle) is destroyed here, on this thread
            received = pybridge::eval("received").to_int64();
            max_seen_at_receive = pybridge::eval("max(callbacks_seen_at_receive)").to_int64();
            {
                // While this thread holds the GIL, a shutdown would wait for itself.
                pybridge::Gil gil;
                deadlock_status = engine.try_shutdown(std::chrono::seconds(5));
            }
            // GIL released: the shutdown waits for the subscriber (non-daemon)
            // to take its end marker, then finalizes.
            double started = test::now_ms();
            shutdown_status = engine.try_shutdown(std::chrono::seconds(30));
            shutdown_ms = test::now_ms() - started;
            return 0;
        });
    });

    // Feed half the messages, wait until their callbacks arrived, then feed the
    // rest: the subscriber provably keeps receiving after callbacks arrived.
    test::guarded("feed", [&] {
        for (int i = 0; i < kMessages / 2; ++i) {
            inbox.call_method("put", i);
        }
        processor.wait_delivered(kMessages / 2);
        for (int i = kMessages / 2; i < kMessages; ++i) {
            inbox.call_method("put", i);
        }
        inbox.call_method("put", nullptr);  // the subscriber's end marker
        return 0;
    });
    worker.join();
    inbox.reset();  // after the shutdown: a dead handle, released harmlessly

    std::printf("native_worker: %d of %d callbacks arrived on the worker thread\n",
                processor.delivered, kMessages);
    std::printf("native_worker: the subscriber received %lld messages, the last ones after %lld "
                "callbacks had arrived\n",
                static_cast<long long>(received), static_cast<long long>(max_seen_at_receive));
    std::printf("native_worker: shutdown from the worker holding the GIL -> %s\n",
                pyb_status_name(deadlock_status));
    std::printf("native_worker: shutdown from the worker after releasing it -> %s (%.1f ms)\n",
                pyb_status_name(shutdown_status), shutdown_ms);
    std::printf("native_worker: host function captures freed: %d\n", captures_freed.load());
    TEST_CHECK(processor.delivered == kMessages, "%d delivered", processor.delivered);
    TEST_CHECK(last_count == kMessages, "Python counted %lld callbacks",
               static_cast<long long>(last_count));
    TEST_CHECK(received == kMessages, "received %lld", static_cast<long long>(received));
    TEST_CHECK(max_seen_at_receive >= kMessages / 2, "max seen %lld",
               static_cast<long long>(max_seen_at_receive));
    TEST_CHECK(deadlock_status == PYB_E_WOULD_DEADLOCK, "%s", pyb_status_name(deadlock_status));
    TEST_CHECK(shutdown_status == PYB_OK, "%s", pyb_status_name(shutdown_status));
    TEST_CHECK(pybridge::Engine::state() == pybridge::State::uninitialized, "state %d",
               static_cast<int>(pybridge::Engine::state()));
    TEST_CHECK(captures_freed == 1, "captures freed %d", captures_freed.load());
    std::puts("native_worker: all checks passed");
    return 0;
}
