/*
 * notify.c — tell systemd how the daemon is doing (Type=notify).
 *
 * A service manager that started us with NOTIFY_SOCKET set learns READY=1
 * once every loop listens (so `systemctl start` returns when requests can
 * be served, and units ordered After= us start then), and STOPPING=1 when a
 * SIGTERM/SIGINT begins the drain. libsystemd's sd_notify does the talking;
 * without NOTIFY_SOCKET (systemd absent, a plain shell, a container) it does
 * nothing, so the daemon runs the same everywhere. Called from the main
 * thread only; failures are logged at debug level and never stop the
 * daemon: a missing notification is the manager's timeout, not ours.
 */
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "server.h"

static void notify_send(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        srv_log(LOG_DEBUG, "sd_notify(%s) failed: %d", state, rc);
}

void notify_ready(int port)
{
    char st[96];
    snprintf(st, sizeof st, "READY=1\nSTATUS=listening on port %d", port);
    notify_send(st);
}

void notify_stopping(void)
{
    notify_send("STOPPING=1");
}
