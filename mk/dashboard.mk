# mk/dashboard.mk — the /dashboard page's files (server/dashboard/) compiled
# into the daemon as byte arrays (scripts/embed.sh), so it needs no file at
# run time.
DASH_FILES := server/dashboard/index.html server/dashboard/dashboard.js
DASH_GEN   := $(B)/gen/dashboard_html.c $(B)/gen/dashboard_js.c
SERVER_OBJ += $(DASH_GEN:.c=.o)

$(B)/gen/dashboard_html.c: server/dashboard/index.html scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh $< dashboard_html > $@

$(B)/gen/dashboard_js.c: server/dashboard/dashboard.js scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh $< dashboard_js > $@

$(B)/gen/%.o: $(B)/gen/%.c
	$(CC) $(CFLAGS) -c $< -o $@
