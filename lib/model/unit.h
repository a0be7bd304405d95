/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Unit file text: systemd quoting and the units nap generates.
 * Nothing here runs a shell; argv goes to ExecStart= word by word, each
 * word double-quoted with '\\' '"' escaped, control characters refused,
 * '%' written "%%" (no specifier expansion) and '$' written "$$" (no
 * environment expansion), so the process gets exactly argv. */

#include <stdbool.h>
#include <stdio.h>

#include "model/config.h"
#include "nap-config.h"
#include "model/manifest.h"

/* One word quoted for ExecStart=; NULL on OOM or -EINVAL-worthy input
 * (control characters) with errno set. */
char *unit_quote_exec_word(const char *word);
/* The same for keys that unquote but expand no variables
 * (RequiresMountsFor=, ReadWritePaths=): '$' left alone. */
char *unit_quote_word(const char *word);
/* All words, space-separated. -EINVAL for an empty argv, a control
 * character, or a first word that starts with one of systemd's ExecStart=
 * prefixes ("-@:+!"), which quoting does not protect. */
int unit_format_exec(char *const *argv, char **ret);
/* A value for keys that take a path or a plain string (WorkingDirectory=,
 * Description=): '%' doubled; control characters refused (-EINVAL). */
int unit_escape_value(const char *s, char **ret);

/* The name of the unprivileged identity that runs USER's apps in system
 * scope: "nap-USER", or for users too long for a unit's User= (31 bytes)
 * "nap_" + 18 bytes of USER + "_" + 8 hex digits of a hash of USER ('_'
 * cannot appear in a nap user name, so the two forms never collide). */
#define NAP_UNIT_USER_NAME_MAX 31
const char *nap_unit_user_name(const char *user, char buf[static NAP_UNIT_USER_NAME_MAX + 1]);

/* The template USER_APP_common@.service (hardening, restart policy, no
 * ExecStart=: an instance without a manifest cannot start). With a
 * discovery sidecar (nap_unit_has_discovery()) it also Wants= the
 * instance's sidecar USER_APP_discovery@%i.service. */
int nap_unit_write_template(FILE *f, const NapService *s, NapKind kind, NapScope scope,
                            const NapConfig *c);
/* The drop-in USER_APP_common@N.service.d/50-nap-instance.conf:
 * ExecStart=, WorkingDirectory=, Environment=PORT=, RequiresMountsFor=.
 * -EINVAL for a container instance (nap_manifest_has_image()): it gets the
 * two units below instead. */
int nap_unit_write_instance_dropin(FILE *f, const NapManifest *m, NapScope scope, const NapConfig *c);
/* The same settings for an exported unit (model/unit-export.h): no
 * SourcePath= (the manifest is not on another host) and m->directory
 * read-only in either scope. */
int nap_unit_write_exported_settings(FILE *f, const NapManifest *m, NapScope scope, const NapConfig *c);

/* The discovery sidecar (nap-discovery(8)): one per common instance, only
 * when Etcd= is set. It publishes the instance's endpoint in etcd on a
 * lease while the app runs; the app's template Wants= it, and it is bound
 * to the app (BindsTo=, After=, PartOf=), so it has no [Install] and no
 * .wants link of its own. */
#define NAP_DISCOVERY_BINARY_DEFAULT NAP_LIBEXECDIR "/nap-discovery"
/* The identity sidecars run as in system scope. '_' keeps it apart from
 * every nap_unit_user_name(): "nap-USER" has none, the hashed form two. */
#define NAP_UNIT_DISCOVERY_USER "nap_discovery"
bool nap_unit_has_discovery(NapKind kind, const NapConfig *c) _pure_;
/* "USER_APP_discovery@.service" into buf (NAP_UNIT_NAME_MAX bytes). */
const char *nap_unit_discovery_template_name(const NapService *s, char *buf);
/* "USER_APP_discovery@N.service", i's sidecar, into buf (NAP_UNIT_NAME_MAX bytes). */
const char *nap_unit_discovery_name(const NapInstance *i, char *buf);
/* The sidecar's template USER_APP_discovery@.service running binary (an
 * absolute path, nap_unit_exec_path_is_valid()) with the instance's name.
 * -EINVAL when a path cannot be written into the unit. */
int nap_unit_write_discovery_template(FILE *f, const NapService *s, NapScope scope, const NapConfig *c,
                                      const char *binary);
/* An exported sidecar USER_APP_discovery@N.service (model/unit-export.h):
 * the template's text, but nap-discovery is given m's port and health path
 * (--port=, --health-path=) and reads no manifest, and [X-Fleet] names
 * MachineOf= the instance's unit as written. -EINVAL as above, or for an
 * instance not of kind common. */
int nap_unit_write_discovery_exported(FILE *f, const NapManifest *m, NapScope scope, const NapConfig *c,
                                      const char *binary);
/* An absolute, normalized path (no "//", ".", ".." or trailing '/') without
 * control characters, shorter than PATH_MAX: what may be written as a
 * program to run. */
bool nap_unit_exec_path_is_valid(const char *path) _pure_;

/* Container instances: a manifest with an image (a Dockerfile app), run by
 * podman as podman's quadlet would (nap-generator(8), CONTAINERS). */
#define NAP_PODMAN_BINARY "/usr/bin/podman"
/* "USER_APP_N" (NAP_UNIT_NAME_MAX bytes): the container's name. */
const char *nap_unit_container_name(const NapInstance *i, char *buf);
/* "USER_APP_build@N.service" (NAP_UNIT_NAME_MAX bytes). */
const char *nap_unit_build_name(const NapInstance *i, char *buf);
/* USER_APP_build@N.service: podman build of the image's context into its
 * tag; a oneshot, PartOf= the run unit. -EINVAL without an image. */
int nap_unit_write_container_build(FILE *f, const NapManifest *m, NapScope scope, const NapConfig *c);
/* USER_APP_common@N.service, a whole unit that replaces the template for
 * this instance: podman run of the tag with the port published, after the
 * build unit, with the discovery sidecar when there is one. -EINVAL
 * without an image, or when argv cannot be written. */
int nap_unit_write_container_run(FILE *f, const NapManifest *m, NapScope scope, const NapConfig *c);
