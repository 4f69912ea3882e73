// buffers: pybridge::BufferView over Python memory (written in place, moved,
// released on another thread) and pybridge::share_memory of a std::vector
// (read and written by Python, released exactly once).
#include <thread>
#include <vector>

#include "common.hpp"

const char *const test::program = "buffers";

namespace {

void views() {
    pybridge::run("data = bytearray(b'hello')\nimport array\nnumbers = array.array('d', [1.5, 2.5])");
    pybridge::Object data = pybridge::eval("data").into_object();
    {
        pybridge::BufferView view(data, true);
        TEST_CHECK(view.size_bytes() == 5 && view.count() == 5 && !view.readonly() && view.format() == "B",
                   "bytearray view: %zu bytes", view.size_bytes());
        view.data_as<char>()[0] = 'j';
        TEST_CHECK(pybridge::eval("data.decode()").to_string() == "jello", "write through the view");
        // Pinned: Python cannot resize it while the view lives.
        try {
            pybridge::run("data.append(33)");
            test::fail("a viewed bytearray was resized");
        } catch (const pybridge::Error &error) {
            TEST_CHECK(error.python_type() == "BufferError", "resize while viewed: %s", error.what());
        }
        pybridge::BufferView moved = std::move(view);
        TEST_CHECK(moved.data_as<char>()[1] == 'e', "a moved view still reads");
        // Released on a thread that holds no GIL: queued, applied at the next entry.
        std::thread([view = std::move(moved)]() mutable { pybridge::BufferView gone = std::move(view); }).join();
    }
    pybridge::run("data.append(33)");
    TEST_CHECK(pybridge::eval("data.decode()").to_string() == "jello!", "resized after the view ended");

    pybridge::BufferView numbers(pybridge::eval("numbers").into_object());
    TEST_CHECK(numbers.data_as<double>()[1] == 2.5 && numbers.format() == "d", "array('d') view");
    try {
        numbers.data_as<float>();
        test::fail("a double buffer read as float");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == PYB_E_WRONG_TYPE, "data_as<float>: %s", error.what());
    }
    pybridge::BufferView matrix(pybridge::eval("memoryview(bytearray(12)).cast('B', (3, 4))").into_object());
    TEST_CHECK(matrix.ndim() == 2 && (matrix.shape() == std::vector<ptrdiff_t>{3, 4}) &&
                   (matrix.strides() == std::vector<ptrdiff_t>{4, 1}),
               "matrix: ndim %d", matrix.ndim());
    TEST_CHECK(matrix.lowest() == matrix.data() && matrix.span() == 12, "matrix: span %zu", matrix.span());
    // Reversed: data() is the first item, the highest address; the items lie from lowest().
    pybridge::BufferView reversed(pybridge::eval("memoryview(bytearray(range(10)))[::-2]").into_object());
    const auto *first = static_cast<const unsigned char *>(reversed.data());
    const auto *low = static_cast<const unsigned char *>(reversed.lowest());
    TEST_CHECK(*first == 9 && *low == 1 && first - low == 8 && reversed.span() == 9 && reversed.size_bytes() == 5,
               "reversed: first %d, lowest %d, span %zu", *first, *low, reversed.span());
    try {
        pybridge::BufferView refused(pybridge::eval("b'frozen'").into_object(), true);
        test::fail("bytes gave a writable view");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.status() == PYB_E_WRONG_TYPE, "writable bytes: %s", error.what());
    }
}

void shared_memory() {
    std::vector<double> memory{1.0, 2.0, 3.0, 4.0};
    int released = 0;
    {
        pybridge::Object view =
            pybridge::share_memory(memory.data(), memory.size(), true, [&released] { ++released; });
        pybridge::Object scope = pybridge::new_scope();
        scope.set_item("shared", view);
        TEST_CHECK(pybridge::eval("sum(shared)", scope).to_double() == 10.0, "Python reads the vector");
        pybridge::run("shared[3] = 40.0\nkept = shared", scope);
        TEST_CHECK(memory[3] == 40.0, "Python wrote the vector");
        pybridge::run("del shared", scope);
        TEST_CHECK(released == 0, "still referenced by 'kept' and by the C++ handle");
        pybridge::run("del kept", scope);
    }
    pybridge::run("pass");  // applies the release the handle queued, if any
    TEST_CHECK(released == 1, "released once: %d", released);
    const int32_t frozen[2] = {7, 8};
    pybridge::Object readonly = pybridge::share_memory(frozen, 2, false);
    pybridge::Object scope = pybridge::new_scope();
    scope.set_item("frozen", readonly);
    TEST_CHECK(pybridge::eval("frozen.format + str(list(frozen))", scope).to_string() == "i[7, 8]",
               "int32 memory");
    try {
        pybridge::run("frozen[0] = 1", scope);
        test::fail("read-only memory was written");
    } catch (const pybridge::Error &error) {
        TEST_CHECK(error.python_type() == "TypeError", "write to read-only: %s", error.what());
    }
}

}  // namespace

int main() {
    auto engine = test::guarded("initialize", [] { return pybridge::Engine::initialize(); });
    test::guarded("views", [] {
        views();
        return 0;
    });
    test::guarded("shared memory", [] {
        shared_memory();
        return 0;
    });
    test::guarded("shutdown", [&] {
        engine.shutdown(std::chrono::seconds(30));
        return 0;
    });
    std::puts("buffers: all checks passed");
    return 0;
}
