/*
 * hog: a predictable anonymous-memory hog for labcoat's memory labs.
 *
 *   hog [--name NAME] [--adj N] [--adj-strict] [--step-mib M] [--step-ms T]
 *       [--hold | --exit] [--leak KIB_PER_S [--leak-cap MIB]] [--i-know-there-is-no-limit] MIB
 *
 * It names itself NAME (prctl PR_SET_NAME, so ps, /proc/PID/comm and the kernel's
 * OOM report show it), optionally writes N to /proc/self/oom_score_adj, then maps
 * and touches M MiB of private anonymous memory every T ms until MIB MiB are
 * resident, printing one line per step:
 *
 *   hog NAME pid=P start target_mib=MIB limit_mib=L cgroup=v1 adj=A
 *   hog NAME pid=P rss_mib=X            (X = MiB touched so far)
 *   hog NAME holding MIB MiB            (then pause() forever; --exit: "reached MIB MiB; exiting")
 *
 * --leak: after reaching MIB, keep growing at KIB_PER_S KiB per second (a memory leak, for a
 * leak hunt): one mapping of --leak-cap MiB (default 64) is reserved up front, so the
 * virtual size stays put while the resident size grows; every 50 ms the pages due by then
 * (MIB + rate x elapsed) are touched. At the cap it drops the leaked pages (MADV_DONTNEED)
 * and starts over, as a service restarted by its supervisor would. Nothing about the leak is printed,
 * and the command line is rewritten to NAME (as `ps -o args` shows it), so the rate stays hidden.
 *
 * It never catches SIGKILL or re-spawns anything: an OOM victim simply dies (137).
 *
 * Safety guard: it refuses to run (exit 3) unless its own memory cgroup has a limit
 * (v1: hierarchical_memory_limit / memory.limit_in_bytes < 2^62; v2: some memory.max
 * from its cgroup up to the root that is not "max"). --i-know-there-is-no-limit skips
 * the guard. HOG_CGROUP_ROOT (default /sys/fs/cgroup) and HOG_PROC_CGROUP (default
 * /proc/self/cgroup) move where it looks, for tests.
 *
 * Exit codes: 0 done (--exit), 1 allocation failed, 2 usage, 3 no memory limit,
 * 4 oom_score_adj could not be set and --adj-strict was given.
 *
 * Build: gcc -static -O2 -Wall -o hog hog.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HOG_VERSION "1"
#define EXIT_ALLOC 1
#define EXIT_USAGE 2
#define EXIT_NO_LIMIT 3
#define EXIT_ADJ 4
#define MIB (1024UL * 1024UL)
#define UNLIMITED_V1 (1ULL << 62)
#define MAX_MIB (1L << 20) /* 1 TiB is more than any sandbox */

static const char *name = "hog";

static void usage(FILE *out) {
    fprintf(out,
            "usage: hog [--name NAME] [--adj N] [--adj-strict] [--step-mib M] [--step-ms T]\n"
            "           [--hold | --exit] [--leak KIB_PER_S [--leak-cap MIB]] [--i-know-there-is-no-limit] MIB\n"
            "\n"
            "Touch MIB MiB of anonymous memory, M MiB (default 4) every T ms (default 20),\n"
            "then hold it (default) or exit (--exit). NAME (at most 15 characters) becomes\n"
            "the process name; N (-1000..1000) is written to /proc/self/oom_score_adj.\n"
            "--leak: once holding, grow by KIB_PER_S KiB per second up to --leak-cap MiB\n"
            "(default 64) more, then drop that and start over (a leaking service).\n"
            "Refuses to run without a memory cgroup limit (exit 3).\n"
            "Exit codes: 0 done, 1 allocation failed, 2 usage, 3 no memory limit,\n"
            "4 oom_score_adj refused with --adj-strict.\n");
}

static void die_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "hog: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    exit(EXIT_USAGE);
}

static long parse_long(const char *opt, const char *text, long lo, long hi) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "hog: %s: '%s' is not a whole number between %ld and %ld\n", opt, text, lo, hi);
        usage(stderr);
        exit(EXIT_USAGE);
    }
    return v;
}

/* Read the first line of a file into buf; 0 on success. */
static int read_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    if (!fgets(buf, (int)size, f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* v1: the effective (hierarchical) limit of dir; 0 on success. */
static int v1_limit(const char *dir, unsigned long long *limit) {
    char path[2 * PATH_MAX], line[256];
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    FILE *f = fopen(path, "re");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            unsigned long long v;
            if (sscanf(line, "hierarchical_memory_limit %llu", &v) == 1) {
                fclose(f);
                *limit = v;
                return 0;
            }
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
    if (read_line(path, line, sizeof line) != 0) return -1;
    *limit = strtoull(line, NULL, 10);
    return 0;
}

/*
 * Find this process's memory limit. Returns 1 (limited, *limit set), 0 (no limit),
 * -1 (no memory cgroup found). `where` describes what was read.
 */
static int find_limit(unsigned long long *limit, const char **version, char *where, size_t wsize) {
    const char *root = getenv("HOG_CGROUP_ROOT");
    const char *procfile = getenv("HOG_PROC_CGROUP");
    if (!root || !*root) root = "/sys/fs/cgroup";
    if (!procfile || !*procfile) procfile = "/proc/self/cgroup";

    char v1path[PATH_MAX] = "", v2path[PATH_MAX] = "";
    int have_v1 = 0, have_v2 = 0;
    FILE *f = fopen(procfile, "re");
    if (f) {
        char line[PATH_MAX + 64];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            char *c1 = strchr(line, ':');
            if (!c1) continue;
            char *c2 = strchr(c1 + 1, ':');
            if (!c2) continue;
            *c1 = '\0';
            *c2 = '\0';
            const char *controllers = c1 + 1, *path = c2 + 1;
            if (strcmp(line, "0") == 0 && *controllers == '\0') {
                snprintf(v2path, sizeof v2path, "%s", path);
                have_v2 = 1;
                continue;
            }
            char ctl[256];
            snprintf(ctl, sizeof ctl, ",%s,", controllers);
            if (strstr(ctl, ",memory,")) {
                snprintf(v1path, sizeof v1path, "%s", path);
                have_v1 = 1;
            }
        }
        fclose(f);
    }

    char dir[PATH_MAX + 16];
    char memroot[PATH_MAX];
    snprintf(memroot, sizeof memroot, "%s/memory", root);
    if (have_v1 && is_dir(memroot)) {
        /* On the host the cgroup path is below the mount; inside a container the
         * container's own cgroup is mounted at the root of the hierarchy. */
        snprintf(dir, sizeof dir, "%s%s", memroot, v1path);
        if (!is_dir(dir)) snprintf(dir, sizeof dir, "%s", memroot);
        unsigned long long v;
        if (v1_limit(dir, &v) == 0) {
            *version = "v1";
            snprintf(where, wsize, "%s", dir);
            *limit = v;
            return v < UNLIMITED_V1 ? 1 : 0;
        }
    }
    if (have_v2) {
        char ctlfile[2 * PATH_MAX];
        snprintf(ctlfile, sizeof ctlfile, "%s/cgroup.controllers", root);
        if (access(ctlfile, R_OK) == 0) {
            snprintf(dir, sizeof dir, "%s%s", root, strcmp(v2path, "/") == 0 ? "" : v2path);
            if (!is_dir(dir)) snprintf(dir, sizeof dir, "%s", root);
            *version = "v2";
            snprintf(where, wsize, "%s", dir);
            size_t rootlen = strlen(root);
            int found = 0;
            unsigned long long best = ULLONG_MAX;
            /* The effective limit is the smallest memory.max from here up to the root. */
            for (;;) {
                char path[2 * PATH_MAX], line[64];
                snprintf(path, sizeof path, "%s/memory.max", dir);
                if (read_line(path, line, sizeof line) == 0 && strcmp(line, "max") != 0) {
                    unsigned long long v = strtoull(line, NULL, 10);
                    if (v < best) best = v;
                    found = 1;
                }
                if (strlen(dir) <= rootlen) break;
                char *slash = strrchr(dir, '/');
                if (!slash || (size_t)(slash - dir) < rootlen) break;
                *slash = '\0';
            }
            if (found) {
                *limit = best;
                return 1;
            }
            return 0;
        }
    }
    *version = "none";
    snprintf(where, wsize, "%s", procfile);
    return -1;
}

static void sleep_ms(long ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Fill a step with distinct 8-byte words: no page is zero- or same-filled, so
 * neither the zero page, zswap's same-filled shortcut nor KSM can make it cheaper. */
static void touch(unsigned char *p, size_t len, uint64_t seed) {
    uint64_t *w = (uint64_t *)p;
    size_t n = len / sizeof *w;
    for (size_t i = 0; i < n; i++) w[i] = (seed << 32) ^ (i * 0x9E3779B97F4A7C15ULL) ^ 0x5A5A5A5AULL;
}

int main(int argc, char **argv) {
    long target = -1, step_mib = 4, step_ms = 20, adj = 0, leak_kib = 0, leak_cap_mib = 64;
    int set_adj = 0, adj_strict = 0, hold = 1, no_limit_ok = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char opt[64];
        /* Accept both "--opt VALUE" and "--opt=VALUE" for options that take a value. */
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof opt) {
            memcpy(opt, a, (size_t)(eq - a));
            opt[eq - a] = '\0';
            val = eq + 1;
            a = opt;
        }
        int takes_value = !strcmp(a, "--name") || !strcmp(a, "--adj") || !strcmp(a, "--step-mib") ||
                          !strcmp(a, "--step-ms") || !strcmp(a, "--leak") || !strcmp(a, "--leak-cap");
        if (takes_value && !val) {
            if (i + 1 >= argc) die_usage("%s needs a value", a);
            val = argv[++i];
        } else if (!takes_value && val) {
            die_usage("%s does not take a value", a);
        }

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("hog %s\n", HOG_VERSION);
            return 0;
        } else if (!strcmp(a, "--name")) {
            size_t len = strlen(val);
            if (len == 0 || len > 15) die_usage("--name: '%s' must be 1 to 15 characters (the kernel's comm)", val);
            name = val;
        } else if (!strcmp(a, "--adj")) {
            adj = parse_long("--adj", val, -1000, 1000);
            set_adj = 1;
        } else if (!strcmp(a, "--adj-strict")) {
            adj_strict = 1;
        } else if (!strcmp(a, "--step-mib")) {
            step_mib = parse_long("--step-mib", val, 1, MAX_MIB);
        } else if (!strcmp(a, "--step-ms")) {
            step_ms = parse_long("--step-ms", val, 0, 3600000);
        } else if (!strcmp(a, "--leak")) {
            leak_kib = parse_long("--leak", val, 1, 1024L * 1024L);
        } else if (!strcmp(a, "--leak-cap")) {
            leak_cap_mib = parse_long("--leak-cap", val, 1, MAX_MIB);
        } else if (!strcmp(a, "--hold")) {
            hold = 1;
        } else if (!strcmp(a, "--exit")) {
            hold = 0;
        } else if (!strcmp(a, "--i-know-there-is-no-limit")) {
            no_limit_ok = 1;
        } else if (!strcmp(a, "--")) {
            if (i + 2 != argc) die_usage("%s must be followed by exactly one MIB", "--");
            target = parse_long("MIB", argv[++i], 1, MAX_MIB);
        } else if (a[0] == '-' && a[1] != '\0') {
            die_usage("unknown option %s", a);
        } else {
            if (target >= 0) die_usage("only one MIB may be given (got another: %s)", a);
            target = parse_long("MIB", a, 1, MAX_MIB);
        }
    }
    if (target < 0) die_usage("%s", "missing MIB (how many MiB to allocate)");
    /* Show the service's name as its command line too (ps -o args, /proc/PID/cmdline), not how it was
     * started: the options (a leak rate) are the lab's secret. argv's strings are contiguous on Linux. */
    static char name_copy[16];
    snprintf(name_copy, sizeof name_copy, "%s", name);
    name = name_copy;
    if (strcmp(name, "hog") != 0) {
        char *first = argv[0], *last = argv[argc - 1] + strlen(argv[argc - 1]);
        memset(first, 0, (size_t)(last - first));
        memcpy(first, name, strlen(name) < (size_t)(last - first) ? strlen(name) : (size_t)(last - first));
    }

    if (prctl(PR_SET_NAME, name, 0, 0, 0) != 0) perror("hog: prctl(PR_SET_NAME)");
    /* Prefix of messages on stderr: "hog" or "hog NAME". */
    char who[32];
    if (strcmp(name, "hog") == 0)
        snprintf(who, sizeof who, "hog");
    else
        snprintf(who, sizeof who, "hog %s", name);

    unsigned long long limit = 0;
    const char *version = "none";
    char where[PATH_MAX + 64];
    int limited = find_limit(&limit, &version, where, sizeof where);
    if (limited != 1 && !no_limit_ok) {
        if (limited == 0)
            fprintf(stderr, "%s: refusing to run: this process's memory cgroup has no limit (cgroup %s, %s).\n",
                    who, version, where);
        else
            fprintf(stderr, "%s: refusing to run: no memory cgroup found (read %s).\n", who, where);
        fprintf(stderr,
                "%s: run it inside a memory-limited sandbox (docker run --memory=64m --memory-swap=64m ...),\n"
                "%s: or pass --i-know-there-is-no-limit if you really mean to hog the whole machine.\n",
                who, who);
        return EXIT_NO_LIMIT;
    }

    pid_t pid = getpid();
    if (set_adj) {
        FILE *f = fopen("/proc/self/oom_score_adj", "we");
        int ok = f && fprintf(f, "%ld\n", adj) > 0;
        int err = errno;
        if (f && fclose(f) != 0) {
            ok = 0;
            err = errno;
        }
        if (!ok) {
            char cur[32] = "?";
            read_line("/proc/self/oom_score_adj", cur, sizeof cur);
            fprintf(stderr, "%s: cannot set oom_score_adj to %ld: %s%s; it stays %s\n", who, adj,
                    strerror(err),
                    err == EACCES ? " (lowering it below its minimum needs CAP_SYS_RESOURCE)" : "", cur);
            if (adj_strict) return EXIT_ADJ;
        }
    }
    char adjnow[32] = "?";
    read_line("/proc/self/oom_score_adj", adjnow, sizeof adjnow);
    if (limited == 1)
        printf("hog %s pid=%d start target_mib=%ld limit_mib=%llu cgroup=%s adj=%s\n", name, (int)pid, target,
               limit / MIB, version, adjnow);
    else
        printf("hog %s pid=%d start target_mib=%ld limit_mib=none cgroup=%s adj=%s\n", name, (int)pid, target,
               version, adjnow);

    long done = 0;
    uint64_t seed = 1;
    while (done < target) {
        long n = target - done < step_mib ? target - done : step_mib;
        size_t len = (size_t)n * MIB;
        unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "%s: mmap of %ld MiB failed at rss_mib=%ld: %s\n", who, n, done, strerror(errno));
            return EXIT_ALLOC;
        }
        /* Small pages only, so the resident size grows exactly step by step. */
        madvise(p, len, MADV_NOHUGEPAGE);
        touch(p, len, seed++);
        done += n;
        printf("hog %s pid=%d rss_mib=%ld\n", name, (int)pid, done);
        if (done < target) sleep_ms(step_ms);
    }

    if (!hold) {
        printf("hog %s reached %ld MiB; exiting\n", name, done);
        return 0;
    }
    printf("hog %s holding %ld MiB\n", name, done);
    if (leak_kib > 0) {
        size_t cap = (size_t)leak_cap_mib * MIB, page = (size_t)sysconf(_SC_PAGESIZE), touched = 0;
        unsigned char *r = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                                -1, 0);
        if (r == MAP_FAILED) {
            fprintf(stderr, "%s: mmap of the %ld MiB leak region failed: %s\n", who, leak_cap_mib, strerror(errno));
            return EXIT_ALLOC;
        }
        madvise(r, cap, MADV_NOHUGEPAGE);
        /* Nothing about the leak is printed: a leak hunt finds it by watching RSS. */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            sleep_ms(50);
            clock_gettime(CLOCK_MONOTONIC, &now);
            double elapsed = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
            size_t due = (size_t)(elapsed * (double)leak_kib * 1024.0);
            if (due > cap) {
                madvise(r, cap, MADV_DONTNEED);
                touched = 0;
                t0 = now;
                continue;
            }
            for (; touched + page <= due; touched += page) touch(r + touched, page, seed++);
        }
    }
    for (;;) pause();
}
