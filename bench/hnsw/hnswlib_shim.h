/* hnswlib_shim.h — C view of the hnswlib baseline (bench/hnsw only). */
#ifndef HNSWLIB_SHIM_H
#define HNSWLIB_SHIM_H
#include <stddef.h>
#include <stdint.h>

typedef struct hl_index hl_index;
/* An inner-product index (distance 1 - <a,b>) of dim floats. NULL on failure. */
hl_index *hl_new(size_t dim, size_t max_elements, size_t M, size_t efc, size_t seed);
void hl_free(hl_index *h);
int hl_add(hl_index *h, const float *v, uint64_t label);
/* k nearest at candidate list size ef, best first; returns how many. */
size_t hl_search(hl_index *h, const float *q, size_t k, size_t ef, uint64_t *labels);
#endif
