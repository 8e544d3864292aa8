# mk/fleet.mk — a fleet of llmcached instances sharing one cache on Redis.
# Only what uses Redis links hiredis (src/redis.c is in libllmcache, but a
# static archive pulls redis.o only into programs that call it).
$(B)/tests/test_redis $(B)/tests/test_redis_store: LDLIBS += -lhiredis
$(DAEMON): LDLIBS += -lhiredis
