# mk/hnsw.mk — the vector index's benchmark (bench/hnsw), included by the
# Makefile. `make bench-hnsw N=100000` builds and runs it; N (default 100000)
# is the number of base vectors, NQ (default 1000) the number of queries.
# Our index (src/hnsw.c, src/vec.c) and hnswlib (header-only C++ through
# bench/hnsw/hnswlib_shim.cpp) are both compiled here with -O3 -march=native,
# so the comparison is like for like; the library itself is built without
# -march (its kernels dispatch at run time). Needs libhnswlib-dev
# (already in scripts/deps.d/bench.list). Not part of `make all`.

HNSW_BD     := $(B)/bench/hnsw
HNSW_BENCH  := $(HNSW_BD)/bench_hnsw
HNSW_BFLAGS := $(CSTD) $(WARN) -O3 -march=native -g -Iinclude -Isrc -Ibench/hnsw -pthread
HNSW_BOBJ   := $(HNSW_BD)/bench_hnsw.o $(HNSW_BD)/hnsw.o $(HNSW_BD)/vec.o $(HNSW_BD)/error.o \
               $(HNSW_BD)/hnswlib_shim.o

BENCHES += bench-hnsw
.PHONY: bench-hnsw

$(HNSW_BD)/bench_hnsw.o: bench/hnsw/bench_hnsw.c bench/hnsw/hnswlib_shim.h include/llmcache.h
	@mkdir -p $(dir $@)
	$(CC) $(HNSW_BFLAGS) -c $< -o $@

$(HNSW_BD)/hnsw.o: src/hnsw.c src/vec.h include/llmcache.h
	@mkdir -p $(dir $@)
	$(CC) $(HNSW_BFLAGS) -c $< -o $@

$(HNSW_BD)/vec.o: src/vec.c src/vec.h
	@mkdir -p $(dir $@)
	$(CC) $(HNSW_BFLAGS) -c $< -o $@

$(HNSW_BD)/error.o: src/error.c include/llmcache.h
	@mkdir -p $(dir $@)
	$(CC) $(HNSW_BFLAGS) -c $< -o $@

$(HNSW_BD)/hnswlib_shim.o: bench/hnsw/hnswlib_shim.cpp bench/hnsw/hnswlib_shim.h
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O3 -march=native -g -DNDEBUG -Ibench/hnsw -w -c $< -o $@

$(HNSW_BENCH): $(HNSW_BOBJ)
	$(CXX) $(LDFLAGS) -o $@ $^ -lxxhash -lopenblas -lm

bench-hnsw: $(HNSW_BENCH)
	$(HNSW_BENCH) $(or $(N),100000) $(or $(NQ),1000)
