/*
 * Calls a host function with C++ exceptions stopped at the boundary.
 *
 * A host written in C++ may let an exception escape its host function. Rust
 * cannot catch a foreign exception: it aborts the process ("Rust cannot catch
 * foreign exceptions"). So every host function is called through this one C++
 * frame, which catches anything, and pybridge raises it in Python as
 * pybridge.HostError with the exception's message. One extra direct call per
 * host function call; no cost unless something is thrown.
 */
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>

/* Not exported from the shared library. A DLL exports only what its .def file
 * or a dllexport names, and mingw's gcc rejects the attribute. */
#if defined(_WIN32)
#define PYB_HIDDEN
#else
#define PYB_HIDDEN __attribute__((visibility("hidden")))
#endif

extern "C" {

typedef int32_t (*pyb_host_call_fn)(const void *args, size_t nargs, void *result,
                                    void *user_data);

/* What was thrown, for the caller's message. */
enum { PYB_HOST_RETURNED = 0, PYB_HOST_THREW_STD = 1, PYB_HOST_THREW_OTHER = 2 };

static void copy_message(const char *text, char *what, size_t what_len) {
    if (what_len == 0) {
        return;
    }
    std::strncpy(what, text, what_len - 1);
    what[what_len - 1] = '\0';
}

PYB_HIDDEN int32_t pyb_call_host_guarded(
    pyb_host_call_fn function, const void *args, size_t nargs, void *result, void *user_data,
    int *thrown, char *what, size_t what_len) noexcept {
    *thrown = PYB_HOST_RETURNED;
    try {
        return function(args, nargs, result, user_data);
    } catch (const std::exception &error) {
        *thrown = PYB_HOST_THREW_STD;
        copy_message(error.what(), what, what_len);
    } catch (...) {
        *thrown = PYB_HOST_THREW_OTHER;
        copy_message("", what, what_len);
    }
    return -1;
}

}  // extern "C"
