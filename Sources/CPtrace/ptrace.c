#include "cptrace.h"

#include <elf.h>
#include <errno.h>
#include <sys/ptrace.h>
#include <sys/uio.h>

static int hs_result(long rc) { return rc == -1 ? -errno : 0; }

int hs_ptrace_seize(pid_t tid) { return hs_result(ptrace(PTRACE_SEIZE, tid, NULL, NULL)); }

int hs_ptrace_interrupt(pid_t tid) { return hs_result(ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)); }

int hs_ptrace_cont(pid_t tid, int signal) {
    return hs_result(ptrace(PTRACE_CONT, tid, NULL, (void *)(long)signal));
}

int hs_ptrace_detach(pid_t tid, int signal) {
    return hs_result(ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)signal));
}

int hs_ptrace_get_regs(pid_t tid, struct user_regs_struct *regs) {
    return hs_result(ptrace(PTRACE_GETREGS, tid, NULL, regs));
}

int hs_ptrace_set_regs(pid_t tid, const struct user_regs_struct *regs) {
    return hs_result(ptrace(PTRACE_SETREGS, tid, NULL, regs));
}

int hs_ptrace_get_xstate(pid_t tid, void *buffer, size_t *size) {
    struct iovec iov = {buffer, *size};
    int rc = hs_result(ptrace(PTRACE_GETREGSET, tid, (void *)(long)NT_X86_XSTATE, &iov));
    *size = iov.iov_len;
    return rc;
}

int hs_ptrace_set_xstate(pid_t tid, void *buffer, size_t size) {
    struct iovec iov = {buffer, size};
    return hs_result(ptrace(PTRACE_SETREGSET, tid, (void *)(long)NT_X86_XSTATE, &iov));
}

int hs_ptrace_get_fpregs(pid_t tid, struct user_fpregs_struct *fpregs) {
    return hs_result(ptrace(PTRACE_GETFPREGS, tid, NULL, fpregs));
}

int hs_ptrace_set_fpregs(pid_t tid, const struct user_fpregs_struct *fpregs) {
    return hs_result(ptrace(PTRACE_SETFPREGS, tid, NULL, fpregs));
}
