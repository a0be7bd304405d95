/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "model/authkeys.h"
#include "base/base64.h"
#include "base/fileio.h"

/* Real keys and what `ssh-keygen -lf` says of them (OpenSSH 9.2). */
#define ED "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkLUoh9gmuI+h1F1+LjqTO4HI2N7yuCnNpuJd3tzst"
#define ED_FP "SHA256:9CEWNjN6YjcAQqp20meFdHqVtcYlTs3DS8+WIPFWThA"
#define RSA "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC/zvpI6hMPkgRXoFrDeIyIwjqRzthzvku71J10ajN/HND+YhHuNZa2cnuM+Y0dU8eDCYEd1hWE9qwUzM6V5/NmZfxWKeD7Pkn/ry2HGPNCoGXpBbaok8ATHy5K+LS9N2Mv7/jMd7OtmhqNWLGSO8iq/MZ82SZ6ByUM/XOd2IdMiQ=="
#define RSA_FP "SHA256:Ed/IL4a+vx3WRH1r+JwUopWRG1PQp2MRmT1RK88pzA0"
#define EC "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBCnKCohHfdF8yeDx41MtJURaQDkutC7lFjZY8+O6AnE/KnZijHiO7LqC0oYMDTJzO68+xmMbuX2NU5OJ85U+byNzvL7xtWyWcdUUZ98nNtPGyqZto267CwDsgH4M84SICA=="
#define EC_FP "SHA256:vJA/Z6Ahj9cJObC6/0+UhTg4Pa4W+RpBFLLvCIacc74"
#define SK "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fAAAABHNzaDo="
#define SK_FP "SHA256:/p0CbeE3dk2SyW1OXXsThGc12ezDVD8eGw2/vtztDfk"

#define SHELL "/usr/libexec/nap/nap-git-shell"
#define OPTS ",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc "
#define NAP_LINE(user, key) "command=\"" SHELL " " user "\"" OPTS key

static void parse_key(const char *text, NapPubKey *k) {
        NapError e = NAP_ERROR_NULL;
        int r = nap_pubkey_parse(text, strlen(text), k, &e);
        if (r < 0)
                print_error("refused: %s\n", e.message);
        assert_int_equal(r, 0);
}

static void key_refused(const char *text, size_t size, const char *message) {
        NapPubKey k = {};
        NapError e = NAP_ERROR_NULL;
        int r = nap_pubkey_parse(text, size, &k, &e);
        if (r != -EINVAL)
                print_error("not refused: '%.*s'\n", (int) size, text);
        assert_int_equal(r, -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        if (message)
                assert_string_equal(e.message, message);
        assert_null(k.type);
}

static void test_fingerprints_match_ssh_keygen(void **state) {
        static const struct {
                const char *line, *type, *fingerprint, *comment;
        } t[] = {
                { ED " alice@laptop", "ssh-ed25519", ED_FP, "alice@laptop" },
                { RSA " bob rsa", "ssh-rsa", RSA_FP, "bob rsa" },
                { EC, "ecdsa-sha2-nistp384", EC_FP, NULL },
                { SK " yubi\n", "sk-ssh-ed25519@openssh.com", SK_FP, "yubi" },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                NapPubKey k = {};
                parse_key(t[i].line, &k);
                assert_string_equal(k.type, t[i].type);
                assert_string_equal(k.fingerprint, t[i].fingerprint);
                if (t[i].comment)
                        assert_string_equal(k.comment, t[i].comment);
                else
                        assert_null(k.comment);
                nap_pubkey_done(&k);
                assert_null(k.type);
        }
}

static void test_pubkey_accepted_forms(void **state) {
        NapPubKey k = {};
        parse_key("  " ED "   two  words \t \n", &k);
        assert_string_equal(k.comment, "two  words");
        assert_string_equal(k.fingerprint, ED_FP);
        nap_pubkey_done(&k);
        parse_key(ED "\tcaf\xc3\xa9 \xe2\x9c\x93", &k);
        assert_string_equal(k.comment, "caf\xc3\xa9 \xe2\x9c\x93");
        nap_pubkey_done(&k);
        /* Only size bytes count: no NUL needed after them. */
        const char text[] = ED " x";
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_pubkey_parse(text, strlen(ED), &k, &e), 0);
        assert_null(k.comment);
        nap_pubkey_done(&k);
}

static void test_pubkey_refused(void **state) {
        key_refused("", 0, "public key refused: empty input");
        key_refused(" \n", 2, "public key refused: empty input");
        key_refused(ED "\n" RSA "\n", strlen(ED "\n" RSA "\n"),
                    "public key refused: give exactly one line (TYPE BASE64 [COMMENT])");
        key_refused(ED "\n\n", strlen(ED) + 2, NULL);
        key_refused(ED "\0x", strlen(ED) + 2, NULL);
        static const char *const opts[] = {
                "command=\"/bin/sh\" " ED, "no-pty " ED, "restrict " ED, "from=\"*\" " ED,
                "environment=\"A=B\"," ED,
        };
        for (size_t i = 0; i < ELEMENTSOF(opts); i++)
                key_refused(opts[i], strlen(opts[i]),
                            "public key refused: options are not accepted (nap writes its own); give the key as "
                            "ssh-keygen writes it: TYPE BASE64 [COMMENT]");
        const char *dss = "ssh-dss AAAAB3NzaC1kc3MAAAA=";
        key_refused(dss, strlen(dss),
                    "public key refused: unknown key type (known: ssh-ed25519, ssh-rsa, "
                    "ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com)");
        static const struct {
                const char *text, *message;
        } t[] = {
                { "ssh-ed25519", "public key refused: missing or oversized key data" },
                { "ssh-ed25519 ", "public key refused: missing or oversized key data" },
                { "ssh-ed25519 AAAA!AAA", "public key refused: the key data is not valid base64" },
                { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkLUoh9gmuI+h1F1+LjqTO4HI2N7yuCnNpuJd3tzs",
                  "public key refused: the key data is not a key of that type (or an RSA key under 1024 bits)" },
                { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFpkLUoh9gmuI+h1F1+LjqTO4HI2N7yuCnNpuJd3tzstAA==", NULL },
                /* An ed25519 blob under another type name, and the reverse. */
                { "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIFpkLUoh9gmuI+h1F1+LjqTO4HI2N7yuCnNpuJd3tzst",
                  "public key refused: the key data is not a key of that type (or an RSA key under 1024 bits)" },
                { "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "public key refused: the key data is not a key of that type (or an RSA key under 1024 bits)" },
                { "ssh-ed25519 AAAA", "public key refused: the key data is not a key of that type (or an RSA key under 1024 bits)" },
                /* 512-bit RSA (sshd wants 1024), an ECDSA blob naming another curve. */
                { "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAQQDABwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH",
                  "public key refused: the key data is not a key of that type (or an RSA key under 1024 bits)" },
                { "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAzODQAAABBBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                  NULL },
                { ED " a\x01z", "public key refused: the comment is too long or holds control characters or invalid UTF-8" },
                { ED " a\x7fz", NULL },
                { ED " a\xc3", NULL },
                { ED " \xc0\xaf", NULL },
                { ED " \xed\xa0\x80", NULL },
                { ED " \r", NULL },
                { "SSH-ED25519 AAAA", NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++)
                key_refused(t[i].text, strlen(t[i].text), t[i].message);

        char big[NAP_AUTHKEY_LINE_MAX + 2];
        memset(big, 'x', sizeof big);
        key_refused(big, sizeof big, "public key refused: longer than 8192 bytes");
        char comment[sizeof ED + NAP_AUTHKEY_COMMENT_MAX + 2];
        snprintf(comment, sizeof comment, "%s %0*d", ED, NAP_AUTHKEY_COMMENT_MAX + 1, 0);
        key_refused(comment, strlen(comment), NULL);
        comment[strlen(comment) - 1] = 0; /* exactly the cap */
        NapPubKey k = {};
        parse_key(comment, &k);
        nap_pubkey_done(&k);
}

/* ---- the file as lines ---- */

static NapAuthKeys *parse_file(const char *text) {
        NapAuthKeys *k = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_authkeys_parse(text, strlen(text), &k, &e), 0);
        return k;
}

static void assert_format(const NapAuthKeys *k, const char *expected) {
        _cleanup_free_ char *s = NULL;
        size_t n;
        assert_int_equal(nap_authkeys_format(k, &s, &n), 0);
        assert_string_equal(s, expected);
        assert_int_equal(n, strlen(expected));
}

static void test_parse_recognises_nap_lines(void **state) {
        const char *text =
                "# admin notes\n"
                "\n"
                NAP_LINE("alice", ED " alice@laptop") "\n"
                RSA " admin\n"
                "command=\"/opt/nap/libexec/nap-git-shell bob\"" OPTS EC "\n"
                "  not a key line at all\n";
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = parse_file(text);
        assert_int_equal(k->n, 6);
        assert_null(k->lines[0].user);
        assert_null(k->lines[0].key.type);
        assert_string_equal(k->lines[1].text, "");
        assert_string_equal(k->lines[2].user, "alice");
        assert_string_equal(k->lines[2].git_shell, SHELL);
        assert_string_equal(k->lines[2].key.fingerprint, ED_FP);
        assert_string_equal(k->lines[2].key.comment, "alice@laptop");
        assert_null(k->lines[3].user); /* a key, but not nap's */
        assert_string_equal(k->lines[3].key.fingerprint, RSA_FP);
        assert_string_equal(k->lines[4].user, "bob");
        assert_string_equal(k->lines[4].git_shell, "/opt/nap/libexec/nap-git-shell");
        assert_null(k->lines[4].key.comment);
        assert_null(k->lines[5].user);
        assert_format(k, text);
}

/* A nap line someone changed is no longer nap's; its key is still known. */
static void test_parse_edited_lines_are_foreign(void **state) {
        static const char *const lines[] = {
                "command=\"" SHELL " alice\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding " ED,
                "command=\"" SHELL " alice\"" OPTS "" ED " x\r",
                "from=\"10.0.0.1\",command=\"" SHELL " alice\"" OPTS ED,
                "command=\"" SHELL " alice\"" OPTS "," ED,
                "command=\"" SHELL " alice\"" OPTS " " ED,
                "command=\"" SHELL " alice\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc\t" ED,
                " command=\"" SHELL " alice\"" OPTS ED,
                "command=\"" SHELL " Alice\"" OPTS ED,
                "command=\"" SHELL " alice x\"" OPTS ED,
                "command=\"" SHELL "  alice\"" OPTS ED,
                "command=\"/bin/sh alice\"" OPTS ED,
                "command=\"nap-git-shell alice\"" OPTS ED,
                "command=\"/usr/lib/my nap/nap-git-shell alice\"" OPTS ED,
                "command=\"" SHELL " alice\\\"\"" OPTS ED,
                "command=\"" SHELL " alice\",no-user-rc,no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding " ED,
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                _cleanup_(nap_authkeys_freep) NapAuthKeys *k = parse_file(lines[i]);
                assert_int_equal(k->n, 1);
                if (k->lines[0].user)
                        print_error("taken as nap's: %s\n", lines[i]);
                assert_null(k->lines[0].user);
                assert_null(k->lines[0].git_shell);
                if (k->lines[0].key.type)
                        assert_string_equal(k->lines[0].key.fingerprint, ED_FP);
                assert_string_equal(k->lines[0].text, lines[i]);
        }
}

static void test_parse_keeps_everything(void **state) {
        /* No final newline: one is added; CRLF, blanks, quotes kept. */
        const char *text = "a\r\n\n\n  \t\n\"unterminated " ED "\nlast";
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = parse_file(text);
        assert_int_equal(k->n, 6);
        assert_null(k->lines[4].key.type);
        assert_format(k, "a\r\n\n\n  \t\n\"unterminated " ED "\nlast\n");

        _cleanup_(nap_authkeys_freep) NapAuthKeys *empty = parse_file("");
        assert_int_equal(empty->n, 0);
        assert_format(empty, "");

        /* A line longer than the cap is kept, not read. */
        size_t n = NAP_AUTHKEY_LINE_MAX + 100;
        _cleanup_free_ char *big = malloc(n + 1);
        memset(big, 'x', n);
        memcpy(big, ED " ", strlen(ED) + 1);
        big[n] = 0;
        _cleanup_(nap_authkeys_freep) NapAuthKeys *b = parse_file(big);
        assert_int_equal(b->n, 1);
        assert_null(b->lines[0].key.type);
}

static void test_parse_refusals(void **state) {
        NapAuthKeys *k = NULL;
        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_authkeys_parse("a\0b\n", 4, &k, &e), -EINVAL);
        assert_string_equal(e.message, "authorized_keys contains a NUL byte");
        e = NAP_ERROR_NULL;
        size_t n = NAP_AUTHKEYS_MAX_SIZE + 1;
        _cleanup_free_ char *big = malloc(n);
        memset(big, 'x', n);
        for (size_t i = 999; i < n; i += 1000)
                big[i] = '\n';
        assert_int_equal(nap_authkeys_parse(big, n, &k, &e), -EFBIG);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_null(k);
        assert_int_equal(nap_authkeys_parse(big, n - 1, &k, NULL), 0);
        assert_int_equal(k->n, (n - 1 + 999) / 1000);
        nap_authkeys_free(k);
}

/* ---- edits in memory ---- */

static int add(NapAuthKeys *k, const char *user, const char *key, NapError *e) {
        NapPubKey p = {};
        parse_key(key, &p);
        int r = nap_authkeys_add_key(k, SHELL, user, &p, e);
        nap_pubkey_done(&p);
        return r;
}

static void test_add_key(void **state) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = parse_file("# mine\n" RSA " admin\n");
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(add(k, "alice", ED " alice@laptop", &e), 1);
        assert_int_equal(add(k, "alice", ED " another comment", &e), 0); /* same key: nothing to do */
        assert_int_equal(add(k, "bob", SK, &e), 1);
        assert_format(k, "# mine\n" RSA " admin\n" NAP_LINE("alice", ED " alice@laptop") "\n" NAP_LINE("bob", SK) "\n");
        assert_string_equal(k->lines[3].user, "bob");

        assert_int_equal(add(k, "carol", ED, &e), -EEXIST);
        assert_int_equal(e.kind, NAP_ERROR_PERMISSION_DENIED);
        assert_string_equal(e.message, "key " ED_FP " is already registered for user alice");
        e = NAP_ERROR_NULL;
        assert_int_equal(add(k, "carol", RSA, &e), -EEXIST);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.message, "key " RSA_FP " is already in authorized_keys on line 2, which nap did not "
                                       "write; remove it there first");
        assert_int_equal(k->n, 4);
}

static void test_add_key_bad_arguments(void **state) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = parse_file("");
        NapPubKey p = {};
        NapError e = NAP_ERROR_NULL;
        parse_key(ED, &p);
        static const char *const shells[] = {
                "nap-git-shell", "/usr/bin/git-shell", "/opt/my nap/nap-git-shell", "/a\"b/nap-git-shell",
                "/a/nap-git-shell x", "/nap-git-shell\n", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(shells); i++) {
                e = NAP_ERROR_NULL;
                assert_int_equal(nap_authkeys_add_key(k, shells[i], "alice", &p, &e), -EINVAL);
                assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        }
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_authkeys_add_key(k, SHELL, "Alice", &p, &e), -EINVAL);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_NAME);
        assert_int_equal(nap_authkeys_add_key(k, SHELL, "alice\"x", &p, NULL), -EINVAL);
        assert_int_equal(k->n, 0);
        assert_int_equal(nap_authkeys_add_key(k, "/nap-git-shell", "a", &p, NULL), 1);
        nap_pubkey_done(&p);
}

static void test_remove_key(void **state) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = parse_file(
                NAP_LINE("alice", ED) "\n# keep\n" NAP_LINE("bob", RSA) "\n" NAP_LINE("alice", EC) "\n" SK "\n");
        assert_int_equal(nap_authkeys_remove_key(k, "bob", ED_FP), 0);    /* alice's key */
        assert_int_equal(nap_authkeys_remove_key(k, "alice", SK_FP), 0);  /* a foreign line's */
        assert_int_equal(k->n, 5);
        assert_int_equal(nap_authkeys_remove_key(k, "alice", ED_FP), 1);
        assert_int_equal(nap_authkeys_remove_key(k, "alice", EC_FP + strlen("SHA256:")), 1);
        assert_format(k, "# keep\n" NAP_LINE("bob", RSA) "\n" SK "\n");
        assert_int_equal(nap_authkeys_remove_key(k, "alice", ED_FP), 0);
}

/* ---- the file ---- */

typedef struct Fixture {
        char dir[64];
        char path[128];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);
        strcpy(f->dir, "/tmp/test-authkeys-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/.ssh/authorized_keys", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        assert_int_equal(rm_rf(f->dir), 0);
        free(f);
        return 0;
}

static char *contents(const char *path) {
        char *s = NULL;
        assert_int_equal(read_full_file(path, NAP_AUTHKEYS_MAX_SIZE, &s, NULL), 0);
        return s;
}

static void write_text(const char *path, const char *text, mode_t mode) {
        _cleanup_free_ char *dir = strdup(path);
        *strrchr(dir, '/') = 0;
        assert_int_equal(mkdir_p(dir, 0700), 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), mode), 0);
}

static void file_add(const char *path, const char *user, const char *key, int expected) {
        NapError e = NAP_ERROR_NULL;
        NapPubKey k = {};
        bool added = false;
        int r = nap_authkeys_add(path, SHELL, user, key, strlen(key), &k, &added, &e);
        if (r != expected)
                print_error("add: %d %s\n", r, e.message);
        assert_int_equal(r, expected);
        if (r >= 0)
                assert_non_null(k.type);
        nap_pubkey_done(&k);
}

/* A path whose directory cannot be made (its parent is missing) fails
 * naming AuthorizedKeys=, and makes nothing. */
static void test_file_parent_missing(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *path = strdup_printf("%s/missing/.ssh/authorized_keys", f->dir);
        _cleanup_free_ char *parent = strdup_printf("%s/missing", f->dir);
        NapError e = NAP_ERROR_NULL;
        struct stat st;

        assert_int_equal(nap_authkeys_add(path, SHELL, "alice", ED, strlen(ED), NULL, NULL, &e), -ENOENT);
        assert_non_null(strstr(e.message, "AuthorizedKeys="));
        assert_non_null(strstr(e.message, path));
        assert_int_equal(stat(parent, &st), -1);
}

static void test_file_created(void **state) {
        Fixture *f = *state;
        struct stat st, dst;
        NapError e = NAP_ERROR_NULL;
        NapPubKey k = {};
        bool added = false;

        /* The directory and file take the owner of what holds them. */
        assert_int_equal(chown(f->dir, 65534, 65534), 0);
        assert_int_equal(nap_authkeys_add(f->path, SHELL, "alice", ED " a\n", strlen(ED) + 3, &k, &added, &e), 0);
        assert_true(added);
        assert_string_equal(k.fingerprint, ED_FP);
        assert_string_equal(k.comment, "a");
        nap_pubkey_done(&k);
        _cleanup_free_ char *s = contents(f->path);
        assert_string_equal(s, NAP_LINE("alice", ED " a") "\n");
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_uid, 65534);
        assert_int_equal(st.st_gid, 65534);
        _cleanup_free_ char *dir = strdup(f->path);
        *strrchr(dir, '/') = 0;
        assert_int_equal(stat(dir, &dst), 0);
        assert_int_equal(dst.st_mode & 07777, 0700);
        assert_int_equal(dst.st_uid, 65534);

        /* Again: unchanged, not even rewritten. */
        assert_int_equal(nap_authkeys_add(f->path, SHELL, "alice", ED, strlen(ED), NULL, &added, &e), 0);
        assert_false(added);
        struct stat again;
        assert_int_equal(stat(f->path, &again), 0);
        assert_int_equal(again.st_ino, st.st_ino);
}

static void test_file_keeps_mode_owner_and_foreign_lines(void **state) {
        Fixture *f = *state;
        const char *foreign = "# admin\n" RSA " admin@host\nrestrict,command=\"/bin/false\" " EC "\n";
        struct stat st;

        write_text(f->path, foreign, 0644);
        assert_int_equal(chown(f->path, 1234, 5678), 0);
        file_add(f->path, "alice", ED, 0);
        file_add(f->path, "bob", SK, 0);
        _cleanup_free_ char *s = contents(f->path);
        assert_string_equal(s, "# admin\n" RSA " admin@host\nrestrict,command=\"/bin/false\" " EC "\n"
                               NAP_LINE("alice", ED) "\n" NAP_LINE("bob", SK) "\n");
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(st.st_uid, 1234);
        assert_int_equal(st.st_gid, 5678);

        NapError e = NAP_ERROR_NULL;
        assert_int_equal(nap_authkeys_remove(f->path, "alice", ED_FP, &e), 0);
        assert_int_equal(nap_authkeys_remove(f->path, "bob", SK_FP + strlen("SHA256:"), &e), 0);
        _cleanup_free_ char *t = contents(f->path);
        assert_string_equal(t, foreign);
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(st.st_uid, 1234);
}

static void test_file_refusals_change_nothing(void **state) {
        Fixture *f = *state;
        NapError e = NAP_ERROR_NULL;
        struct stat before, after;

        write_text(f->path, RSA "\n", 0600);
        file_add(f->path, "alice", ED, 0);
        assert_int_equal(stat(f->path, &before), 0);
        file_add(f->path, "bob", ED, -EEXIST);
        file_add(f->path, "bob", RSA, -EEXIST);
        file_add(f->path, "bob", "no-pty " EC, -EINVAL);
        file_add(f->path, "Bob", EC, -EINVAL);
        assert_int_equal(nap_authkeys_remove(f->path, "bob", ED_FP, &e), -ENOENT);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        _cleanup_free_ char *m = strdup_printf("user bob has no key " ED_FP " in %s", f->path);
        assert_string_equal(e.message, m);
        e = NAP_ERROR_NULL;
        assert_int_equal(nap_authkeys_remove(f->path, "alice", "SHA256:short", &e), -EINVAL);
        assert_int_equal(nap_authkeys_remove(f->path, "alice", "SHA256:9CEWNjN6YjcAQqp20meFdHqVtcYlTs3DS8+WIPFWT\nA", NULL),
                         -EINVAL);
        assert_int_equal(nap_authkeys_remove(f->path, "al ice", ED_FP, NULL), -EINVAL);
        assert_int_equal(stat(f->path, &after), 0);
        assert_int_equal(after.st_ino, before.st_ino);
        assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
}

static void test_file_load(void **state) {
        Fixture *f = *state;
        NapAuthKeys *k = NULL;
        NapError e = NAP_ERROR_NULL;

        assert_int_equal(nap_authkeys_load(f->path, &k, &e), 0); /* missing: empty */
        assert_int_equal(k->n, 0);
        k = nap_authkeys_free(k);

        _cleanup_free_ char *big = malloc(NAP_AUTHKEYS_MAX_SIZE + 2);
        memset(big, '\n', NAP_AUTHKEYS_MAX_SIZE + 1);
        big[NAP_AUTHKEYS_MAX_SIZE + 1] = 0;
        write_text(f->path, big, 0600);
        assert_int_equal(nap_authkeys_load(f->path, &k, &e), -EFBIG);
        assert_int_equal(e.kind, NAP_ERROR_INVALID_PARAMETER);
        file_add(f->path, "alice", ED, -EFBIG);
}

/* A synthetic ed25519 public key line, different for each n. */
static char *fake_key(unsigned n) {
        uint8_t blob[4 + 11 + 4 + 32] = { 0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd', '2', '5', '5', '1', '9', 0, 0, 0, 32 };
        memcpy(blob + 19, &n, sizeof n);
        _cleanup_free_ char *b = NULL;
        assert_int_equal(base64_encode(blob, sizeof blob, &b), 0);
        return strdup_printf("ssh-ed25519 %s k%u", b, n);
}

/* Writers at once: the lock keeps every one's key. */
static void test_file_concurrent_adds(void **state) {
        Fixture *f = *state;
        enum { N = 12 };
        pid_t pids[N];

        write_text(f->path, "# header\n", 0600);
        for (unsigned i = 0; i < N; i++) {
                pids[i] = fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0) {
                        char *key = fake_key(i), user[16];
                        snprintf(user, sizeof user, "u%u", i);
                        int r = nap_authkeys_add(f->path, SHELL, user, key, strlen(key), NULL, NULL, NULL);
                        _exit(r < 0 ? 1 : 0);
                }
        }
        for (unsigned i = 0; i < N; i++) {
                int status;
                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        NapAuthKeys *k = NULL;
        assert_int_equal(nap_authkeys_load(f->path, &k, NULL), 0);
        assert_int_equal(k->n, N + 1);
        assert_string_equal(k->lines[0].text, "# header");
        for (unsigned i = 0; i < N; i++) {
                _cleanup_free_ char *key = fake_key(i);
                NapPubKey p = {};
                parse_key(key, &p);
                bool found = false;
                for (size_t j = 1; j < k->n; j++)
                        found = found || streq(k->lines[j].key.fingerprint, p.fingerprint);
                assert_true(found);
                nap_pubkey_done(&p);
        }
        nap_authkeys_free(k);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fingerprints_match_ssh_keygen),
                cmocka_unit_test(test_pubkey_accepted_forms),
                cmocka_unit_test(test_pubkey_refused),
                cmocka_unit_test(test_parse_recognises_nap_lines),
                cmocka_unit_test(test_parse_edited_lines_are_foreign),
                cmocka_unit_test(test_parse_keeps_everything),
                cmocka_unit_test(test_parse_refusals),
                cmocka_unit_test(test_add_key),
                cmocka_unit_test(test_add_key_bad_arguments),
                cmocka_unit_test(test_remove_key),
                cmocka_unit_test_setup_teardown(test_file_parent_missing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_created, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_keeps_mode_owner_and_foreign_lines, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_refusals_change_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_load, setup, teardown),
                cmocka_unit_test_setup_teardown(test_file_concurrent_adds, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
