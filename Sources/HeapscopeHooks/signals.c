// SIGTERM and SIGINT where the program leaves them at their default action
// (death): the capture is finished before the process dies, and it dies of
// the same signal. A program's own handlers are never replaced: ours goes
// only where the disposition is SIG_DFL (Python's KeyboardInterrupt handler
// for SIGINT already ends the program through atexit, which stops tracking).
//
// The handler does only async-signal-safe things: it stops recording, tells
// the writer thread, which finishes the capture (writer.c), and waits for it
// a bounded time before it re-raises the signal with SIG_DFL.
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const int hs_fatal_signals[] = {SIGTERM, SIGINT};
#define HS_FATAL_COUNT (sizeof hs_fatal_signals / sizeof hs_fatal_signals[0])

volatile sig_atomic_t hs_pending_signal;   // set by the handler, taken by the writer
static volatile sig_atomic_t hs_signal_done;   // the writer finished the capture

// A capture being finished by stop or `_exit` (not by the writer): the
// signal waits for it, or, on the finishing thread itself, is deferred.
static volatile sig_atomic_t hs_finishing;
static volatile sig_atomic_t hs_finishing_tid;
static volatile sig_atomic_t hs_deferred_signal;

// A handler bound never to wait longer: the writer could be stuck (e.g. the
// disk is gone); dying with a cut-short capture beats not dying.
#define HS_SIGNAL_WAIT_MS 5000

static void hs_set_handler(int sig, void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(sig, &action, NULL);
}

static void hs_die_of(int sig) {
    hs_set_handler(sig, SIG_DFL);
    // Delivered when the caller's mask allows it: at once from the writer
    // (kill reaches any thread not blocking it), on return from the handler.
    kill(getpid(), sig);
}

static void hs_wait_for(volatile sig_atomic_t *flag, int until) {
    struct timespec ms = {0, 1000000};
    for (int waited = 0; *flag != until && waited < HS_SIGNAL_WAIT_MS; waited++) nanosleep(&ms, NULL);
}

static void hs_on_fatal_signal(int sig) {
    int saved_errno = errno;
    if (hs_finishing && hs_global.pid == getpid()) {
        if (hs_finishing_tid == (sig_atomic_t)hs_gettid()) {
            hs_deferred_signal = sig;
            errno = saved_errno;
            return;
        }
        hs_wait_for(&hs_finishing, 0);
    } else if (hs_global.pid == getpid() && hs_writer_is_running()) {
        // Not `tracking`: it is also 0 while stop is paused before it
        // finishes (naming threads), and the capture must still get its END.
        hs_global.tracking = 0;
        hs_pending_signal = sig;
        // A thread interrupted inside the recorder may hold the lock the
        // writer needs: let it finish its record; the writer re-raises.
        if (hs_guard & HS_IN_RECORD) {
            errno = saved_errno;
            return;
        }
        hs_wait_for(&hs_signal_done, 1);
    }
    hs_die_of(sig);
    errno = saved_errno;
}

// Sets `to` for each fatal signal whose handler is `from`, and only those.
static void hs_swap_handlers(void (*from)(int), void (*to)(int)) {
    for (size_t i = 0; i < HS_FATAL_COUNT; i++) {
        struct sigaction current;
        if (sigaction(hs_fatal_signals[i], NULL, &current) != 0) continue;
        if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != from) continue;
        hs_set_handler(hs_fatal_signals[i], to);
    }
}

void hs_signals_install(void) { hs_swap_handlers(SIG_DFL, hs_on_fatal_signal); }

void hs_signals_remove(void) { hs_swap_handlers(hs_on_fatal_signal, SIG_DFL); }

void hs_signal_finished(int sig) {
    hs_signal_done = 1;
    hs_die_of(sig);
}

void hs_signals_finish_begin(void) {
    hs_finishing_tid = (sig_atomic_t)hs_gettid();
    hs_finishing = 1;
}

void hs_signals_finish_end(void) {
    hs_finishing = 0;
    int sig = hs_deferred_signal;
    hs_deferred_signal = 0;
    if (sig) hs_die_of(sig);
}

void hs_signals_after_fork(void) {
    hs_pending_signal = 0;
    hs_signal_done = 0;
    hs_finishing = 0;
    hs_deferred_signal = 0;
}

void hs_finish_at_exit(void) {
    // A vfork child (subprocess whose exec failed) shares our memory but is
    // not the process recording: finishing the capture there would end the
    // parent's, and even hs_guard there is the parent thread's.
    if (hs_global.pid != getpid() || !hs_global.recorder) return;
    // A fatal signal from here on waits for the capture (hs_on_fatal_signal).
    unsigned saved = hs_guard;
    hs_guard |= HS_IN_RECORD;
    if (hs_pending_signal && hs_writer_is_running()) {
        // A fatal signal came first, inside a hook of this thread: the writer
        // is finishing the capture, then ends the process with the signal.
        hs_wait_for(&hs_signal_done, 1);
    } else if (hs_finishing) {
        hs_wait_for(&hs_finishing, 0);   // stop, on another thread
    } else {
        hs_finish_before_exit();
    }
    hs_guard = saved;
}
