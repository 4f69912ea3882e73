#include <chrono>
#include <cstdio>
#include <future>
#include <string>

#include "pybridge.hpp"

int main() {
    try {
        pybridge::Engine engine = pybridge::Engine::initialize();

        // Two host threads run Python; each takes the GIL when it needs it.
        auto factorial = [](int n) {
            pybridge::Object scope = pybridge::new_scope();
            pybridge::run("import math\nresult = math.factorial(" + std::to_string(n) + ")", scope);
            return pybridge::eval("result", scope).to_int64();
        };
        auto first = std::async(std::launch::async, factorial, 10);
        auto second = std::async(std::launch::async, factorial, 20);
        std::printf("10! = %lld\n", static_cast<long long>(first.get()));
        std::printf("20! = %lld\n", static_cast<long long>(second.get()));

        // A third thread, which did not initialize the engine, shuts it down.
        std::async(std::launch::async, [engine] { engine.shutdown(std::chrono::seconds(10)); }).get();
        std::puts("readme_example: done");
        return 0;
    } catch (const pybridge::Error &error) {  // status name, message, Python traceback
        std::fprintf(stderr, "%s\n%s", error.what(), error.traceback().c_str());
        return 1;
    }
}
