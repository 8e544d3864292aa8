/*
 * fuzz_config.c — libFuzzer target: the daemon's configuration file parser
 * (server/config.c, linked in) on arbitrary file contents, through
 * config_load as `llmcached --config FILE` runs it. Every input must end in
 * 0 (run) or -1 (a message on stderr), never a crash.
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char path[256];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/llmc-fuzz-conf-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(d, 1, n, f);
    fclose(f);
    srv_config c;
    config_defaults(&c);
    char *argv[] = {"llmcached", "--config", path, NULL};
    int rc = config_load(&c, 3, argv);
    assert(rc == 0 || rc == -1);
    config_free(&c);
    unlink(path);
    return 0;
}
