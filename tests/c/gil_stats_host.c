/*
 * gil_stats_host: GIL statistics name the thread that held the GIL longest,
 * while it lives and after it exited. A pthread named "holder" (named before
 * any pybridge call, so pybridge never saw another name) holds the GIL 40 ms;
 * the total names it (pybridge's thread id, its kernel tid, "holder") before
 * and after pthread_join, and a thread that took the GIL later, briefly,
 * does not take its place. Built with -Wall -Wextra -Werror and run by
 * tests/c_programs.rs; exits 1 naming the failed check.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pybridge.h"
#define HOST_CHECK_PROGRAM "gil_stats_host"
#include "host_check.h"

static const long HOLD_MS = 40;

/* The holder tells the main thread its tid and that its hold is over, then
 * stays alive until told to exit: the first reading is of a live thread. */
struct holder {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int held;   /* the hold is over */
    int exit;   /* the main thread has read the live figures */
    int tid;
};

static void *hold_the_gil(void *arg) {
    struct holder *holder = arg;
    /* Named before pybridge first sees this thread. */
    if (pthread_setname_np(pthread_self(), "holder") != 0) {
        fail("pthread_setname_np");
    }
    pyb_gil gil;
    check("holder: pyb_gil_acquire", pyb_gil_acquire(&gil));
    struct timespec pause = {0, HOLD_MS * 1000000L};
    while (nanosleep(&pause, &pause) != 0) {
    }
    check("holder: pyb_gil_release", pyb_gil_release(gil));
    pthread_mutex_lock(&holder->lock);
    holder->tid = (int)syscall(SYS_gettid);
    holder->held = 1;
    pthread_cond_broadcast(&holder->changed);
    while (!holder->exit) {
        pthread_cond_wait(&holder->changed, &holder->lock);
    }
    pthread_mutex_unlock(&holder->lock);
    return NULL;
}

static void *take_it_briefly(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "brief");
    pyb_gil gil;
    check("brief: pyb_gil_acquire", pyb_gil_acquire(&gil));
    check("brief: pyb_gil_release", pyb_gil_release(gil));
    return NULL;
}

static pyb_gil_stats total(void) {
    pyb_gil_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    check("pyb_gil_stats_total", pyb_gil_stats_total(&stats));
    return stats;
}

/* The live entry of thread `tid` in pyb_gil_stats_threads, or NULL. */
static int find_live(int tid, pyb_gil_stats *out) {
    pyb_gil_stats entries[16];
    memset(entries, 0, sizeof entries);
    entries[0].struct_size = sizeof entries[0];
    size_t count = 0;
    check("pyb_gil_stats_threads", pyb_gil_stats_threads(entries, 16, &count));
    for (size_t i = 0; i < count && i < 16; i++) {
        if (entries[i].os_thread_id == tid) {
            *out = entries[i];
            return 1;
        }
    }
    return 0;
}

static void expect_longest(const char *when, const pyb_gil_stats *stats, uint64_t id, int tid,
                           uint64_t hold_ns) {
    if (stats->longest_hold_thread_id != id || stats->longest_hold_os_thread_id != tid ||
        strcmp(stats->longest_hold_thread_name, "holder") != 0) {
        fail("%s: the longest hold names thread %llu, tid %d, '%s'; expected %llu, tid %d, "
             "'holder'",
             when, (unsigned long long)stats->longest_hold_thread_id,
             stats->longest_hold_os_thread_id, stats->longest_hold_thread_name,
             (unsigned long long)id, tid);
    }
    if (stats->hold_max_ns != hold_ns) {
        fail("%s: longest hold %llu ns, expected the holder's %llu ns", when,
             (unsigned long long)stats->hold_max_ns, (unsigned long long)hold_ns);
    }
    printf("gil_stats_host: %s: longest hold by 'holder' (tid matches, id matches)\n", when);
}

int main(void) {
    check("pyb_engine_initialize", pyb_engine_initialize(NULL));
    check("pyb_gil_stats_enable", pyb_gil_stats_enable(true));
    check("pyb_gil_stats_reset", pyb_gil_stats_reset());

    struct holder holder = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, hold_the_gil, &holder) != 0) {
        fail("pthread_create");
    }
    pthread_mutex_lock(&holder.lock);
    while (!holder.held) {
        pthread_cond_wait(&holder.changed, &holder.lock);
    }
    pthread_mutex_unlock(&holder.lock);

    pyb_gil_stats live;
    if (!find_live(holder.tid, &live)) {
        fail("no live entry for the holder (tid %d)", holder.tid);
    }
    if (strcmp(live.thread_name, "holder") != 0 || live.acquisitions != 1) {
        fail("the holder's entry: name '%s', %llu acquisitions", live.thread_name,
             (unsigned long long)live.acquisitions);
    }
    if (live.hold_max_ns < (uint64_t)HOLD_MS * 1000000u) {
        fail("the holder held the GIL %llu ns, under %ld ms", (unsigned long long)live.hold_max_ns,
             HOLD_MS);
    }
    pyb_gil_stats before = total();
    expect_longest("alive", &before, live.thread_id, holder.tid, live.hold_max_ns);

    pthread_mutex_lock(&holder.lock);
    holder.exit = 1;
    pthread_cond_broadcast(&holder.changed);
    pthread_mutex_unlock(&holder.lock);
    if (pthread_join(thread, NULL) != 0) {
        fail("pthread_join");
    }
    if (find_live(holder.tid, &live) && live.thread_id == before.longest_hold_thread_id) {
        fail("the holder is still listed among live threads after pthread_join");
    }
    pyb_gil_stats after = total();
    expect_longest("after pthread_join", &after, before.longest_hold_thread_id, holder.tid,
                   before.hold_max_ns);
    if (after.acquisitions != 1) {
        fail("after pthread_join: %llu acquisitions in the total, expected 1",
             (unsigned long long)after.acquisitions);
    }

    /* A later, shorter hold by another thread that also exits. */
    if (pthread_create(&thread, NULL, take_it_briefly, NULL) != 0 ||
        pthread_join(thread, NULL) != 0) {
        fail("the brief thread");
    }
    pyb_gil_stats later = total();
    expect_longest("after a shorter hold by another thread", &later,
                   before.longest_hold_thread_id, holder.tid, before.hold_max_ns);
    if (later.acquisitions != 2) {
        fail("%llu acquisitions in the total, expected 2", (unsigned long long)later.acquisitions);
    }

    check("pyb_engine_shutdown", pyb_engine_shutdown(10000, 0));
    printf("gil_stats_host: all checks passed\n");
    return 0;
}
