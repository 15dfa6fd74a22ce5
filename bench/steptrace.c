/*
 * steptrace: runs a command under ptrace, single-stepping it and every process it clones
 * until that process execs or exits, and writes each process's executed instruction
 * addresses, each once, in first-executed order. Used by bench/hot-text.sh to find the
 * code a berth-oci lifecycle runs (valgrind cannot: it lacks openat2 and the mount API).
 *
 *   steptrace PREFIX CMD [ARGS...]
 *
 * Writes PREFIX.0 (the command), PREFIX.1, PREFIX.2 ... (processes in the order they
 * appeared), one "I  <hex address>" line per distinct address. Exits with the command's
 * status once the command has exited; processes it left behind are then detached (their
 * traces end there). Needs ptrace rights over the command (root, or same user without Yama).
 * Slow (a few microseconds per instruction): fine for a runtime's few million.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __x86_64__
#error "steptrace reads the instruction pointer as x86_64's rip"
#endif

#define MAX_PROCS 64

struct proc {
    pid_t pid;
    int index;
    int started;      /* has had its first stop */
    FILE *out;
    uint64_t *set;    /* open-addressing hash set of addresses; 0 = empty */
    size_t cap, len;
};

static struct proc procs[MAX_PROCS];
static int nprocs;
static const char *prefix;

static struct proc *find(pid_t pid)
{
    for (int i = 0; i < nprocs; i++)
        if (procs[i].pid == pid)
            return &procs[i];
    return NULL;
}

static struct proc *add(pid_t pid)
{
    if (nprocs == MAX_PROCS) {
        fprintf(stderr, "steptrace: too many processes\n");
        exit(125);
    }
    struct proc *p = &procs[nprocs];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->index = nprocs++;
    char name[4096];
    snprintf(name, sizeof name, "%s.%d", prefix, p->index);
    p->out = fopen(name, "w");
    if (!p->out) {
        perror(name);
        exit(125);
    }
    p->cap = 1 << 16;
    p->set = calloc(p->cap, sizeof *p->set);
    if (!p->set) {
        perror("calloc");
        exit(125);
    }
    return p;
}

static void grow(struct proc *p)
{
    size_t cap = p->cap * 2;
    uint64_t *set = calloc(cap, sizeof *set);
    if (!set) {
        perror("calloc");
        exit(125);
    }
    for (size_t i = 0; i < p->cap; i++) {
        uint64_t a = p->set[i];
        if (!a)
            continue;
        size_t h = (a * 0x9E3779B97F4A7C15ull) >> 20 & (cap - 1);
        while (set[h])
            h = (h + 1) & (cap - 1);
        set[h] = a;
    }
    free(p->set);
    p->set = set;
    p->cap = cap;
}

static void record(struct proc *p, uint64_t a)
{
    if (!a)
        return;
    if (p->len * 2 >= p->cap)
        grow(p);
    size_t h = (a * 0x9E3779B97F4A7C15ull) >> 20 & (p->cap - 1);
    while (p->set[h]) {
        if (p->set[h] == a)
            return;
        h = (h + 1) & (p->cap - 1);
    }
    p->set[h] = a;
    p->len++;
    fprintf(p->out, "I  %llx\n", (unsigned long long)a);
}

static void finish(struct proc *p)
{
    if (p->out) {
        fclose(p->out);
        p->out = NULL;
    }
    free(p->set);
    p->set = NULL;
    p->pid = -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: steptrace PREFIX CMD [ARGS...]\n");
        return 125;
    }
    prefix = argv[1];
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 125;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
            perror("PTRACE_TRACEME");
            _exit(125);
        }
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    /* The SIGTRAP after the command's own execve: set options, start stepping. */
    if (waitpid(child, &status, 0) < 0 || !WIFSTOPPED(status)) {
        fprintf(stderr, "steptrace: %s did not start\n", argv[2]);
        return 125;
    }
    long opts = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                PTRACE_O_TRACEEXEC;
    ptrace(PTRACE_SETOPTIONS, child, NULL, (void *)opts);
    struct proc *root = add(child);
    root->started = 1;
    struct user_regs_struct regs0;
    if (ptrace(PTRACE_GETREGS, child, NULL, &regs0) == 0)
        record(root, regs0.rip);
    ptrace(PTRACE_SINGLESTEP, child, NULL, NULL);

    int exit_code = 0;
    for (;;) {
        pid_t pid = waitpid(-1, &status, __WALL);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break; /* ECHILD: nothing left */
        }
        struct proc *p = find(pid);
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (p)
                finish(p);
            if (pid == child) {
                /* Done when the command is: a process it leaves behind (the init after
                 * `create`, blocked until `start`) is detached when this tracer exits. */
                exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                break;
            }
            continue;
        }
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        if (!p) {
            /* A new clone's first stop (may come before its parent's event). */
            p = add(pid);
            p->started = 1;
            ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL);
            continue;
        }
        if (!p->started) {
            p->started = 1;
            ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL);
            continue;
        }
        if (sig == SIGTRAP && event) {
            if (event == PTRACE_EVENT_EXEC) {
                /* It now runs another program: stop tracing it. */
                finish(p);
                ptrace(PTRACE_DETACH, pid, NULL, NULL);
                continue;
            }
            if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK ||
                event == PTRACE_EVENT_VFORK) {
                unsigned long newpid = 0;
                ptrace(PTRACE_GETEVENTMSG, pid, NULL, &newpid);
                if (!find((pid_t)newpid))
                    add((pid_t)newpid)->started = 0;
            }
            ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL);
            continue;
        }
        if (sig == SIGTRAP) {
            struct user_regs_struct regs;
            if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) == 0)
                record(p, regs.rip);
            ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL);
            continue;
        }
        /* A signal for the tracee: deliver it. A new clone's initial SIGSTOP is handled
         * above (started == 0). */
        ptrace(PTRACE_SINGLESTEP, pid, NULL, (void *)(long)sig);
    }
    /* Detach what is left (the init after `create`): stop it, then PTRACE_DETACH, which
     * also turns single-stepping off. (Just exiting would detach it too, but with the trap
     * flag still set: its next instruction would kill it with SIGTRAP.) */
    for (int i = 0; i < nprocs; i++) {
        struct proc *p = &procs[i];
        if (p->pid == -1)
            continue;
        pid_t pid = p->pid;
        finish(p);
        if (kill(pid, SIGSTOP) < 0)
            continue;
        for (;;) {
            if (waitpid(pid, &status, __WALL) < 0 || !WIFSTOPPED(status))
                break;
            int sig = WSTOPSIG(status);
            if (sig == SIGSTOP) {
                ptrace(PTRACE_DETACH, pid, NULL, NULL);
                break;
            }
            /* A step or event stop first: let it run (not stepping) until the SIGSTOP. */
            ptrace(PTRACE_CONT, pid, NULL,
                   (void *)(long)(sig == SIGTRAP || (status >> 16) ? 0 : sig));
        }
    }
    return exit_code;
}
