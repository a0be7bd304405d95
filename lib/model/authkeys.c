/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* authorized_keys as a list of lines: nap's own, recognised by their exact
 * options, and everyone else's, carried through verbatim. Edits change the
 * list in memory and write it back whole (see authkeys.h for the locking,
 * modes and owners). */

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "model/authkeys.h"
#include "base/base64.h"
#include "base/fileio.h"
#include "model/names.h"
#include "base/sha256.h"

#define NAP_OPTIONS_TAIL ",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc"
#define GIT_SHELL_NAME "/nap-git-shell"
#define GIT_SHELL_MAX 1024
#define BASE64_MAX ((NAP_AUTHKEY_BLOB_MAX + 2) / 3 * 4)

/* What sshd would accept as a public key blob (RFC 4253 §6.6, RFC 5656
 * §3.1, RFC 8709 §4, OpenSSH PROTOCOL.u2f): the type name, then exactly
 * this many length-prefixed fields. */
static const struct {
        const char *name;
        unsigned fields;
        const char *curve;   /* ecdsa: the second string must name it */
        uint32_t key_len;    /* ed25519: the key is exactly this long */
        uint32_t min_key_len; /* rsa: the modulus, 1024 bits as sshd's RequiredRSASize */
} key_types[] = {
        { "ssh-ed25519", 1, NULL, 32, 0 },
        { "ssh-rsa", 2, NULL, 0, 128 },
        { "ecdsa-sha2-nistp256", 2, "nistp256", 0, 0 },
        { "ecdsa-sha2-nistp384", 2, "nistp384", 0, 0 },
        { "ecdsa-sha2-nistp521", 2, "nistp521", 0, 0 },
        { "sk-ssh-ed25519@openssh.com", 2, NULL, 32, 0 },
        { "sk-ecdsa-sha2-nistp256@openssh.com", 3, "nistp256", 0, 0 },
};

static int key_type_index(const char *s, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(key_types); i++)
                if (strlen(key_types[i].name) == n && strneq(key_types[i].name, s, n))
                        return (int) i;
        return -EINVAL;
}

static bool key_type_is_known(const char *s, size_t n) {
        return key_type_index(s, n) >= 0;
}

/* One SSH string at *p (uint32 length, bytes); advances *p. */
static bool next_field(const uint8_t **p, const uint8_t *end, const uint8_t **ret, uint32_t *ret_len) {
        if (end - *p < 4)
                return false;
        uint32_t n = (uint32_t) (*p)[0] << 24 | (uint32_t) (*p)[1] << 16 | (uint32_t) (*p)[2] << 8 | (*p)[3];
        if ((size_t) (end - *p - 4) < n)
                return false;
        *ret = *p + 4;
        *ret_len = n;
        *p += 4 + n;
        return true;
}

static bool blob_is_valid(const char *blob, size_t size, int type) {
        const uint8_t *p = (const uint8_t *) blob, *end = p + size, *f;
        const char *name = key_types[type].name;
        uint32_t n;

        if (!next_field(&p, end, &f, &n) || n != strlen(name) || memcmp(f, name, n) != 0)
                return false;
        for (unsigned i = 0; i < key_types[type].fields; i++) {
                if (!next_field(&p, end, &f, &n) || n == 0)
                        return false;
                if (i == 0 && key_types[type].curve &&
                    (n != strlen(key_types[type].curve) || memcmp(f, key_types[type].curve, n) != 0))
                        return false;
                if (i == 0 && key_types[type].key_len && n != key_types[type].key_len)
                        return false;
                if (i == 1 && n < key_types[type].min_key_len)
                        return false;
        }
        return p == end;
}

/* Well-formed UTF-8 without control characters: what a comment may hold,
 * so that it prints safely and goes into JSON as it is. */
static bool comment_is_valid(const char *s, size_t n) {
        for (size_t i = 0; i < n;) {
                unsigned char c = s[i];
                size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 :
                             c >= 0xf0 && c <= 0xf4 ? 4 : 0;
                if (len == 0 || i + len > n || (len == 1 && (c < 0x20 || c == 0x7f)))
                        return false;
                for (size_t k = 1; k < len; k++)
                        if (((unsigned char) s[i + k] & 0xc0) != 0x80)
                                return false;
                unsigned char c1 = len > 1 ? s[i + 1] : 0;
                /* Overlong 3/4-byte forms, UTF-16 surrogates, past U+10FFFF. */
                if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 >= 0xa0) || (c == 0xf0 && c1 < 0x90) ||
                    (c == 0xf4 && c1 >= 0x90))
                        return false;
                i += len;
        }
        return true;
}

void nap_pubkey_fingerprint(const void *blob, size_t size, char ret[static NAP_FINGERPRINT_MAX]) {
        uint8_t digest[SHA256_DIGEST_SIZE];
        /* 32 bytes are 44 base64 characters with one '=', 43 without. */
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *o = stpcpy(ret, "SHA256:");

        sha256(blob, size, digest);
        for (size_t i = 0; i < SHA256_DIGEST_SIZE; i += 3) {
                size_t n = MIN(SHA256_DIGEST_SIZE - i, (size_t) 3);
                uint32_t v = (uint32_t) digest[i] << 16 | (n > 1 ? (uint32_t) digest[i + 1] << 8 : 0) |
                             (n > 2 ? digest[i + 2] : 0);
                for (size_t k = 0; k < n + 1; k++)
                        *o++ = alphabet[(v >> (18 - 6 * k)) & 63];
        }
        *o = 0;
}

void nap_pubkey_done(NapPubKey *k) {
        if (!k)
                return;
        free(k->type);
        free(k->base64);
        free(k->comment);
        *k = (NapPubKey) {};
}

/* "TYPE BASE64 [COMMENT]", a C string without options or newline; *why
 * gets the reason for a refusal. Not strict (a foreign line, only read to
 * find its key): a comment that is not clean is dropped, not refused. */
static int pubkey_from_fields(const char *s, bool strict, NapPubKey *ret, const char **why) {
        size_t type_len = strcspn(s, " \t");
        _cleanup_free_ char *blob = NULL;
        size_t blob_size;
        int type = key_type_index(s, type_len);

        assert(ret);
        assert(why);

        if (type < 0)
                return *why = "unknown key type", -EINVAL;
        const char *b = s + type_len;
        b += strspn(b, " \t");
        size_t b_len = strcspn(b, " \t");
        if (b_len == 0 || b_len > BASE64_MAX)
                return *why = "missing or oversized key data", -EINVAL;
        if (base64_decode(b, b_len, &blob, &blob_size) < 0 || blob_size > NAP_AUTHKEY_BLOB_MAX)
                return *why = "the key data is not valid base64", -EINVAL;
        if (!blob_is_valid(blob, blob_size, type))
                return *why = "the key data is not a key of that type (or an RSA key under 1024 bits)", -EINVAL;

        const char *c = b + b_len;
        c += strspn(c, " \t");
        size_t c_len = strlen(c);
        while (c_len > 0 && (c[c_len - 1] == ' ' || c[c_len - 1] == '\t'))
                c_len--;
        if (c_len > NAP_AUTHKEY_COMMENT_MAX || !comment_is_valid(c, c_len)) {
                if (strict)
                        return *why = "the comment is too long or holds control characters or invalid UTF-8",
                               -EINVAL;
                c_len = 0;
        }

        NapPubKey k = {
                .type = strndup(s, type_len),
                .base64 = strndup(b, b_len),
                .comment = c_len > 0 ? strndup(c, c_len) : NULL,
        };
        if (!k.type || !k.base64 || (c_len > 0 && !k.comment)) {
                nap_pubkey_done(&k);
                return -ENOMEM;
        }
        nap_pubkey_fingerprint(blob, blob_size, k.fingerprint);
        *ret = k;
        return 0;
}

static bool looks_like_options(const char *s) {
        size_t word = strcspn(s, " \t");
        return memchr(s, '=', word) || memchr(s, '"', word) || memchr(s, ',', word) || startswith(s, "no-") ||
               startswith(s, "restrict");
}

int nap_pubkey_parse(const char *text, size_t size, NapPubKey *ret, NapError *e) {
        const char *why = NULL;

        assert(text || size == 0);
        assert(ret);

        if (size > NAP_AUTHKEY_LINE_MAX)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "public key refused: longer than %d bytes", NAP_AUTHKEY_LINE_MAX);
        if (size > 0 && text[size - 1] == '\n')
                size--;
        if (size > 0 && (memchr(text, '\n', size) || memchr(text, 0, size)))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "public key refused: give exactly one line (TYPE BASE64 [COMMENT])");
        _cleanup_free_ char *copy = strndup(size > 0 ? text : "", size);
        if (!copy)
                return nap_error_errno(e, -ENOMEM, "Failed to parse the public key");
        const char *s = copy + strspn(copy, " \t");
        if (!*s)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "public key refused: empty input");
        if (!key_type_is_known(s, strcspn(s, " \t")) && looks_like_options(s))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "public key refused: options are not accepted (nap writes its own); "
                                     "give the key as ssh-keygen writes it: TYPE BASE64 [COMMENT]");
        int r = pubkey_from_fields(s, true, ret, &why);
        if (r == -ENOMEM)
                return nap_error_errno(e, r, "Failed to parse the public key");
        if (r < 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r, "public key refused: %s%s", why,
                                     streq(why, "unknown key type") ?
                                     " (known: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, "
                                     "sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com)" : "");
        return 0;
}

/* ---- lines ---- */

static bool git_shell_is_valid(const char *p, size_t n) {
        if (n == 0 || n > GIT_SHELL_MAX || p[0] != '/' || n < strlen(GIT_SHELL_NAME) ||
            !strneq(p + n - strlen(GIT_SHELL_NAME), GIT_SHELL_NAME, strlen(GIT_SHELL_NAME)))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._+-", p[i]) || !p[i])
                        return false;
        return true;
}

/* Past an options field, as sshd skips it: up to unquoted blank, '\"' inside. */
static const char *skip_options(const char *s, const char *end) {
        bool quoted = false;
        for (; s < end && (quoted || (*s != ' ' && *s != '\t')); s++) {
                if (*s == '\\' && s + 1 < end && s[1] == '"')
                        s++;
                else if (*s == '"')
                        quoted = !quoted;
        }
        return quoted ? NULL : s;
}

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static void line_clear(NapAuthKeyLine *l) {
        free(l->text);
        free(l->user);
        free(l->git_shell);
        nap_pubkey_done(&l->key);
}

/* nap's options: command="GITSHELL USER" and the fixed tail, exactly. */
static int parse_nap_options(const char *s, size_t n, NapAuthKeyLine *l) {
        const char *c = startswith(s, "command=\"");
        if (!c || c >= s + n)
                return 0;
        const char *q = memchr(c, '"', s + n - c), *sp = memchr(c, ' ', s + n - c);
        if (!q || !sp || sp > q || !git_shell_is_valid(c, sp - c))
                return 0;
        if ((size_t) (s + n - q - 1) != strlen(NAP_OPTIONS_TAIL) || !strneq(q + 1, NAP_OPTIONS_TAIL, strlen(NAP_OPTIONS_TAIL)))
                return 0;
        char user[NAP_USER_MAX + 2];
        size_t ul = q - sp - 1;
        if (ul > NAP_USER_MAX)
                return 0;
        memcpy(user, sp + 1, ul);
        user[ul] = 0;
        if (!nap_user_is_valid(user))
                return 0;
        l->user = strdup(user);
        l->git_shell = strndup(c, sp - c);
        return l->user && l->git_shell ? 1 : -ENOMEM;
}

/* The key of s (options already skipped): strict first, so a clean line
 * can be nap's; else lenient, to still know which key a foreign line holds.
 * 1: strict, 0: lenient or no key. */
static int read_key(const char *s, NapPubKey *ret) {
        const char *why;
        int r = pubkey_from_fields(s, true, ret, &why);
        if (r != -EINVAL)
                return r < 0 ? r : 1;
        r = pubkey_from_fields(s, false, ret, &why);
        return r == -ENOMEM ? r : 0;
}

/* Fills what can be read from the line l->text; the text stays as it is. */
static int parse_line(NapAuthKeyLine *l) {
        const char *s = l->text, *p = s + strspn(s, " \t");
        const char *end = s + strlen(s);

        if (end - s > NAP_AUTHKEY_LINE_MAX || p == end || *p == '#')
                return 0;
        if (key_type_is_known(p, strcspn(p, " \t"))) {
                int r = read_key(p, &l->key);
                return r < 0 ? r : 0;
        }
        const char *o = skip_options(p, end);
        if (!o || o == end)
                return 0;
        const char *k = o + strspn(o, " \t");
        int r = read_key(k, &l->key);
        /* nap's only when clean and written exactly as nap writes: no blanks
         * before, one space after the options. */
        if (r <= 0 || p != s || *o != ' ' || o + 1 != k)
                return r < 0 ? r : 0;
        r = parse_nap_options(p, o - p, l);
        if (r <= 0) {
                l->user = mfree(l->user);
                l->git_shell = mfree(l->git_shell);
        }
        return r < 0 ? r : 0;
}

NapAuthKeys *nap_authkeys_free(NapAuthKeys *k) {
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n; i++)
                line_clear(k->lines + i);
        free(k->lines);
        free(k);
        return NULL;
}

static int append_line(NapAuthKeys *k, const char *s, size_t n) {
        if (k->n == k->allocated) {
                size_t m = k->allocated ? k->allocated * 2 : 16;
                NapAuthKeyLine *a = reallocarray(k->lines, m, sizeof *a);
                if (!a)
                        return -ENOMEM;
                k->lines = a;
                k->allocated = m;
        }
        NapAuthKeyLine *l = k->lines + k->n;
        *l = (NapAuthKeyLine) { .text = strndup(s, n) };
        if (!l->text)
                return -ENOMEM;
        k->n++;
        return parse_line(l);
}

int nap_authkeys_parse(const char *text, size_t size, NapAuthKeys **ret, NapError *e) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = calloc(1, sizeof *k);

        assert(text || size == 0);
        assert(ret);

        if (!k)
                return nap_error_errno(e, -ENOMEM, "Failed to parse authorized_keys");
        if (size > NAP_AUTHKEYS_MAX_SIZE)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EFBIG,
                                     "authorized_keys is too large (%zu bytes, at most %d)", size, NAP_AUTHKEYS_MAX_SIZE);
        if (size > 0 && memchr(text, 0, size))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL, "authorized_keys contains a NUL byte");
        for (size_t i = 0; i < size;) {
                const char *nl = memchr(text + i, '\n', size - i);
                size_t n = nl ? (size_t) (nl - text - i) : size - i;
                int r = append_line(k, text + i, n);
                if (r < 0)
                        return nap_error_errno(e, r, "Failed to parse authorized_keys");
                i += n + 1;
        }
        *ret = TAKE_PTR(k);
        return 0;
}

int nap_authkeys_format(const NapAuthKeys *k, char **ret, size_t *ret_size) {
        size_t n = 0;

        assert(k);
        assert(ret);

        for (size_t i = 0; i < k->n; i++)
                n += strlen(k->lines[i].text) + 1;
        char *s = malloc(n + 1), *p = s;
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < k->n; i++) {
                p = stpcpy(p, k->lines[i].text);
                *p++ = '\n';
        }
        *p = 0;
        *ret = s;
        if (ret_size)
                *ret_size = n;
        return 0;
}

/* ---- edits in memory ---- */

static int conflict(const NapAuthKeys *k, const char *user, const NapPubKey *key, NapError *e) {
        for (size_t i = 0; i < k->n; i++) {
                const NapAuthKeyLine *l = k->lines + i;
                if (!l->key.type || !streq(l->key.fingerprint, key->fingerprint))
                        continue;
                if (!l->user)
                        return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EEXIST,
                                             "key %s is already in authorized_keys on line %zu, which nap did not "
                                             "write; remove it there first", key->fingerprint, i + 1);
                if (!streq(l->user, user))
                        return nap_error_set(e, NAP_ERROR_PERMISSION_DENIED, -EEXIST,
                                             "key %s is already registered for user %s", key->fingerprint, l->user);
                return 1;
        }
        return 0;
}

int nap_authkeys_add_key(NapAuthKeys *k, const char *git_shell, const char *user, const NapPubKey *key, NapError *e) {
        assert(k);
        assert(key);

        if (!nap_user_is_valid(user))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL, "invalid user name");
        if (!git_shell || !git_shell_is_valid(git_shell, strlen(git_shell)))
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "the forced command must be an absolute path of [A-Za-z0-9/._+-] ending in "
                                     "/nap-git-shell");
        int r = conflict(k, user, key, e);
        if (r != 0)
                return r > 0 ? 0 : r;

        _cleanup_free_ char *line = strdup_printf("command=\"%s %s\"" NAP_OPTIONS_TAIL " %s %s%s%s", git_shell, user,
                                                  key->type, key->base64, key->comment ? " " : "",
                                                  strempty(key->comment));
        if (!line)
                return nap_error_errno(e, -ENOMEM, "Failed to add the key");
        r = append_line(k, line, strlen(line));
        if (r < 0)
                return nap_error_errno(e, r, "Failed to add the key");
        if (!k->lines[k->n - 1].user)  /* must read back as ours */
                return nap_error_set(e, NAP_ERROR_INTERNAL, -EINVAL, "the new line does not parse back");
        return 1;
}

int nap_authkeys_remove_key(NapAuthKeys *k, const char *user, const char *fingerprint) {
        assert(k);
        assert(user);
        assert(fingerprint);

        _cleanup_free_ char *fp = startswith(fingerprint, "SHA256:") ? strdup(fingerprint) :
                                  strdup_printf("SHA256:%s", fingerprint);
        size_t kept = 0;
        int removed = 0;

        if (!fp)
                return -ENOMEM;
        for (size_t i = 0; i < k->n; i++) {
                NapAuthKeyLine *l = k->lines + i;
                if (l->user && streq(l->user, user) && streq(l->key.fingerprint, fp)) {
                        line_clear(l);
                        removed++;
                } else
                        k->lines[kept++] = *l;
        }
        k->n = kept;
        return removed;
}

/* ---- the file ---- */

/* The directory part of path: "/a/b" → "/a", "/b" → "/", "b" → ".". */
static char *dir_of(const char *path) {
        const char *slash = strrchr(path, '/');
        if (!slash)
                return strdup(".");
        return strndup(path, slash == path ? 1 : (size_t) (slash - path));
}

/* Creates path's directory if missing: 0700, owned like its parent. */
static int ensure_directory(const char *path) {
        _cleanup_free_ char *dir = dir_of(path), *parent = NULL;
        struct stat st;

        if (!dir)
                return -ENOMEM;
        if (stat(dir, &st) >= 0)
                return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
        parent = dir_of(dir);
        if (!parent)
                return -ENOMEM;
        if (stat(parent, &st) < 0)
                return negative_errno();
        if (mkdir(dir, 0700) < 0)
                return errno == EEXIST ? 0 : negative_errno();
        if (chown(dir, st.st_uid, st.st_gid) < 0)
                return negative_errno();
        return 0;
}

static int lock_path(const char *path, int *ret_fd) {
        _cleanup_free_ char *lock = strdup_printf("%s.lock", path);
        return lock ? lock_file(lock, ret_fd) : -ENOMEM;
}

static int store(const char *path, const NapAuthKeys *k, NapError *e) {
        _cleanup_free_ char *text = NULL, *dir = dir_of(path);
        struct stat st;
        size_t size;

        if (!dir || nap_authkeys_format(k, &text, &size) < 0)
                return nap_error_errno(e, -ENOMEM, "Failed to write %s", path);
        if (stat(path, &st) < 0) {
                if (errno != ENOENT || stat(dir, &st) < 0)
                        return nap_error_errno(e, negative_errno(), "Failed to write %s", path);
                st.st_mode = 0600; /* new: 0600, owned like its directory */
        }
        int r = write_file_atomic_owned(path, text, size, st.st_mode & 07777, st.st_uid, st.st_gid);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to write %s", path);
        return 0;
}

int nap_authkeys_load(const char *path, NapAuthKeys **ret, NapError *e) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;

        assert(path);
        assert(ret);

        int r = read_full_file(path, NAP_AUTHKEYS_MAX_SIZE, &text, &size);
        if (r == -EFBIG)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, r, "%s is too large (more than %d bytes)", path,
                                     NAP_AUTHKEYS_MAX_SIZE);
        if (r < 0 && r != -ENOENT)
                return nap_error_errno(e, r, "Failed to read %s", path);
        return nap_authkeys_parse(text, size, ret, e);
}

/* Lock, load, edit, store. edit returns < 0 (error set), 0 (nothing to
 * write) or > 0 (write). */
static int modify(const char *path, int (*edit)(NapAuthKeys *k, void *userdata, NapError *e), void *userdata,
                  NapError *e) {
        _cleanup_(nap_authkeys_freep) NapAuthKeys *k = NULL;
        _cleanup_close_ int lock = -1;

        int r = ensure_directory(path);
        if (r == -ENOENT) /* e.g. the default path on a host without nap's /var/lib/nap */
                return nap_error_errno(e, r,
                                       "Failed to lock %s: the directory above its own is missing "
                                       "(AuthorizedKeys= in nap.conf names where the nap account's sshd reads keys)",
                                       path);
        if (r >= 0)
                r = lock_path(path, &lock);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to lock %s", path);
        r = nap_authkeys_load(path, &k, e);
        if (r < 0)
                return r;
        r = edit(k, userdata, e);
        if (r <= 0)
                return r;
        return store(path, k, e);
}

typedef struct AddArgs {
        const char *git_shell, *user;
        const NapPubKey *key;
        bool added;
} AddArgs;

static int add_edit(NapAuthKeys *k, void *userdata, NapError *e) {
        AddArgs *a = userdata;
        int r = nap_authkeys_add_key(k, a->git_shell, a->user, a->key, e);
        a->added = r > 0;
        return r;
}

int nap_authkeys_add(const char *path, const char *git_shell, const char *user, const char *pubkey, size_t size,
                     NapPubKey *ret_key, bool *ret_added, NapError *e) {
        NapPubKey key = {};

        assert(path);
        assert(pubkey || size == 0);

        if (!nap_user_is_valid(user))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "invalid user name: expected [a-z][a-z0-9-]{0,31}");
        int r = nap_pubkey_parse(pubkey, size, &key, e);
        if (r < 0)
                return r;
        AddArgs a = { .git_shell = git_shell, .user = user, .key = &key };
        r = modify(path, add_edit, &a, e);
        if (r >= 0 && ret_added)
                *ret_added = a.added;
        if (r >= 0 && ret_key)
                *ret_key = key;
        else
                nap_pubkey_done(&key);
        return r < 0 ? r : 0;
}

typedef struct RemoveArgs {
        const char *path, *user, *fingerprint;
} RemoveArgs;

static int remove_edit(NapAuthKeys *k, void *userdata, NapError *e) {
        RemoveArgs *a = userdata;
        int r = nap_authkeys_remove_key(k, a->user, a->fingerprint);
        if (r < 0)
                return nap_error_errno(e, r, "Failed to remove the key");
        if (r == 0)
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -ENOENT, "user %s has no key %s in %s", a->user,
                                     a->fingerprint, a->path);
        return r;
}

int nap_authkeys_remove(const char *path, const char *user, const char *fingerprint, NapError *e) {
        assert(path);
        assert(fingerprint);

        if (!nap_user_is_valid(user))
                return nap_error_set(e, NAP_ERROR_INVALID_NAME, -EINVAL,
                                     "invalid user name: expected [a-z][a-z0-9-]{0,31}");
        /* Shown in messages: only what a fingerprint is made of. */
        const char *fp = startswith(fingerprint, "SHA256:") ?: fingerprint;
        if (strlen(fp) != 43 || fp[strspn(fp, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")])
                return nap_error_set(e, NAP_ERROR_INVALID_PARAMETER, -EINVAL,
                                     "invalid fingerprint: expected SHA256: and 43 base64 characters, as "
                                     "napctl keys list or ssh-keygen -lf show it");
        RemoveArgs a = { .path = path, .user = user, .fingerprint = fingerprint };
        int r = modify(path, remove_edit, &a, e);
        return r < 0 ? r : 0;
}
