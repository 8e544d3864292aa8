/*
 * embed_spmlib.cc — embed_spmlib.h over Debian's libsentencepiece.
 *
 * The only C++ in the library: every call is wrapped so that no exception
 * crosses into C (bad_alloc becomes LLMC_ENOMEM, anything else LLMC_EINVAL).
 * The processor applies the model's own normaliser spec (the precompiled
 * NFKC charsmap, dummy prefix, whitespace collapsing) and Unigram Viterbi,
 * so this path is the reference the tokenizer.json reader (embed_unigram.c)
 * is tested against.
 */
#include "embed_spmlib.h"

#include <new>
#include <string>
#include <vector>

#include <sentencepiece_processor.h>
#include <sys/stat.h>
#include <unistd.h>

extern "C" {
#include "llmcache.h"
}

struct embed_spmlib {
    sentencepiece::SentencePieceProcessor sp;
    std::vector<int> buf;
    size_t max_piece = 0;
};

/* Contract: see embed_spmlib.h. */
embed_spmlib *embed_spmlib_load(const char *path, int *err)
{
    int rc = 0;
    embed_spmlib *s = nullptr;
    try {
        struct stat sb;
        if (!path || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || access(path, R_OK) != 0) {
            rc = LLMC_EIO;
        } else {
            s = new embed_spmlib;
            if (!s->sp.Load(path).ok()) {
                rc = LLMC_ECORRUPT;
            } else if (s->sp.GetPieceSize() <= 0 || s->sp.unk_id() < 0) {
                rc = LLMC_ECORRUPT;
            } else {
                for (int i = 0; i < s->sp.GetPieceSize(); i++)
                    if (s->sp.IdToPiece(i).size() > s->max_piece)
                        s->max_piece = s->sp.IdToPiece(i).size();
            }
        }
    } catch (const std::bad_alloc &) {
        rc = LLMC_ENOMEM;
    } catch (...) {
        rc = LLMC_ECORRUPT;
    }
    if (rc) {
        delete s;
        if (err)
            *err = rc;
        return nullptr;
    }
    return s;
}

void embed_spmlib_free(embed_spmlib *s)
{
    delete s;
}

size_t embed_spmlib_size(const embed_spmlib *s)
{
    return (size_t)s->sp.GetPieceSize();
}

int32_t embed_spmlib_unk(const embed_spmlib *s)
{
    return s->sp.unk_id();
}

size_t embed_spmlib_max_piece(const embed_spmlib *s)
{
    return s->max_piece;
}

/* Contract: see embed_spmlib.h. */
int embed_spmlib_encode(embed_spmlib *s, const char *text, size_t len, int32_t *ids, size_t cap,
                        size_t *n_out)
{
    try {
        s->buf.clear();
        if (!s->sp.Encode(absl::string_view(text, len), &s->buf).ok())
            return LLMC_EINVAL;
        size_t n = s->buf.size();
        for (size_t i = 0; i < n && i < cap; i++)
            ids[i] = s->buf[i];
        *n_out = n;
        return 0;
    } catch (const std::bad_alloc &) {
        return LLMC_ENOMEM;
    } catch (...) {
        return LLMC_EINVAL;
    }
}
