// hnswlib_shim.cpp — the benchmark's only C++: a C interface over Debian's
// header-only hnswlib (libhnswlib-dev), so bench_hnsw.c can build and query
// the baseline in the same process and on the same data as our index.
// Built only by `make bench-hnsw`; never part of the library.
#include <hnswlib/hnswlib.h>

#include <cstdint>
#include <queue>

extern "C" {
#include "hnswlib_shim.h"
}

struct hl_index {
    hnswlib::InnerProductSpace space;
    hnswlib::HierarchicalNSW<float> alg;
    hl_index(size_t dim, size_t max_elements, size_t M, size_t efc, size_t seed)
        : space(dim), alg(&space, max_elements, M, efc, seed)
    {
    }
};

extern "C" hl_index *hl_new(size_t dim, size_t max_elements, size_t M, size_t efc, size_t seed)
{
    try {
        return new hl_index(dim, max_elements, M, efc, seed);
    } catch (...) {
        return nullptr;
    }
}

extern "C" void hl_free(hl_index *h)
{
    delete h;
}

extern "C" int hl_add(hl_index *h, const float *v, uint64_t label)
{
    try {
        h->alg.addPoint(v, (hnswlib::labeltype)label);
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" size_t hl_search(hl_index *h, const float *q, size_t k, size_t ef, uint64_t *labels)
{
    h->alg.setEf(ef);
    std::priority_queue<std::pair<float, hnswlib::labeltype>> r = h->alg.searchKnn(q, k);
    size_t n = r.size();
    for (size_t i = n; i-- > 0;) { // the farthest is on top
        labels[i] = r.top().second;
        r.pop();
    }
    return n;
}
