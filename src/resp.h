/*
 * resp.h — internal: what resp.c shares with policy.c's look at a raw body.
 */
#ifndef RESP_H
#define RESP_H

#include <jansson.h>

#include "words.h"

/* Message content, as a string or an array of parts ({type, text}, or
 * strings): feeds every text to f (code fences) and returns 1 when a part
 * is a tool use (tool_use, function_call, server_tool_use), else 0. */
int resp_content_scan(json_t *c, words_fence *f);

#endif
