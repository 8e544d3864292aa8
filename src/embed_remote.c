/*
 * embed_remote.c — placeholder: the "remote" embedding backend is not built yet.
 * llmc_embedder_new() with this backend fails with LLMC_ENOTSUP.
 */
#include "embed_impl.h"

embed_backend *embed_remote_new(const llmc_embed_params *p, int *err)
{
    (void)p;
    if (err)
        *err = LLMC_ENOTSUP;
    return NULL;
}
