# mk/faults.mk — the fault-injection test (tests/unit/test_faults.c) links
# with the allocator wrapped, so that its Nth allocation can fail.
FAULT_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup
$(B)/tests/test_faults: $(B)/tests/unit/test_faults.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(FAULT_WRAP) -o $@ $< $(LIB) $(LDLIBS)
