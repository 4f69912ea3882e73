// Built by tests/package.rs through CMake's find_package(pybridge): runs
// Python from two threads on the Python named on the command line, and shuts
// the engine down from a third.
#include <cstdio>
#include <future>
#include <string>

#include "pybridge.hpp"

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: consumer <python>\n");
        return 2;
    }
    try {
        pybridge::Options options;
        options.python = argv[1];
        pybridge::Engine engine = pybridge::Engine::initialize(options);
        auto product = [](int a, int b) {
            pybridge::Object scope = pybridge::new_scope();
            pybridge::run("result = " + std::to_string(a) + " * " + std::to_string(b), scope);
            return pybridge::eval("result", scope).to_int64();
        };
        auto first = std::async(std::launch::async, product, 6, 7);
        auto second = std::async(std::launch::async, product, 7, 6);
        long long answer = first.get();
        if (answer != second.get()) {
            std::fprintf(stderr, "consumer: the threads disagree\n");
            return 1;
        }
        std::string version = pybridge::eval("'%d.%d.%d' % __import__('sys').version_info[:3]").to_string();
        std::async(std::launch::async, [engine] { engine.shutdown(std::chrono::seconds(20)); }).get();
        std::printf("consumer: %s says %lld\n", version.c_str(), answer);
        return 0;
    } catch (const pybridge::Error &error) {
        std::fprintf(stderr, "consumer: %s\n", error.what());
        return 1;
    }
}
