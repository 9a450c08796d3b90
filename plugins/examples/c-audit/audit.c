/*
 * c-jsonl: a twilio-broker audit plugin written in C against
 * twilio_broker_plugin.h (ABI version 2). It appends each event the broker
 * hands it as one line to a file, synced before the broker answers the RPC
 * it audits. Replace record() with your SIEM client; keep the rules of the
 * header's preamble (ownership, threads, time-outs).
 *
 * Configuration (the `config` table of the broker's [[plugins]] entry):
 *   [[plugins]]
 *   kind = "audit"
 *   path = "/usr/lib/twilio-broker/libc_jsonl.so"
 *   config = { path = "/var/log/twilio-broker/c-jsonl.jsonl" }
 *
 * Build and check: `make && make check` (see README.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "twilio_broker_plugin.h"

#define PLUGIN_NAME "c-jsonl"
#define PLUGIN_VERSION "0.1.0"

/* The handle: what init builds and every later call receives. record() is
 * called from many broker threads at once, so writes go under a mutex. */
typedef struct {
  int fd;
  pthread_mutex_t lock;
} sink_t;

/* Every buffer this plugin hands the broker (only error messages here) is
 * malloc'd; the broker copies it and gives it back through free_buf. */
static void free_buf(TbBuf buf) { free(buf.ptr); }

/* Writes `message` into *error_out (a malloc'd copy) and returns `status`.
 * Messages must never hold a secret (the broker sends none). */
static int32_t fail(TbBuf *error_out, int32_t status, const char *message) {
  size_t len = strlen(message);
  uint8_t *copy = malloc(len + 1);
  if (copy != NULL && error_out != NULL) {
    memcpy(copy, message, len);
    error_out->ptr = copy;
    error_out->len = len;
  } else {
    free(copy);
  }
  return status;
}

/* ---- the configuration: {"path": "<file>"} ----
 * The broker passes the config table as compact JSON (not NUL-terminated).
 * This tiny reader accepts exactly that shape; a real plugin may prefer a
 * JSON library (cJSON, jansson). */

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* A JSON string without escapes at p: sets *out and *out_len and returns
 * the position after its closing quote, or NULL. */
static const uint8_t *plain_string(const uint8_t *p, const uint8_t *end, const uint8_t **out,
                                   size_t *out_len) {
  if (p >= end || *p != '"') return NULL;
  const uint8_t *start = ++p;
  while (p < end && *p != '"') {
    if (*p == '\\' || *p < 0x20) return NULL;
    p++;
  }
  if (p >= end) return NULL;
  *out = start;
  *out_len = (size_t)(p - start);
  return p + 1;
}

/* Reads config.path into a malloc'd string at *path_out. */
static int32_t parse_config(TbSlice config, char **path_out, TbBuf *error_out) {
  if (config.ptr == NULL) return fail(error_out, TB_STATUS_INVALID, "config must be a table");
  const uint8_t *p = config.ptr, *end = config.ptr + config.len;
  const uint8_t *path = NULL;
  size_t path_len = 0;
  p = skip_ws(p, end);
  if (p >= end || *p != '{') return fail(error_out, TB_STATUS_INVALID, "config must be a table");
  p = skip_ws(p + 1, end);
  if (p < end && *p == '}') p = NULL; /* an empty table */
  while (p != NULL) {
    const uint8_t *key;
    size_t key_len;
    p = plain_string(p, end, &key, &key_len);
    if (p == NULL) return fail(error_out, TB_STATUS_INVALID, "config keys must be plain strings");
    if (key_len != 4 || memcmp(key, "path", 4) != 0) {
      char message[160];
      snprintf(message, sizeof message, "unknown config key \"%.*s\" (known: path)",
               key_len > 64 ? 64 : (int)key_len, (const char *)key);
      return fail(error_out, TB_STATUS_INVALID, message);
    }
    p = skip_ws(p, end);
    if (p >= end || *p != ':') return fail(error_out, TB_STATUS_INVALID, "config is not JSON");
    p = plain_string(skip_ws(p + 1, end), end, &path, &path_len);
    if (p == NULL) {
      return fail(error_out, TB_STATUS_INVALID, "config.path must be a string without escapes");
    }
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
    } else if (p < end && *p == '}') {
      p = NULL;
    } else {
      return fail(error_out, TB_STATUS_INVALID, "config is not JSON");
    }
  }
  if (path == NULL || path_len == 0) {
    return fail(error_out, TB_STATUS_INVALID, "config.path (the output file) is required");
  }
  *path_out = strndup((const char *)path, path_len);
  if (*path_out == NULL) return fail(error_out, TB_STATUS_ERROR, "out of memory");
  return TB_STATUS_OK;
}

/* ---- the calls ---- */

/* Called once, before any other call. Check everything here: an error stops
 * the broker at start-up with this message. */
static int32_t init(TbSlice config, void **handle_out, TbBuf *error_out) {
  char *path = NULL;
  int32_t status = parse_config(config, &path, error_out);
  if (status != TB_STATUS_OK) return status;
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    char message[600];
    snprintf(message, sizeof message, "cannot open %.400s: %s", path, strerror(errno));
    free(path);
    return fail(error_out, TB_STATUS_INVALID, message);
  }
  free(path);
  sink_t *sink = calloc(1, sizeof *sink);
  if (sink == NULL) {
    close(fd);
    return fail(error_out, TB_STATUS_ERROR, "out of memory");
  }
  sink->fd = fd;
  pthread_mutex_init(&sink->lock, NULL);
  *handle_out = sink;
  return TB_STATUS_OK;
}

/* Writes all of buf, retrying short writes and EINTR. */
static int write_all(int fd, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* One event: a UTF-8 JSON object, borrowed for this call only. On
 * TB_STATUS_OK it must be durable. Called concurrently; return promptly
 * (the broker abandons a call after the entry's timeout_ms). */
static int32_t record(void *handle, TbSlice event_json, TbBuf *error_out) {
  sink_t *sink = handle;
  if (sink == NULL || (event_json.ptr == NULL && event_json.len > 0)) {
    return fail(error_out, TB_STATUS_INVALID, "a null handle or event");
  }
  /* One event per line: raw line breaks in JSON are only whitespace. */
  uint8_t *line = malloc(event_json.len + 1);
  if (line == NULL) return fail(error_out, TB_STATUS_ERROR, "out of memory");
  if (event_json.len > 0) memcpy(line, event_json.ptr, event_json.len);
  for (size_t i = 0; i < event_json.len; i++) {
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  }
  line[event_json.len] = '\n';
  pthread_mutex_lock(&sink->lock);
  int failed = write_all(sink->fd, line, event_json.len + 1) != 0 || fdatasync(sink->fd) != 0;
  int err = errno;
  pthread_mutex_unlock(&sink->lock);
  free(line);
  if (failed) {
    char message[96];
    snprintf(message, sizeof message, "cannot write the event (errno %d)", err);
    return fail(error_out, TB_STATUS_UNAVAILABLE, message);
  }
  return TB_STATUS_OK;
}

/* Makes every recorded event durable. */
static int32_t flush(void *handle, TbBuf *error_out) {
  sink_t *sink = handle;
  if (sink == NULL) return fail(error_out, TB_STATUS_INVALID, "a null handle");
  if (fdatasync(sink->fd) != 0) return fail(error_out, TB_STATUS_UNAVAILABLE, "cannot sync");
  return TB_STATUS_OK;
}

/* Called once at shutdown, when no other call runs; frees the handle. */
static int32_t sink_close(void *handle, TbBuf *error_out) {
  sink_t *sink = handle;
  if (sink == NULL) return fail(error_out, TB_STATUS_INVALID, "a null handle");
  int failed = fdatasync(sink->fd) != 0;
  close(sink->fd);
  pthread_mutex_destroy(&sink->lock);
  free(sink);
  return failed ? fail(error_out, TB_STATUS_UNAVAILABLE, "cannot sync") : TB_STATUS_OK;
}

/* ---- the tables and the two exported symbols ---- */

static const TbAuditV2 AUDIT = {
    .struct_size = sizeof(TbAuditV2),
    .record = record,
    .flush = flush,
    .close = sink_close,
};

static const TbPluginV2 PLUGIN = {
    .struct_size = sizeof(TbPluginV2),
    .kind = TB_KIND_AUDIT,
    .name = {(const uint8_t *)PLUGIN_NAME, sizeof(PLUGIN_NAME) - 1},
    .init = init,
    .free_buf = free_buf,
    .audit = &AUDIT,
    .storage = NULL,
    .version = {(const uint8_t *)PLUGIN_VERSION, sizeof(PLUGIN_VERSION) - 1},
};

uint32_t twilio_broker_plugin_abi_version(void) { return TB_ABI_VERSION; }

const TbPluginV2 *twilio_broker_plugin_v2(void) { return &PLUGIN; }
