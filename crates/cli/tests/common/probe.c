/* berth tests' syscall probe: `probe NAME...` makes each call and prints NAME=ok or
   NAME=<errno name>. Built static by run_security.rs and added to its test image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The child's verdict comes back as its exit status: 0 or the errno. */
static long in_child(long (*f)(void)) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) { long r = f(); _exit(r < 0 ? errno : 0); }
    int st; waitpid(pid, &st, 0);
    if (WEXITSTATUS(st)) { errno = WEXITSTATUS(st); return -1; }
    return 0;
}
static long traceme(void) { return ptrace(PTRACE_TRACEME, 0, 0, 0); }
static long newuser(void) { return unshare(CLONE_NEWUSER); }

static long call(const char *n) {
    if (!strcmp(n, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(n, "add_key")) return syscall(SYS_add_key, "", "berth-probe", "x", 1, -3);
    if (!strcmp(n, "request_key")) return syscall(SYS_request_key, "", "", 0, 0);
    if (!strcmp(n, "bpf")) return syscall(SYS_bpf, 9999, 0, 0);
    if (!strcmp(n, "kexec_load")) return syscall(SYS_kexec_load, 0, 1000, 0, 0);
    if (!strcmp(n, "perf_event_open")) return syscall(SYS_perf_event_open, 0, 0, -1, -1, 0);
    if (!strcmp(n, "mount")) return mount("none", "/nonexistent-berth", "tmpfs", 0, 0);
    if (!strcmp(n, "umount2")) return umount2("/", 0x100);
    if (!strcmp(n, "swapon")) return swapon("/nonexistent-berth", 0);
    if (!strcmp(n, "setns")) return setns(-1, 0);
    if (!strcmp(n, "unshare_user")) return in_child(newuser);
    if (!strcmp(n, "unshare_files")) return unshare(CLONE_FILES);
    if (!strcmp(n, "clone_newuser")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, 0, 0);
        return pid;
    }
    if (!strcmp(n, "clone3")) return syscall(SYS_clone3, 0, 0);
    if (!strcmp(n, "fork")) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, 0, 0);
        return pid;
    }
    if (!strcmp(n, "io_uring_setup")) return syscall(SYS_io_uring_setup, 1, 0);
    if (!strcmp(n, "userfaultfd")) return syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* USER_MODE_ONLY */);
    if (!strcmp(n, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, 0, 0);
    if (!strcmp(n, "clock_settime")) return syscall(SYS_clock_settime, CLOCK_REALTIME, 0);
    if (!strcmp(n, "ptrace")) return in_child(traceme);
    if (!strcmp(n, "personality_linux32")) {
        long r = personality(PER_LINUX32);
        if (r >= 0) personality(PER_LINUX);
        return r;
    }
    if (!strcmp(n, "personality_no_aslr")) {
        long r = personality(ADDR_NO_RANDOMIZE);
        if (r >= 0) personality(PER_LINUX);
        return r;
    }
    if (!strcmp(n, "socket_inet")) return socket(AF_INET, SOCK_STREAM, 0);
    if (!strcmp(n, "socket_vsock")) return socket(40, SOCK_STREAM, 0);
    /* AF_VSOCK with garbage in the upper half: the kernel reads an int. */
    if (!strcmp(n, "socket_vsock_high")) return syscall(SYS_socket, 0x100000028L, SOCK_STREAM, 0);
    errno = EDOM;
    return -1;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        printf("%s=%s\n", argv[i], r < 0 ? strerrorname_np(errno) : "ok");
    }
    return 0;
}
