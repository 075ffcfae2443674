/* CURVE identities from the files `slipway keys new` writes (ZPL certificates). */
#include "internal.h"
#include <stdio.h>
#include <string.h>

/* The 40-character Z85 value of `name = "…"` in `path`, outside the signing
 * section (whose keys are named ed25519-…, so a plain match never takes them). */
static int read_key(const char *path, const char *name, char out[41], slipway_error *error) {
    FILE *file = fopen(path, "r");
    if (!file) return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "%s: cannot read it", path);
    char line[512];
    int found = 0;
    size_t name_length = strlen(name);
    while (!found && fgets(line, sizeof line, file)) {
        const char *text = line;
        while (*text == ' ' || *text == '\t') text++;
        if (strncmp(text, name, name_length) != 0) continue;
        text += name_length;
        while (*text == ' ') text++;
        if (*text++ != '=') continue;
        while (*text == ' ') text++;
        if (*text++ != '"') continue;
        const char *end = strchr(text, '"');
        if (!end || end - text != 40) break;
        memcpy(out, text, 40);
        out[40] = '\0';
        found = 1;
    }
    fclose(file);
    if (!found) return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "%s: no %s of 40 Z85 characters", path, name);
    return SLIPWAY_OK;
}

int slipway_load_keys(const char *secret_file, const char *coordinator_cert, slipway_keys *keys, slipway_error *error) {
    if (!secret_file || !coordinator_cert || !keys) return slipway_fail(error, SLIPWAY_BAD_ARGUMENT, 0, "a key file is missing");
    int code;
    if ((code = read_key(secret_file, "public-key", keys->public_key, error))) return code;
    if ((code = read_key(secret_file, "secret-key", keys->secret_key, error))) return code;
    if ((code = read_key(coordinator_cert, "public-key", keys->server_key, error))) return code;
    return SLIPWAY_OK;
}
