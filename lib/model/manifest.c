/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <jansson.h>
#include <limits.h>

#include "base/fileio.h"
#include "model/environment.h"
#include "model/manifest.h"
#include "model/node.h"
#include "base/strv.h"

/* What the parser collects before the combinations (user+app, kind+number)
 * can be checked. */
typedef struct ManifestParse {
        const char *user, *app, *kind;
        json_int_t number;
        NapManifest *m;
        unsigned seen; /* bit per entry of manifest_keys */
} ManifestParse;

typedef int (*key_parser)(const char *key, json_t *v, ManifestParse *p, NapError *e);

/* A refusal naming the key (a macro, so the format is checked). */
#define bad(e, fmt, key) nap_error_set((e), NAP_ERROR_INVALID_MANIFEST, -EINVAL, (fmt), (key))

static bool has_control(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static int parse_version(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        if (json_integer_value(v) != NAP_MANIFEST_VERSION)
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EPROTONOSUPPORT,
                                     "Unsupported manifest version %lld (expected %d)",
                                     (long long) json_integer_value(v), NAP_MANIFEST_VERSION);
        return 0;
}

static int parse_name(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        const char *s = json_string_value(v);
        bool user = streq(key, "user");
        if (user ? !nap_user_is_valid(s) : !nap_app_is_valid(s))
                return bad(e, user ? "Key '%s' is not a valid user name ([a-z][a-z0-9-]{0,31})"
                                   : "Key '%s' is not a valid app name ([a-z][a-z0-9-]{0,47})", key);
        *(user ? &p->user : &p->app) = s;
        return 0;
}

static int parse_kind(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        p->kind = json_string_value(v);
        if (nap_kind_from_string(p->kind) < 0)
                return bad(e, "Key '%s' must be \"common\", \"mpi_master\" or \"mpi_slave\"", key);
        return 0;
}

static int parse_number(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        p->number = json_integer_value(v); /* range depends on the kind: checked later */
        return 0;
}

static int parse_argv(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        size_t i;
        json_t *w;

        /* Empty is refused in parse_finish() unless there is an image. */
        json_array_foreach(v, i, w) {
                const char *s = json_string_value(w);
                if (!s)
                        return bad(e, "Key '%s' must be an array of strings", key);
                if (has_control(s))
                        return bad(e, "Key '%s' contains a control character", key);
                if (i == 0 && isempty(s))
                        return bad(e, "Key '%s' has an empty command", key);
                if (strv_extend(&p->m->argv, s) < 0)
                        return nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
        }
        return 0;
}

static int parse_directory(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        if (!path_is_normalized(json_string_value(v)))
                return bad(e, "Key '%s' must be a normalized absolute path", key);
        p->m->directory = strdup(json_string_value(v));
        return p->m->directory ? 0 : nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
}

static int parse_port(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        json_int_t port = json_integer_value(v);
        if (port < 1 || port > 65535)
                return bad(e, "Key '%s' must be a port number 1..65535", key);
        p->m->port = port;
        return 0;
}

static int parse_enabled(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        p->m->enabled = json_is_true(v);
        return 0;
}

static int parse_cluster(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        p->m->cluster = json_is_true(v);
        return 0;
}

static int parse_params(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        const char *k;
        json_t *w;
        int r;

        r = nap_params_new(&p->m->params);
        if (r < 0)
                return nap_error_errno(e, r, "Cannot parse manifest");
        json_object_foreach(v, k, w) {
                if (!json_is_string(w))
                        return bad(e, "Key '%s' must map names to strings", key);
                NapError inner = NAP_ERROR_NULL;
                r = nap_params_set(p->m->params, k, json_string_value(w), &inner);
                if (r < 0)
                        return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, r, "Key '%s': %s",
                                             key, inner.message);
        }
        return 0;
}

/* The app's environment (lib/model/environment.h). */
static int parse_environment(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        NapError inner = NAP_ERROR_NULL;
        int r = nap_environment_from_json(v, &p->m->environment, &inner);
        return r < 0 ? nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, r, "Key '%s': %s", key, inner.message) : 0;
}

/* A key name from outside, safe to show in a message. */
static const char *shown_key(const char *key, char buf[static 64]) {
        snprintf(buf, 64, "%s", key);
        for (char *c = buf; *c; c++)
                if ((unsigned char) *c < 0x20 || *c == 0x7f)
                        *c = '?';
        return buf;
}

static int parse_image_member(const char *k, json_t *w, NapManifestImage *img, NapError *e) {
        const char *s = json_string_value(w);
        char shown[64];
        if (!streq(k, "context") && !streq(k, "tag"))
                return bad(e, "Unknown key 'image.%s'", shown_key(k, shown));
        if (!s)
                return bad(e, "Key 'image.%s' must be a string", k);
        if (streq(k, "context") && !path_is_normalized(s))
                return bad(e, "Key 'image.%s' must be a normalized absolute path", k);
        if (streq(k, "tag") && !nap_image_name_is_valid(s))
                return bad(e, "Key 'image.%s' is not a valid image name (lowercase NAME[:TAG], "
                           "at most 128 bytes)", k);
        char **field = streq(k, "context") ? &img->context : &img->tag;
        *field = strdup(s);
        return *field ? 0 : nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
}

/* {"context": DIR, "tag": IMAGE}: both, nothing else. */
static int parse_image(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        NapManifestImage *img = &p->m->image;
        const char *k;
        json_t *w;
        json_object_foreach(v, k, w) {
                int r = parse_image_member(k, w, img, e);
                if (r < 0)
                        return r;
        }
        if (!img->context || !img->tag)
                return bad(e, "Missing key 'image.%s'", img->context ? "tag" : "context");
        return 0;
}

static int parse_commit(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        const char *s = json_string_value(v);
        if (strlen(s) != 40 || strspn(s, "0123456789abcdef") != 40)
                return bad(e, "Key '%s' must be 40 lowercase hexadecimal digits", key);
        p->m->commit = strdup(s);
        return p->m->commit ? 0 : nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
}

static int parse_resources(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        static const char *const fields[] = { "request_cpu_milli", "limit_cpu_milli", "request_memory",
                                              "limit_memory" };
        NapCompute *c = &p->m->resources;
        uint64_t *dst[] = { &c->request_cpu_milli, &c->limit_cpu_milli, &c->request_memory, &c->limit_memory };
        char shown[64];
        const char *k;
        json_t *w;
        json_object_foreach(v, k, w) {
                size_t i = 0;
                while (i < ELEMENTSOF(fields) && !streq(fields[i], k))
                        i++;
                if (i == ELEMENTSOF(fields))
                        return bad(e, "Unknown key 'resources.%s'", shown_key(k, shown));
                if (!json_is_integer(w) || json_integer_value(w) < 0)
                        return bad(e, "Key 'resources.%s' must be an integer, 0 or more", k);
                *dst[i] = (uint64_t) json_integer_value(w);
        }
        /* the limits as given: a manifest is written whole, never guessed */
        NapCompute checked = *c;
        if (nap_compute_check(&checked, NULL) < 0 || memcmp(&checked, c, sizeof checked) != 0)
                return bad(e, "Key '%s' has requests and limits that do not go together", key);
        return 0;
}

static int parse_reservation(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        const char *s = json_string_value(v);
        if (nap_node_name_check(s, NULL) < 0)
                return bad(e, "Key '%s' must be a node name", key);
        p->m->reservation = strdup(s);
        return p->m->reservation ? 0 : nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
}

static int parse_health_path(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        const char *s = json_string_value(v);
        if (!nap_health_path_is_valid(s))
                return bad(e, "Key '%s' must be " NAP_HEALTH_PATH_RULE, key);
        p->m->health_path = strdup(s);
        return p->m->health_path ? 0 : nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
}

/* Every key a manifest may have. Anything else is refused: a manifest nap
 * did not write is not trusted. */
static const struct {
        const char *key;
        json_type type;
        bool required;
        key_parser parse;
} manifest_keys[] = {
        { "version",   JSON_INTEGER, true,  parse_version   },
        { "user",      JSON_STRING,  true,  parse_name      },
        { "app",       JSON_STRING,  true,  parse_name      },
        { "kind",      JSON_STRING,  true,  parse_kind      },
        { "number",    JSON_INTEGER, true,  parse_number    },
        { "argv",      JSON_ARRAY,   true,  parse_argv      },
        { "directory", JSON_STRING,  true,  parse_directory },
        { "port",      JSON_INTEGER, true,  parse_port      },
        { "enabled",   JSON_TRUE,    true,  parse_enabled   }, /* JSON_TRUE: any boolean */
        { "cluster",   JSON_TRUE,    false, parse_cluster   },
        { "params",    JSON_OBJECT,  false, parse_params    },
        { "commit",    JSON_STRING,  false, parse_commit    },
        { "image",     JSON_OBJECT,  false, parse_image     },
        { "resources", JSON_OBJECT,  false, parse_resources },
        { "reservation", JSON_STRING, false, parse_reservation },
        { "health_path", JSON_STRING, false, parse_health_path },
        { "environment", JSON_OBJECT, false, parse_environment },
};

static const char *json_type_name(json_type t) {
        switch (t) {
        case JSON_INTEGER: return "an integer";
        case JSON_STRING:  return "a string";
        case JSON_ARRAY:   return "an array";
        case JSON_OBJECT:  return "an object";
        default:           return "a boolean";
        }
}

static bool json_type_matches(json_t *v, json_type t) {
        return t == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == t;
}

static int parse_key(const char *key, json_t *v, ManifestParse *p, NapError *e) {
        for (size_t i = 0; i < ELEMENTSOF(manifest_keys); i++) {
                if (!streq(manifest_keys[i].key, key))
                        continue;
                if (!json_type_matches(v, manifest_keys[i].type))
                        return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EINVAL,
                                             "Key '%s' must be %s", key,
                                             json_type_name(manifest_keys[i].type));
                p->seen |= 1u << i;
                return manifest_keys[i].parse(key, v, p, e);
        }
        char shown[64];
        return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EINVAL, "Unknown key '%s'", shown_key(key, shown));
}

/* The checks that need more than one key. */
static int parse_finish(ManifestParse *p, NapError *e) {
        for (size_t i = 0; i < ELEMENTSOF(manifest_keys); i++)
                if (manifest_keys[i].required && !(p->seen & (1u << i)))
                        return bad(e, "Missing key '%s'", manifest_keys[i].key);

        NapInstance *i = &p->m->instance;
        int r = nap_service_from_parts(p->user, p->app, &i->service, NULL);
        if (r < 0)
                return bad(e, "Invalid %s", "service name");
        i->kind = nap_kind_from_string(p->kind);
        if (!nap_kind_has_number(i->kind)) {
                if (p->number != 0)
                        return bad(e, "Key 'number' must be 0 for kind '%s'", p->kind);
        } else if (p->number < 1 || p->number > NAP_INSTANCE_NUMBER_MAX)
                return bad(e, "Key 'number' must be 1..999999999 for kind '%s'", p->kind);
        i->number = p->number;

        /* Only a container has a command of its own (its image's). */
        if (nap_manifest_has_image(p->m) && i->kind != NAP_KIND_COMMON)
                return bad(e, "Key 'image' is only valid for kind '%s'", "common");
        if (!nap_manifest_has_image(p->m) && strv_length(p->m->argv) == 0)
                return bad(e, "Key '%s' must not be empty", "argv");
        return 0;
}

NapManifest *nap_manifest_free(NapManifest *m) {
        if (!m)
                return NULL;
        strv_free(m->argv);
        free(m->directory);
        nap_params_free(m->params);
        free(m->commit);
        free(m->image.context);
        free(m->image.tag);
        free(m->reservation);
        free(m->health_path);
        nap_params_free(m->environment);
        free(m);
        return NULL;
}

int nap_manifest_parse(const char *text, size_t size, NapManifest **ret, NapError *e) {
        assert(text || size == 0);
        assert(ret);

        if (size > NAP_MANIFEST_MAX_SIZE)
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EFBIG,
                                     "Manifest is larger than %d bytes", NAP_MANIFEST_MAX_SIZE);

        json_error_t jerr;
        json_auto_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EBADMSG,
                                     "Not valid JSON (line %d, column %d): %s",
                                     jerr.line, jerr.column, jerr.text);
        if (!json_is_object(root))
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EBADMSG,
                                     "Manifest is not a JSON object");

        _cleanup_(nap_manifest_freep) NapManifest *m = calloc(1, sizeof *m);
        if (!m)
                return nap_error_errno(e, -ENOMEM, "Cannot parse manifest");
        ManifestParse p = { .m = m };
        const char *key;
        json_t *v;
        int r;

        json_object_foreach(root, key, v) {
                r = parse_key(key, v, &p, e);
                if (r < 0)
                        return r;
        }
        r = parse_finish(&p, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static int set_new(json_t *o, const char *key, json_t *v) {
        return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *argv_to_json(char *const *argv) {
        json_t *a = json_array();
        STRV_FOREACH(s, argv)
                if (!a || json_array_append_new(a, json_string(*s)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static int compare_keys(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* An object whose keys are sorted, so the same params always give the
 * same bytes, whatever order they were set in. */
static json_t *params_to_json(const NapParams *params) {
        size_t n = nap_params_size(params);
        _cleanup_free_ const char **keys = calloc(n + 1, sizeof *keys);
        json_t *o = json_object();
        if (!keys || !o) {
                json_decref(o);
                return NULL;
        }
        for (size_t i = 0; i < n; i++)
                keys[i] = nap_params_key(params, i);
        qsort(keys, n, sizeof *keys, compare_keys);
        for (size_t i = 0; i < n; i++)
                if (set_new(o, keys[i], json_string(nap_params_get(params, keys[i]))) < 0) {
                        json_decref(o);
                        return NULL;
                }
        return o;
}

static json_t *resources_to_json(const NapCompute *c) {
        return json_pack("{s:I, s:I, s:I, s:I}", "request_cpu_milli", (json_int_t) c->request_cpu_milli,
                         "limit_cpu_milli", (json_int_t) c->limit_cpu_milli, "request_memory",
                         (json_int_t) c->request_memory, "limit_memory", (json_int_t) c->limit_memory);
}

static json_t *image_to_json(const NapManifestImage *img) {
        json_t *o = json_object();
        if (!o || set_new(o, "context", json_string(img->context)) < 0 ||
            set_new(o, "tag", json_string(img->tag)) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

char *nap_manifest_format(const NapManifest *m) {
        assert(m);

        const NapInstance *i = &m->instance;
        json_auto_t *o = json_object();
        if (!o)
                return NULL;

        /* jansson keeps insertion order: this is the key order on disk. */
        int r = 0;
        r |= set_new(o, "version", json_integer(NAP_MANIFEST_VERSION));
        r |= set_new(o, "user", json_string(i->service.user));
        r |= set_new(o, "app", json_string(i->service.app));
        r |= set_new(o, "kind", json_string(nap_kind_to_string(i->kind)));
        r |= set_new(o, "number", json_integer(i->number));
        r |= set_new(o, "argv", argv_to_json(m->argv));
        r |= set_new(o, "directory", json_string(m->directory));
        r |= set_new(o, "port", json_integer(m->port));
        r |= set_new(o, "enabled", json_boolean(m->enabled));
        if (m->cluster)
                r |= set_new(o, "cluster", json_true());
        if (m->params)
                r |= set_new(o, "params", params_to_json(m->params));
        if (m->commit)
                r |= set_new(o, "commit", json_string(m->commit));
        if (nap_manifest_has_image(m))
                r |= set_new(o, "image", image_to_json(&m->image));
        if (!nap_compute_is_empty(&m->resources))
                r |= set_new(o, "resources", resources_to_json(&m->resources));
        if (m->reservation)
                r |= set_new(o, "reservation", json_string(m->reservation));
        if (m->health_path)
                r |= set_new(o, "health_path", json_string(m->health_path));
        if (nap_params_size(m->environment) > 0)
                r |= set_new(o, "environment", params_to_json(m->environment));
        if (r != 0)
                return NULL;

        _cleanup_free_ char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return NULL;
        return strdup_printf("%s\n", text);
}

int nap_manifest_apply_profile(NapManifest *m, const NapProfile *p, const NapParams *params, NapError *e) {
        assert(m);
        assert(p);

        const char *path = nap_profile_health_path(p);
        char *copy = path ? strdup(path) : NULL;
        if (path && !copy)
                return nap_error_errno(e, -ENOMEM, "Failed to read the profile's HealthPath=");
        free(m->health_path);
        m->health_path = copy;
        return nap_profile_substitute(p, params, m->port, &m->argv, &m->params, e);
}

#define IMAGE_NAME_MAX 128

static bool is_lower_alnum(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]+ joined by '.', '_', "__" or a run of '-': the path components
 * of the reference grammar podman uses (containers/image, docker
 * distribution). */
static bool image_component_is_valid(const char *s, size_t n) {
        size_t i = 0;
        for (;;) {
                size_t start = i;
                while (i < n && is_lower_alnum(s[i]))
                        i++;
                if (i == start)
                        return false; /* empty, or a separator where a word must be */
                if (i == n)
                        return true;
                if (s[i] == '_' && i + 1 < n && s[i + 1] == '_')
                        i += 2;
                else if (s[i] == '.' || s[i] == '_')
                        i++;
                else if (s[i] == '-')
                        while (i < n && s[i] == '-')
                                i++;
                else
                        return false;
        }
}

static bool image_tag_is_valid(const char *t) {
        if (!(is_lower_alnum(t[0]) || t[0] == '_') || strlen(t) > 128)
                return false;
        for (; *t; t++)
                if (!is_lower_alnum(*t) && !strchr("_.-", *t))
                        return false;
        return true;
}

bool nap_image_name_is_valid(const char *s) {
        assert(s);

        size_t n = strnlen(s, IMAGE_NAME_MAX + 1);
        if (n == 0 || n > IMAGE_NAME_MAX)
                return false;
        const char *colon = strchr(s, ':');
        if (colon && !image_tag_is_valid(colon + 1))
                return false; /* also a second ':', so no registry port */
        const char *end = colon ?: s + n;
        for (const char *c = s;; ) {
                const char *slash = memchr(c, '/', end - c);
                const char *stop = slash ?: end;
                if (!image_component_is_valid(c, stop - c))
                        return false;
                if (!slash)
                        return true;
                c = slash + 1;
        }
}

int nap_manifest_image_tag(const NapInstance *i, const char *commit, char **ret) {
        char name[NAP_SERVICE_NAME_MAX];

        assert(i);
        assert(ret);

        nap_service_name(&i->service, name);
        _cleanup_free_ char *t = commit ? strdup_printf(NAP_IMAGE_REPOSITORY "%s:%.12s", name, commit)
                                        : strdup_printf(NAP_IMAGE_REPOSITORY "%s:instance-%u", name, i->number);
        if (!t)
                return -ENOMEM;
        if (!nap_image_name_is_valid(t))
                return -EINVAL;
        *ret = TAKE_PTR(t);
        return 0;
}

int nap_manifest_set_image(NapManifest *m, const char *context, NapError *e) {
        char name[NAP_SERVICE_NAME_MAX];
        _cleanup_free_ char *tag = NULL, *dir = NULL;

        assert(m);
        assert(context);

        int r = nap_manifest_image_tag(&m->instance, m->commit, &tag);
        if (r == -EINVAL)
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, r,
                                     "%s cannot name a container image (a user or app name ends in '-')",
                                     nap_service_name(&m->instance.service, name));
        if (r < 0)
                return nap_error_errno(e, r, "Cannot name the image");
        if (!path_is_normalized(context))
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EINVAL,
                                     "The build context must be a normalized absolute path");
        if (!(dir = strdup(context)))
                return nap_error_errno(e, -ENOMEM, "Cannot name the image");

        free(m->image.context);
        free(m->image.tag);
        m->image = (NapManifestImage) { .context = TAKE_PTR(dir), .tag = TAKE_PTR(tag) };
        m->argv = strv_free(m->argv); /* the image's own command runs */
        return 0;
}

char *nap_manifest_path(const char *dir, const NapInstance *i) {
        char name[NAP_UNIT_NAME_MAX];

        assert(dir);
        assert(i);

        return strdup_printf("%s/%s" NAP_MANIFEST_SUFFIX, dir, nap_instance_name(i, name));
}

static const char *last_component(const char *path) {
        const char *slash = strrchr(path, '/');
        return slash ? slash + 1 : path;
}

/* The file name is part of the contract: the generator derives unit names
 * from the content, and a manifest copied under another name must not
 * shadow or duplicate another instance. */
static int check_file_name(const char *path, const NapManifest *m, NapError *e) {
        char instance[NAP_UNIT_NAME_MAX], name[NAP_UNIT_NAME_MAX + sizeof NAP_MANIFEST_SUFFIX];
        snprintf(name, sizeof name, "%s%s", nap_instance_name(&m->instance, instance), NAP_MANIFEST_SUFFIX);
        if (!streq(last_component(path), name))
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, -EINVAL,
                                     "%s: file name does not match its content (expected %s)",
                                     path, name);
        return 0;
}

int nap_manifest_load(const char *path, NapManifest **ret, NapError *e) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        assert(path);
        assert(ret);

        r = read_full_file(path, NAP_MANIFEST_MAX_SIZE, &text, &size);
        if (r == -EFBIG)
                return nap_error_set(e, NAP_ERROR_INVALID_MANIFEST, r,
                                     "%s: larger than %d bytes", path, NAP_MANIFEST_MAX_SIZE);
        if (r < 0)
                return nap_error_errno(e, r, "Cannot read %s", path);

        _cleanup_(nap_manifest_freep) NapManifest *m = NULL;
        NapError inner = NAP_ERROR_NULL;
        r = nap_manifest_parse(text, size, &m, &inner);
        if (r < 0)
                return nap_error_set(e, inner.kind, r, "%s: %s", path, inner.message);
        r = check_file_name(path, m, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int nap_manifest_save(const char *dir, const NapManifest *m, NapError *e) {
        assert(dir);
        assert(m);

        _cleanup_free_ char *text = nap_manifest_format(m);
        _cleanup_free_ char *path = nap_manifest_path(dir, &m->instance);
        if (!text || !path)
                return nap_error_errno(e, -ENOMEM, "Cannot format manifest");

        /* Never write what the generator would refuse. */
        _cleanup_(nap_manifest_freep) NapManifest *check = NULL;
        NapError inner = NAP_ERROR_NULL;
        int r = nap_manifest_parse(text, strlen(text), &check, &inner);
        if (r < 0)
                return nap_error_set(e, inner.kind, r, "Refusing to write manifest %s: %s",
                                     path, inner.message);

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return nap_error_errno(e, r, "Cannot create %s", dir);
        r = write_file_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                return nap_error_errno(e, r, "Cannot write %s", path);
        return 0;
}
