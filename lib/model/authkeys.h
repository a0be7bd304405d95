/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The nap account's authorized_keys (sshd(8), "AUTHORIZED_KEYS FILE
 * FORMAT"), path AuthorizedKeys= in nap.conf. The lines nap writes are
 *
 *   command="GITSHELL USER",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc TYPE BASE64 [COMMENT]
 *
 * GITSHELL an absolute path ending in "/nap-git-shell" (NAP_LIBEXECDIR's,
 * or $NAP_GIT_SHELL_BINARY in tests), USER a nap user name. A line is
 * nap's when its options are exactly these; every other line (comments,
 * blank lines, an admin's own keys, a nap line someone edited) is kept
 * byte for byte and in order, and only read to refuse adding a key that
 * already appears there (sshd would use whichever line comes first).
 *
 * Keys: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp{256,384,521},
 * sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com; the
 * base64 must decode to a blob that starts with the same type name, as
 * sshd checks. A fingerprint is ssh-keygen -lf's: "SHA256:" and the
 * unpadded base64 of the SHA-256 of the blob.
 *
 * Edits take a flock(2) on PATH.lock, read, change, and replace the file
 * atomically (temp file, fsync, rename) keeping its mode and owner; a new
 * file is 0600 and owned like its directory, a new directory 0700 and
 * owned like its parent, because sshd reads the file as the nap account
 * (StrictModes). */

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

#define NAP_AUTHKEYS_MAX_SIZE (1024 * 1024)
#define NAP_AUTHKEY_LINE_MAX 8192     /* sshd's own limit is 8 KiB too */
#define NAP_AUTHKEY_BLOB_MAX 4096     /* decoded; a 16384-bit RSA key is ~2 KiB */
#define NAP_AUTHKEY_COMMENT_MAX 256
#define NAP_FINGERPRINT_MAX 52        /* "SHA256:" + 43 + NUL */

typedef struct NapPubKey {
        char *type;     /* "ssh-ed25519" */
        char *base64;   /* as given */
        char *comment;  /* NULL if none */
        char fingerprint[NAP_FINGERPRINT_MAX];
} NapPubKey;

void nap_pubkey_done(NapPubKey *k);

/* One public key line as ssh-keygen writes it: "TYPE BASE64 [COMMENT]",
 * one trailing newline allowed. Options, a second line, an unknown type,
 * bad base64, a blob of another type, control characters or a comment over
 * the cap are refused (NAP_ERROR_INVALID_PARAMETER, -EINVAL). */
int nap_pubkey_parse(const char *text, size_t size, NapPubKey *ret, NapError *e);

/* "SHA256:…" of a decoded key blob. */
void nap_pubkey_fingerprint(const void *blob, size_t size, char ret[static NAP_FINGERPRINT_MAX]);

typedef struct NapAuthKeyLine {
        char *text;       /* the line as read, without its newline */
        char *user;       /* nap's line: the user; NULL for any other line */
        char *git_shell;  /* nap's line: the forced command's program */
        NapPubKey key;    /* nap's line, or a foreign line holding a key we can read; else type NULL */
} NapAuthKeyLine;

typedef struct NapAuthKeys {
        NapAuthKeyLine *lines;
        size_t n;
        size_t allocated; /* of lines, private */
} NapAuthKeys;

NapAuthKeys *nap_authkeys_free(NapAuthKeys *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(NapAuthKeys *, nap_authkeys_free);

/* Never fails on content: a line that is not understood, or longer than
 * NAP_AUTHKEY_LINE_MAX, is foreign. Fails only on a NUL byte (-EINVAL), a
 * file over NAP_AUTHKEYS_MAX_SIZE (-EFBIG), both NAP_ERROR_INVALID_PARAMETER,
 * or OOM. */
int nap_authkeys_parse(const char *text, size_t size, NapAuthKeys **ret, NapError *e);
/* Every line followed by "\n". */
int nap_authkeys_format(const NapAuthKeys *k, char **ret, size_t *ret_size);

/* In memory: appends nap's line for user and key. 1 if added, 0 if that
 * user has that key already; -EEXIST (NAP_ERROR_PERMISSION_DENIED) if
 * another user has it, or (NAP_ERROR_INVALID_PARAMETER) a foreign line.
 * git_shell must be an absolute path of [A-Za-z0-9/._+-] ending in
 * "/nap-git-shell". */
int nap_authkeys_add_key(NapAuthKeys *k, const char *git_shell, const char *user, const NapPubKey *key, NapError *e);
/* In memory: drops user's lines with that fingerprint ("SHA256:" optional).
 * Returns how many (0: none, not an error here). */
int nap_authkeys_remove_key(NapAuthKeys *k, const char *user, const char *fingerprint);

/* The file operations (napctl keys). A missing file is an empty one. */
int nap_authkeys_add(const char *path, const char *git_shell, const char *user, const char *pubkey, size_t size,
                     NapPubKey *ret_key, bool *ret_added, NapError *e);
/* Fails with NAP_ERROR_INVALID_PARAMETER (-ENOENT) if user has no such key. */
int nap_authkeys_remove(const char *path, const char *user, const char *fingerprint, NapError *e);
/* The whole file, parsed (a missing file has no lines). Listing reads
 * without the lock: writers replace the file whole. */
int nap_authkeys_load(const char *path, NapAuthKeys **ret, NapError *e);
