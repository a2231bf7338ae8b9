/*
 * The trial zygote, compiled: what zygote_init.py does, step by step, without an interpreter to fork
 * per trial (its copy-on-write faults, page tables and teardown on exec were most of a trial's CPU).
 * zygote.py compiles this file on first need and runs it, like the Python program, as PID 1 of a
 * worker's bubblewrap sandbox:
 *
 *     zygote opslab-zygote PROGRAM_FD CONTROL_FD SECCOMP_FD
 *
 * PROGRAM_FD is the descriptor it was executed from (closed at once), CONTROL_FD the runner's control
 * socket, SECCOMP_FD the trial's seccomp filter (read to its end, then closed).
 *
 * Control socket: "H" (the runner reads this process's pid from the credentials the kernel attaches),
 * then "G" from the runner; then per trial a 1-byte message carrying 3 descriptors (SCM_RIGHTS): the
 * trial's SOCK_SEQPACKET socket, its stdout and its stderr. On the trial's socket: the request (the
 * wire format below), then from the trial's first process "R" (its pid in the credentials), "G" from
 * the runner (which may be waiting already, sent with the request: the process then runs at once),
 * "E<Type>: message" if a step fails (exit 127); after the trial ends and every other process of the
 * namespace is killed and reaped (and the IPC objects it left removed), "X<wait status>" from the zygote.
 *
 * IPC: where the sandbox's own message queues are mounted on /dev/mqueue (bwrap --mqueue) and its IPC
 * namespace is its own (made by the sandbox's user namespace), a trial uses that namespace, one trial
 * after another, and every System V object and POSIX message queue it leaves is removed before the next
 * (a namespace made and torn down per trial cost it ~0.15 ms of CPU, mostly the kernel's); a sandbox that
 * cannot be cleaned so ends this zygote. Elsewhere each trial has an IPC namespace of its own.
 *
 * The request, version 1 (zygote.encode writes it, zygote_init.decode reads it too): NUL-terminated
 * fields, numbers in decimal, nothing after the last.
 *
 *     "opslab-zygote/1"  flags ("" or "probe")  uid  gid  cwd
 *     N  (resource  limit) x N                   rlimits, soft = hard
 *     N  (kind  first  second) x N               mounts: "bind" source target, "tmpfs" target options
 *     N  (arg) x N                               argv
 *     N  (NAME=value) x N                        environment
 *
 * It is built by the runner, but read as if it were not: every length and count is checked.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/nsfs.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define WIRE_VERSION "opslab-zygote/1"
#define DEFAULT_PATH "/bin:/usr/bin" /* Python's os.defpath: what os.execvpe searches without PATH */
#define REQUEST_MAX (1 << 20)
#define REASON_MAX 4000
#define RLIMITS_MAX 16
#define MOUNTS_MAX 1024
#define STRINGS_MAX (1 << 16)
#define TRIAL_STACK (256 * 1024)
#define MQUEUE_DIR "/dev/mqueue"
#define MQUEUE_MAGIC 0x19800202 /* the mqueue file system's (the kernel's ipc/mqueue.c) */
/* Linux 4.17's: stat an object whatever its permissions (a trial may leave one of mode 0). */
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY 20
#endif
#ifndef MSG_STAT_ANY
#define MSG_STAT_ANY 13
#endif

/* A trial's namespaces: its own user and mount namespaces, and its own IPC namespace unless the
 * sandbox's is shared and cleaned (``share_ipc``). */
static int trial_namespaces = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC;
/* The sandbox's POSIX message queues, listed after each trial (NULL: IPC namespaces per trial). */
static DIR *mqueues;

/* The kernel's own struct sigaction (rt_sigaction(2)), as on x86-64 and arm64, and its signals. */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};
#define KERNEL_NSIG 64

struct mount_op {
    bool bind;
    char *first;  /* bind: the source; tmpfs: the target */
    char *second; /* bind: the target; tmpfs: its options */
};

struct request {
    bool probe;
    uid_t uid;
    gid_t gid;
    char *cwd;
    size_t n_rlimits;
    struct {
        int resource;
        rlim_t value;
    } rlimits[RLIMITS_MAX];
    size_t n_mounts;
    struct mount_op *mounts;
    char **argv; /* NULL-terminated, pointing into the request's buffer */
    char **env;
};

/* Read once at start: the trials' filter and the highest capability of this kernel. */
static struct sock_filter filter[BPF_MAXINSNS];
static unsigned short filter_len;
static int cap_last;

/* The request as received; the fields point into it. A forked trial only reads it (no page copied). */
static char request_buf[REQUEST_MAX];

static void fatal(const char *what)
{
    fprintf(stderr, "opslab-zygote: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* ---------------------------------------------------------------------------------------------- */
/* The request */

struct reader {
    char *at;
    char *end;
};

/* The next NUL-terminated field, or NULL when the message ends first. */
static char *next_field(struct reader *r)
{
    if (r->at >= r->end)
        return NULL;
    char *nul = memchr(r->at, '\0', (size_t)(r->end - r->at));
    if (nul == NULL)
        return NULL;
    char *field = r->at;
    r->at = nul + 1;
    return field;
}

/* A decimal number of at most max: digits only, no sign, no overflow. */
static bool parse_number(const char *text, unsigned long long max, unsigned long long *out)
{
    unsigned long long value = 0;
    if (*text == '\0')
        return false;
    for (; *text != '\0'; text++) {
        if (*text < '0' || *text > '9')
            return false;
        unsigned digit = (unsigned)(*text - '0');
        if (value > (max - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

static bool next_number(struct reader *r, unsigned long long max, unsigned long long *out)
{
    const char *field = next_field(r);
    return field != NULL && parse_number(field, max, out);
}

/* A count of fields, then that many fields as a NULL-terminated array (NULL if malformed). */
static char **next_strings(struct reader *r, bool assignments)
{
    unsigned long long count;
    if (!next_number(r, STRINGS_MAX, &count))
        return NULL;
    char **list = calloc((size_t)count + 1, sizeof *list);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        list[i] = next_field(r);
        if (list[i] == NULL || (assignments && (list[i][0] == '=' || strchr(list[i], '=') == NULL))) {
            free(list);
            return NULL;
        }
    }
    return list;
}

static void free_request(struct request *req)
{
    free(req->mounts);
    free(req->argv);
    free(req->env);
    req->mounts = NULL;
    req->argv = req->env = NULL;
}

/* The request in request_buf[0..len) into req; false (nothing held) if it is not one. */
static bool parse_request(size_t len, struct request *req)
{
    struct reader r = {request_buf, request_buf + len};
    unsigned long long number, count;
    memset(req, 0, sizeof *req);

    const char *version = next_field(&r);
    const char *flags = next_field(&r);
    if (version == NULL || strcmp(version, WIRE_VERSION) != 0 || flags == NULL)
        return false;
    if (strcmp(flags, "probe") == 0)
        req->probe = true;
    else if (flags[0] != '\0')
        return false;
    if (!next_number(&r, (uid_t)-2, &number))
        return false;
    req->uid = (uid_t)number;
    if (!next_number(&r, (gid_t)-2, &number))
        return false;
    req->gid = (gid_t)number;
    if ((req->cwd = next_field(&r)) == NULL)
        return false;

    if (!next_number(&r, RLIMITS_MAX, &count))
        return false;
    req->n_rlimits = (size_t)count;
    for (size_t i = 0; i < req->n_rlimits; i++) {
        if (!next_number(&r, RLIM_NLIMITS - 1, &number))
            return false;
        req->rlimits[i].resource = (int)number;
        if (!next_number(&r, RLIM_INFINITY, &number))
            return false;
        req->rlimits[i].value = (rlim_t)number;
    }

    if (!next_number(&r, MOUNTS_MAX, &count))
        return false;
    req->n_mounts = (size_t)count;
    req->mounts = calloc(req->n_mounts + 1, sizeof *req->mounts);
    if (req->mounts == NULL)
        return false;
    for (size_t i = 0; i < req->n_mounts; i++) {
        struct mount_op *op = &req->mounts[i];
        const char *kind = next_field(&r);
        op->first = next_field(&r);
        op->second = next_field(&r);
        if (kind == NULL || op->second == NULL)
            goto malformed;
        if (strcmp(kind, "bind") == 0)
            op->bind = true;
        else if (strcmp(kind, "tmpfs") != 0)
            goto malformed;
    }

    if ((req->argv = next_strings(&r, false)) == NULL)
        goto malformed;
    if ((req->env = next_strings(&r, true)) == NULL)
        goto malformed;
    if (r.at != r.end)
        goto malformed;
    return true;

malformed:
    free_request(req);
    return false;
}

/* ---------------------------------------------------------------------------------------------- */
/* The trial's first process */

/* The name of the Python exception os.* would raise for err (the runner shows it as the reason). */
static const char *error_type(int err)
{
    switch (err) {
    case ENOENT:
        return "FileNotFoundError";
    case EACCES:
    case EPERM:
        return "PermissionError";
    case ENOTDIR:
        return "NotADirectoryError";
    case EISDIR:
        return "IsADirectoryError";
    case EEXIST:
        return "FileExistsError";
    case EAGAIN:
        return "BlockingIOError";
    default:
        return "OSError";
    }
}

/* Tell the runner why the trial cannot run: "E<Type>: [Errno N] what: reason". */
static void send_reason(int conn, int err, const char *fmt, va_list args)
{
    char what[REASON_MAX];
    char reason[REASON_MAX];
    vsnprintf(what, sizeof what, fmt, args);
    int len = snprintf(reason, sizeof reason, "E%s: [Errno %d] %s: %s", error_type(err), err, what,
                       strerror(err));
    if (len > 0)
        (void)send(conn, reason, (size_t)len < sizeof reason ? (size_t)len : sizeof reason - 1,
                   MSG_NOSIGNAL);
}

/* The step that failed, told the runner: by the zygote (``report``), or by the trial's first process,
 * which then ends (``fail``). */
__attribute__((format(printf, 3, 4))) static void report(int conn, int err, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    send_reason(conn, err, fmt, args);
    va_end(args);
}

__attribute__((format(printf, 3, 4), noreturn)) static void fail(int conn, int err, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    send_reason(conn, err, fmt, args);
    va_end(args);
    _exit(127);
}

static void write_file(int conn, const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        fail(conn, errno, "open '%s'", path);
    size_t len = strlen(text);
    ssize_t written = write(fd, text, len);
    if (written < 0)
        fail(conn, errno, "write '%s'", path);
    if ((size_t)written != len)
        fail(conn, EIO, "write '%s' (short)", path);
    if (close(fd) != 0)
        fail(conn, errno, "close '%s'", path);
}

/* The trial's namespaces, ``trial_namespaces`` (``made``: the clone that started it made them, else
 * unshared here); uid and gid stay what they were. */
static void enter_namespaces(int conn, uid_t uid, gid_t gid, bool made)
{
    char map[64];
    if (!made && unshare(trial_namespaces) != 0)
        fail(conn, errno, "unshare");
    write_file(conn, "/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
    write_file(conn, "/proc/self/uid_map", map);
    snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
    write_file(conn, "/proc/self/gid_map", map);
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        fail(conn, errno, "mount /");
}

/* mkdir -p (Python's os.makedirs(path, exist_ok=True)): 0 or -1 with errno. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0) {
        errno = ENOENT;
        return -1;
    }
    if (len >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0; /* the usual case: no mkdir for each of its parents */
    /* From the deepest folder up to the first that exists (a bind's target: its trial's folder, on the
     * tmpfs that covers the run's), then down again: not a mkdir for each of the path's parents. */
    memcpy(buf, path, len + 1);
    for (;;) {
        if (mkdir(buf, 0777) == 0 || errno == EEXIST)
            break;
        char *slash = strrchr(buf, '/');
        if (errno != ENOENT || slash == NULL || slash == buf)
            return -1;
        *slash = '\0';
    }
    for (size_t end = strlen(buf); end < len; end = strlen(buf)) {
        buf[end] = '/';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
    }
    if (stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    return 0;
}

/* The trial's mounts in order; bind sources are opened before anything is covered. */
static void place(int conn, const struct request *req)
{
    static int sources[MOUNTS_MAX];
    char source[64];
    for (size_t i = 0; i < req->n_mounts; i++) {
        sources[i] = -1;
        if (req->mounts[i].bind && (sources[i] = open(req->mounts[i].first, O_PATH | O_CLOEXEC)) < 0)
            fail(conn, errno, "open '%s'", req->mounts[i].first);
    }
    for (size_t i = 0; i < req->n_mounts; i++) {
        const struct mount_op *op = &req->mounts[i];
        if (!op->bind) {
            if (make_dirs(op->first) != 0)
                fail(conn, errno, "makedirs '%s'", op->first);
            if (mount("tmpfs", op->first, "tmpfs", MS_NOSUID | MS_NODEV, op->second) != 0)
                fail(conn, errno, "mount %s", op->first);
        } else {
            if (make_dirs(op->second) != 0)
                fail(conn, errno, "makedirs '%s'", op->second);
            snprintf(source, sizeof source, "/proc/self/fd/%d", sources[i]);
            if (mount(source, op->second, NULL, MS_BIND, NULL) != 0)
                fail(conn, errno, "mount %s", op->second);
        }
    }
    for (size_t i = 0; i < req->n_mounts; i++)
        if (sources[i] >= 0 && close(sources[i]) != 0)
            fail(conn, errno, "close");
}

/* No capability left in any set, no_new_privs, then the seccomp filter (as bubblewrap's order). */
static void drop_privileges(int conn)
{
    for (int cap = 0; cap <= cap_last; cap++)
        if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0UL, 0UL, 0UL) != 0)
            fail(conn, errno, "prctl(PR_CAPBSET_DROP, %d)", cap);
    if (prctl(PR_CAP_AMBIENT, (unsigned long)PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) != 0)
        fail(conn, errno, "ambient capabilities");
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data); /* effective, permitted, inheritable: empty */
    if (syscall(SYS_capset, &header, data) != 0)
        fail(conn, errno, "capset");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) != 0)
        fail(conn, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    struct sock_fprog program = {.len = filter_len, .filter = filter};
    if (prctl(PR_SET_SECCOMP, (unsigned long)SECCOMP_MODE_FILTER, (unsigned long)&program, 0UL, 0UL) != 0)
        fail(conn, errno, "seccomp");
}

/* Python's os.execvpe(argv[0], argv, env): a name without "/" is searched in the PATH of env (not
 * this process's), else in the default path; no shell for a file that is not executable as is. The
 * error raised is the first that is not "not found" (ENOENT, ENOTDIR), else the last. */
__attribute__((noreturn)) static void exec_harness(int conn, char *const argv[], char *const env[])
{
    const char *file = argv[0];
    if (file == NULL)
        fail(conn, EINVAL, "the request has no argv");
    if (strchr(file, '/') != NULL) {
        execve(file, argv, env);
        fail(conn, errno, "execve '%s'", file);
    }
    const char *path = DEFAULT_PATH;
    for (char *const *entry = env; *entry != NULL; entry++) {
        if (strncmp(*entry, "PATH=", 5) == 0) {
            path = *entry + 5;
            break;
        }
    }
    static char tried[PATH_MAX], saved[PATH_MAX];
    int last_err = ENOENT, saved_err = 0;
    size_t file_len = strlen(file);
    for (const char *dir = path;; dir++) {
        const char *end = strchrnul(dir, ':');
        size_t dir_len = (size_t)(end - dir);
        bool slash = dir_len > 0 && dir[dir_len - 1] != '/';
        int err;
        if (dir_len + slash + file_len >= sizeof tried) {
            snprintf(tried, sizeof tried, "%.*s", (int)(dir_len > 256 ? 256 : dir_len), dir);
            err = ENAMETOOLONG;
        } else {
            memcpy(tried, dir, dir_len);
            if (slash)
                tried[dir_len] = '/';
            memcpy(tried + dir_len + slash, file, file_len + 1);
            execve(tried, argv, env);
            err = errno;
        }
        last_err = err;
        if (err != ENOENT && err != ENOTDIR && saved_err == 0) {
            saved_err = err;
            memcpy(saved, tried, sizeof saved);
        }
        if (*end == '\0')
            break;
        dir = end;
    }
    if (saved_err != 0)
        fail(conn, saved_err, "execve '%s'", saved);
    fail(conn, last_err, "execve '%s'", tried);
}

/* In the trial's first process: never returns. ``made``: its namespaces were made by its clone. */
__attribute__((noreturn)) static void start_trial(const struct request *req, int conn, int out, int err,
                                                  bool made)
{
    /* Every signal back to its default, those the C library keeps for itself (32, 33) included: its
     * sigaction refuses them, the kernel does not, and an ignored one is inherited through exec (make
     * ignores them, for one). */
    struct kernel_sigaction dfl;
    memset(&dfl, 0, sizeof dfl); /* SIG_DFL, no flags, an empty mask */
    for (int sig = 1; sig <= KERNEL_NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP
            && syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask) != 0)
            fail(conn, errno, "rt_sigaction(%d)", sig);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        fail(conn, errno, "sigprocmask");
    if (prctl(PR_SET_PDEATHSIG, (unsigned long)SIGKILL, 0UL, 0UL, 0UL) != 0)
        fail(conn, errno, "prctl(PR_SET_PDEATHSIG)");
    enter_namespaces(conn, req->uid, req->gid, made);
    place(conn, req);
    if (chdir(req->cwd) != 0)
        fail(conn, errno, "chdir '%s'", req->cwd);
    if (setsid() < 0)
        fail(conn, errno, "setsid");
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0)
        fail(conn, errno, "open '/dev/null'");
    if (dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        fail(conn, errno, "dup2");
    for (size_t i = 0; i < req->n_rlimits; i++) {
        struct rlimit limit = {req->rlimits[i].value, req->rlimits[i].value};
        if (setrlimit(req->rlimits[i].resource, &limit) != 0)
            fail(conn, errno, "setrlimit(%d)", req->rlimits[i].resource);
    }
    /* The runner reads this process's pid from the message's credentials. */
    if (send(conn, "R", 1, MSG_NOSIGNAL) != 1)
        fail(conn, errno, "send");
    char go;
    ssize_t n;
    while ((n = recv(conn, &go, 1, 0)) < 0 && errno == EINTR)
        continue;
    if (n < 0)
        fail(conn, errno, "recv");
    if (n != 1 || go != 'G')
        _exit(125);
    if (unshare(CLONE_NEWCGROUP) != 0)
        fail(conn, errno, "unshare cgroup");
    drop_privileges(conn);
    if (req->probe)
        _exit(0);
    exec_harness(conn, req->argv, req->env);
}

/* ---------------------------------------------------------------------------------------------- */
/* What a trial leaves in the sandbox's IPC namespace */

union semun { /* semctl(2)'s fourth argument: the caller defines it */
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *info;
};

/* How many objects of System V ``kind`` ('m' shared memory, 's' semaphore sets, 'q' message queues)
 * the namespace holds; *top: the highest index in use (the zygote ends if it cannot be asked). */
static int sysv_count(char kind, int *top)
{
    int in_use = 0;
    if (kind == 'm') {
        struct shm_info info = {0};
        *top = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&info);
        in_use = info.used_ids;
    } else if (kind == 's') {
        struct seminfo info = {0};
        union semun arg = {.info = &info};
        *top = semctl(0, 0, SEM_INFO, arg);
        in_use = info.semusz;
    } else {
        struct msginfo info = {0};
        *top = msgctl(0, MSG_INFO, (struct msqid_ds *)(void *)&info);
        in_use = info.msgpool;
    }
    if (*top < 0)
        fatal("count the System V IPC objects");
    return in_use;
}

/* The id of the System V object of ``kind`` at ``index``, or -1 (errno EINVAL: none there). */
static int sysv_at(char kind, int index)
{
    if (kind == 'm') {
        struct shmid_ds ds;
        return shmctl(index, SHM_STAT_ANY, &ds);
    }
    if (kind == 's') {
        struct semid_ds ds;
        union semun arg = {.buf = &ds};
        return semctl(index, 0, SEM_STAT_ANY, arg);
    }
    struct msqid_ds ds;
    return msgctl(index, MSG_STAT_ANY, &ds);
}

static int sysv_remove(char kind, int id)
{
    if (kind == 'm')
        return shmctl(id, IPC_RMID, NULL);
    if (kind == 's')
        return semctl(id, 0, IPC_RMID);
    return msgctl(id, IPC_RMID, NULL);
}

/* Every System V object and POSIX message queue in the namespace removed (every process of the trial is
 * gone: none is in use); the zygote ends if one is left. */
static void clear_ipc(void)
{
    for (const char *kind = "msq"; *kind; kind++) {
        int top;
        if (sysv_count(*kind, &top) == 0)
            continue; /* the usual case: one call a kind */
        for (int i = 0; i <= top; i++) {
            int id = sysv_at(*kind, i);
            if (id < 0 && errno != EINVAL)
                fatal("stat a System V IPC object");
            if (id >= 0 && sysv_remove(*kind, id) != 0 && errno != EIDRM && errno != EINVAL)
                fatal("remove a System V IPC object");
        }
        if (sysv_count(*kind, &top) != 0) {
            errno = EBUSY;
            fatal("a trial's System V IPC object could not be removed");
        }
    }
    for (int pass = 0; pass < 2; pass++) { /* the second finds none, or the zygote ends */
        rewinddir(mqueues);
        errno = 0;
        struct dirent *entry;
        while ((entry = readdir(mqueues)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
                continue;
            if (pass > 0) {
                errno = EBUSY;
                fatal("a trial's message queue could not be removed");
            }
            /* The system call takes the name without mq_unlink(3)'s leading slash. */
            if (syscall(SYS_mq_unlink, entry->d_name) != 0 && errno != ENOENT)
                fatal("mq_unlink");
            errno = 0;
        }
        if (errno != 0)
            fatal("readdir " MQUEUE_DIR);
    }
}

/* Whether ``fd`` (a namespace) is owned by the user namespace this process is in. */
static bool owned_by_own_user_namespace(int fd)
{
    int owner = ioctl(fd, NS_GET_USERNS);
    if (owner < 0)
        return false;
    struct stat a, b;
    bool same = fstat(owner, &a) == 0 && stat("/proc/self/ns/user", &b) == 0 && a.st_dev == b.st_dev &&
                a.st_ino == b.st_ino;
    close(owner);
    return same;
}

/* Trials share the sandbox's IPC namespace, cleaned after each, when its message queues can be listed
 * (the mqueue file system on MQUEUE_DIR) and it is surely the sandbox's own: made by the sandbox's user
 * namespace, never the machine's (whose objects this would remove). Else, a namespace per trial. */
static void share_ipc(void)
{
    int dir = open(MQUEUE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return;
    int ipc = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
    struct statfs fs;
    bool own = ipc >= 0 && owned_by_own_user_namespace(ipc);
    if (ipc >= 0)
        close(ipc);
    if (!own || fstatfs(dir, &fs) != 0 || fs.f_type != MQUEUE_MAGIC ||
        (mqueues = fdopendir(dir)) == NULL) {
        close(dir);
        return;
    }
    clear_ipc(); /* a new namespace holds nothing: this checks that it can be cleaned */
    trial_namespaces &= ~CLONE_NEWIPC;
}

/* ---------------------------------------------------------------------------------------------- */
/* The zygote */

/* Wait for pid (reaping every other child meanwhile) and return its wait status; with -1, reap until
 * no child is left. */
static int reap(pid_t pid)
{
    for (;;) {
        int status;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ECHILD)
                return 0;
            fatal("waitpid");
        }
        if (pid > 0 && done == pid)
            return status;
    }
}

static void close_all(const int *fds, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (close(fds[i]) != 0)
            fatal("close");
}

struct trial_start {
    const struct request *req;
    int conn, out, err;
};

static int trial_main(void *arg)
{
    const struct trial_start *start = arg;
    start_trial(start->req, start->conn, start->out, start->err, true);
}

/* The trial's first process, in namespaces of its own, or -1 (its reason sent on conn). Cloned as
 * posix_spawn does (the address space shared, this process waiting until it executes the harness or
 * ends): no page tables copied and no copy-on-write fault per trial, and its namespaces made by the
 * clone itself (cheaper than an unshare after a fork). Where the kernel refuses that clone, a fork that
 * unshares them. */
static pid_t spawn_trial(const struct request *req, int conn, int out, int err)
{
    static char stack[TRIAL_STACK] __attribute__((aligned(16)));
    static bool clone_refused;
    if (!clone_refused) {
        struct trial_start start = {req, conn, out, err};
        int flags = CLONE_VM | CLONE_VFORK | trial_namespaces | SIGCHLD;
        pid_t pid = clone(trial_main, stack + sizeof stack, flags, &start);
        if (pid >= 0)
            return pid;
        if (errno != EINVAL) {
            report(conn, errno, "clone");
            return -1;
        }
        clone_refused = true;
    }
    pid_t pid = fork();
    if (pid == 0)
        start_trial(req, conn, out, err, false);
    if (pid < 0)
        report(conn, errno, "fork");
    return pid;
}

static void run_one(int conn, int out, int err)
{
    struct request req;
    ssize_t len;
    /* MSG_TRUNC: the message's real length, so that one over REQUEST_MAX is refused, not cut. */
    while ((len = recv(conn, request_buf, sizeof request_buf, MSG_TRUNC)) < 0 && errno == EINTR)
        continue;
    if (len <= 0 || (size_t)len > sizeof request_buf || !parse_request((size_t)len, &req)) {
        int fds[] = {out, err, conn};
        close_all(fds, 3); /* the runner reads EOF: the trial could not be started */
        return;
    }
    pid_t pid = spawn_trial(&req, conn, out, err);
    int fds[] = {out, err};
    close_all(fds, 2);
    free_request(&req);
    if (pid < 0) {
        close_all(&conn, 1);
        return;
    }
    int status = reap(pid);
    if (kill(-1, SIGKILL) != 0 && errno != ESRCH) /* from PID 1: every process of the namespace but it */
        fatal("kill");
    reap(-1);
    if (mqueues != NULL)
        clear_ipc();
    char done[32];
    int n = snprintf(done, sizeof done, "X%d", status);
    (void)send(conn, done, (size_t)n, MSG_NOSIGNAL); /* the runner may be gone: nothing to tell */
    close_all(&conn, 1);
}

static void serve(int control)
{
    for (;;) {
        char byte;
        union {
            char buf[CMSG_SPACE(3 * sizeof(int))];
            struct cmsghdr align;
        } space;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        struct msghdr msg = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = space.buf,
            .msg_controllen = sizeof space.buf,
        };
        ssize_t n = recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fatal("recvmsg");
        }
        if (n == 0)
            return; /* the runner closed its end: the worker is done */
        int fds[3];
        size_t count = 0;
        bool malformed = (msg.msg_flags & MSG_CTRUNC) != 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t held = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            size_t room = (size_t)((char *)msg.msg_control + msg.msg_controllen - (char *)CMSG_DATA(c));
            if (held > room / sizeof(int)) {
                held = room / sizeof(int);
                malformed = true;
            }
            for (size_t i = 0; i < held; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
                if (count < 3) {
                    fds[count++] = fd;
                    continue;
                }
                malformed = true; /* more than a trial's three */
                if (close(fd) != 0)
                    fatal("close");
            }
        }
        if (malformed || count != 3) {
            close_all(fds, count);
            continue;
        }
        run_one(fds[0], fds[1], fds[2]);
    }
}

static int parse_fd(const char *text)
{
    unsigned long long fd;
    if (!parse_number(text, 1 << 20, &fd)) {
        fprintf(stderr, "opslab-zygote: not a descriptor: %s\n", text);
        exit(2);
    }
    return (int)fd;
}

/* 0, 1 and 2 open (on /dev/null if they were not), so that no descriptor received later takes one. */
static void keep_standard_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            continue;
        if (errno != EBADF)
            fatal("fcntl");
        int null = open("/dev/null", O_RDWR);
        if (null < 0)
            fatal("open /dev/null");
        if (null != fd)
            fatal("open /dev/null (standard descriptor)");
    }
}

static void read_seccomp(int fd)
{
    size_t got = 0;
    char *into = (char *)filter;
    for (;;) {
        ssize_t n = read(fd, into + got, sizeof filter - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fatal("read the seccomp filter");
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == sizeof filter) {
            char more;
            if (read(fd, &more, 1) != 0) {
                errno = E2BIG;
                fatal("read the seccomp filter");
            }
            break;
        }
    }
    if (close(fd) != 0)
        fatal("close the seccomp filter");
    if (got == 0 || got % sizeof filter[0] != 0) {
        errno = EINVAL;
        fatal("the seccomp filter");
    }
    filter_len = (unsigned short)(got / sizeof filter[0]);
}

static void read_cap_last(void)
{
    char text[16];
    int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fatal("open /proc/sys/kernel/cap_last_cap");
    ssize_t n = read(fd, text, sizeof text - 1);
    if (n < 0)
        fatal("read /proc/sys/kernel/cap_last_cap");
    if (close(fd) != 0)
        fatal("close /proc/sys/kernel/cap_last_cap");
    text[n] = '\0';
    if (n > 0 && text[n - 1] == '\n')
        text[n - 1] = '\0';
    unsigned long long value;
    if (!parse_number(text, 63, &value)) {
        errno = EINVAL;
        fatal("/proc/sys/kernel/cap_last_cap");
    }
    cap_last = (int)value;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s opslab-zygote PROGRAM_FD CONTROL_FD SECCOMP_FD\n", argv[0]);
        return 2;
    }
    int program = parse_fd(argv[2]), control = parse_fd(argv[3]), seccomp = parse_fd(argv[4]);
    if (getpid() != 1) {
        /* kill(-1) after each trial is safe only as PID 1 of a namespace of the sandbox's own. */
        fprintf(stderr, "opslab-zygote: not PID 1 of its own namespace\n");
        return 2;
    }
    if (close(program) != 0)
        fatal("close the program's descriptor");
    keep_standard_fds();
    if (prctl(PR_SET_DUMPABLE, 0UL, 0UL, 0UL, 0UL) != 0)
        fatal("prctl(PR_SET_DUMPABLE)");
    if (prctl(PR_SET_NAME, (unsigned long)"opslab-zygote", 0UL, 0UL, 0UL) != 0)
        fatal("prctl(PR_SET_NAME)");
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    if (sigaction(SIGINT, &ignore, NULL) != 0) /* PID 1 takes only the signals it handles: none */
        fatal("sigaction");
    if (fcntl(control, F_SETFD, FD_CLOEXEC) != 0)
        fatal("fcntl(control)");
    read_cap_last();
    read_seccomp(seccomp);
    share_ipc();
    /* The runner reads this process's pid and puts it in the worker's cgroup. */
    if (send(control, "H", 1, MSG_NOSIGNAL) != 1)
        fatal("send");
    char go;
    ssize_t n;
    while ((n = recv(control, &go, 1, 0)) < 0 && errno == EINTR)
        continue;
    if (n < 0)
        fatal("recv");
    if (n != 1 || go != 'G')
        return 0;
    serve(control);
    return 0;
}
