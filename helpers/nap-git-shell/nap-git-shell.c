/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* nap-git-shell USER | --replica: the forced command of the nap account's
 * authorized_keys (nap-git-shell(8)). sshd runs it for every login with
 * one of USER's keys, whatever the client asked for; the client's command
 * is in $SSH_ORIGINAL_COMMAND. Only a push or a clone of one of USER's
 * apps gets through, to git's own receive-pack/upload-pack, exec'ed in our
 * place; a push creates the repository first. Everything else is refused
 * with one line on stderr (which ssh shows the client) and exit status 1.
 *
 * Nothing may be written to stdout before the exec: it is git's protocol
 * stream. */

#include <stdarg.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "model/config.h"
#include "clients/gitshell.h"
#include "nap-config.h"

#define RECEIVE_DEFAULT NAP_LIBEXECDIR "/nap-receive"

/* One line for the client, one journal entry for the admin. */
_printf_(2, 3)
static int refuse(const char *user, const char *fmt, ...) {
        char msg[NAP_ERROR_MESSAGE_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "nap-git-shell: %s\n", msg);
        (void) sd_journal_send("MESSAGE=refused for %s: %s", user ?: "?", msg, "PRIORITY=%i", LOG_NOTICE,
                               "SYSLOG_IDENTIFIER=nap-git-shell", "NAP_USER=%s", user ?: "", NULL);
        return 1;
}

/* Where the hook sends pushes: $NAP_RECEIVE_BINARY (tests) or nap-receive. */
static const char *receive_binary(void) {
        const char *s = secure_getenv("NAP_RECEIVE_BINARY");
        return isempty(s) ? RECEIVE_DEFAULT : s;
}

static int serve(const char *user, const NapGitCommand *cmd) {
        _cleanup_(nap_config_freep) NapConfig *config = NULL;
        NapError e = NAP_ERROR_NULL;
        NapService s;

        /* Warnings about nap.conf are the admin's business, not the pusher's. */
        if (nap_config_load(&config, NULL, NULL, &e) < 0 || nap_service_from_parts(user, cmd->app, &s, &e) < 0)
                return refuse(user, "%s", e.message);

        int r = cmd->verb == NAP_GIT_RECEIVE_PACK ? nap_git_repo_ensure(config, &s, receive_binary(), &e) :
                                                    nap_git_repo_exists(config, &s, &e);
        if (r < 0)
                return refuse(user, "%s", e.message);
        if (r == 0 && cmd->verb == NAP_GIT_UPLOAD_PACK)
                return refuse(user, "no app '%s' here: push it first (git push nap@HOST:%s main)", cmd->app,
                              cmd->app);

        _cleanup_free_ char *path = nap_git_repo_path(config, &s);
        if (!path)
                return refuse(user, "out of memory");
        /* "git receive-pack DIR": git finds its own helper, wherever it lives. */
        const char *sub = cmd->verb == NAP_GIT_RECEIVE_PACK ? "receive-pack" : "upload-pack";
        char *argv[] = { (char *) "git", (char *) sub, path, NULL };
        execvp("git", argv);
        refuse(user, "Failed to run git %s: %m", sub);
        return 127;
}

/* Another node's push of a repository it received (nap-git-shell
 * --replica, the forced command of the nodes' replica keys): into the same
 * repository here, whose hook then only notes it (NAP_RECEIVE_REPLICA):
 * the pushing node deploys, and rolls the cluster's instances. */
static int serve_replica(void) {
        _cleanup_(nap_config_freep) NapConfig *config = NULL;
        _cleanup_free_ char *path = NULL;
        NapError e = NAP_ERROR_NULL;
        NapService s;
        const char *cmd = getenv("SSH_ORIGINAL_COMMAND");

        if (nap_git_replica_command_parse(cmd, cmd ? strlen(cmd) : 0, &s, &e) < 0 ||
            nap_config_load(&config, NULL, NULL, &e) < 0 || nap_git_repo_ensure(config, &s, receive_binary(), &e) < 0)
                return refuse("(replica)", "%s", e.message);
        if (!(path = nap_git_repo_path(config, &s)) || setenv("NAP_RECEIVE_REPLICA", "1", 1) < 0)
                return refuse("(replica)", "out of memory");
        char *argv[] = { (char *) "git", (char *) "receive-pack", path, NULL };
        execvp("git", argv);
        refuse("(replica)", "Failed to run git receive-pack: %m");
        return 127;
}

int main(int argc, char *argv[]) {
        NapError e = NAP_ERROR_NULL;
        NapGitCommand cmd;

        if (argc == 2 && streq(argv[1], "--replica"))
                return serve_replica();
        if (argc != 2 || !nap_user_is_valid(argv[1]))
                return refuse(argc > 1 && nap_user_is_valid(argv[1]) ? argv[1] : NULL,
                              "usage: nap-git-shell USER | --replica (the forced command of an authorized_keys "
                              "line, written by napctl keys add)");
        const char *s = getenv("SSH_ORIGINAL_COMMAND");
        if (nap_git_command_parse(s, s ? strlen(s) : 0, &cmd, &e) < 0)
                return refuse(argv[1], "%s", e.message);
        return serve(argv[1], &cmd);
}
