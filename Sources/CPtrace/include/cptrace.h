// ptrace(2) for Swift, which cannot call it (it is variadic): one function per
// request heapscope attach makes, each returning 0 or -errno. Linux x86-64.
#ifndef CPTRACE_H
#define CPTRACE_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/ptrace.h>   // PTRACE_EVENT_STOP
#include <sys/user.h>

// PTRACE_SEIZE with no options: the thread keeps running, no signal is sent.
int hs_ptrace_seize(pid_t tid);
// PTRACE_INTERRUPT: stops a seized thread (a PTRACE_EVENT_STOP), ending a
// blocking system call with -ERESTART*; the kernel restarts it on resume if
// the registers still say so.
int hs_ptrace_interrupt(pid_t tid);
int hs_ptrace_cont(pid_t tid, int signal);
// From a signal stop, `signal` is delivered (0: none).
int hs_ptrace_detach(pid_t tid, int signal);

int hs_ptrace_get_regs(pid_t tid, struct user_regs_struct *regs);
int hs_ptrace_set_regs(pid_t tid, const struct user_regs_struct *regs);

// The thread's whole FPU and vector state in the XSAVE layout (NT_X86_XSTATE).
// *size: the buffer's capacity in, the kernel's size out. The kernel takes it
// back only at exactly that size (a debugger writing less gets EFAULT).
int hs_ptrace_get_xstate(pid_t tid, void *buffer, size_t *size);
int hs_ptrace_set_xstate(pid_t tid, void *buffer, size_t size);

// The legacy FXSAVE area, where the kernel has no XSAVE state.
int hs_ptrace_get_fpregs(pid_t tid, struct user_fpregs_struct *fpregs);
int hs_ptrace_set_fpregs(pid_t tid, const struct user_fpregs_struct *fpregs);

#endif
