# mk/notify.mk — server/notify.c talks to systemd (sd_notify, Type=notify)
# through libsystemd; without NOTIFY_SOCKET it does nothing.
LDLIBS += -lsystemd
