/*
 * The C baseline of the C# Benchmark test (tests/csharp/BenchmarkTests.cs): the same
 * pyb_call of the same Python function, from C, in the same process and run.
 * scripts/test-csharp.sh builds it as libpybcsbench.so next to the tests.
 */
#include <stdint.h>
#include <time.h>

#include "pybridge.h"

double pybcsbench_call_add(pyb_object add, int64_t calls);

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Calls add(i, 1) `calls` times; returns ns per call, or a negative status on
 * the first failure (or a wrong result). */
double pybcsbench_call_add(pyb_object add, int64_t calls) {
    pyb_value args[2];
    args[0].tag = PYB_VALUE_INT;
    args[1].tag = PYB_VALUE_INT;
    args[1].data.int64 = 1;
    double start = now_ns();
    for (int64_t i = 0; i < calls; i++) {
        args[0].data.int64 = i;
        pyb_value result;
        pyb_status status = pyb_call(add, args, 2, NULL, 0, &result);
        if (status != PYB_OK) {
            return (double)status;
        }
        if (result.tag != PYB_VALUE_INT || result.data.int64 != i + 1) {
            return -1000.0;
        }
    }
    return (now_ns() - start) / (double)calls;
}
