/*
 * A storage plugin written in C against twilio_broker_plugin.h: an in-memory
 * sorted array behind a mutex, with one version counter for the whole store
 * and a change generation that wait_for_change watches. It passes the SDK's
 * storage conformance suite (see tests/e2e/plugins.rs), which shows the
 * header is enough to write a plugin without Rust.
 *
 * Compiled with -DTB_TEST_GARBAGE it becomes the "garbage" test plugin: any
 * call on a key or prefix containing "garbage" answers with nonsense (a null
 * buffer with a length, an unknown status, a version 0, an undecodable list,
 * a non-UTF-8 error) so the broker's defences can be tested.
 *
 * It is a version 1 plugin, compiled against the version 1 header kept in
 * tests/c/v1/ exactly as it shipped: the broker must keep loading such
 * libraries unchanged. Compiled with -DTB_TEST_V2 against the "first version
 * 2" header in tests/c/v2.0/ (today's header without the fields appended
 * since, so its struct_size is smaller), it is a version 2 plugin built
 * against an older version 2 header; with -DTB_TEST_V2 -DTB_TEST_V2_NEWER
 * against today's header, one built against a newer header (a larger
 * struct_size, with a field this broker does not know).
 *
 * Build: cc -std=c11 -shared -fPIC -pthread -I plugins/sdk/tests/c/v1 -o libx.so memory_storage.c
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "twilio_broker_plugin.h"

typedef struct {
  uint8_t *key;
  size_t key_len;
  uint8_t *value;
  size_t value_len;
  uint64_t version;
} entry_t;

typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  entry_t *entries; /* sorted by key bytes */
  size_t len, cap;
  uint64_t last_version; /* one counter: a key never sees a version twice */
  uint64_t generation;   /* bumped on every change */
} store_t;

/* ---- buffers handed to the broker, freed by free_buf ---- */

static TbBuf buf_copy(const void *data, size_t len) {
  TbBuf buf = {NULL, 0};
  buf.ptr = malloc(len ? len : 1);
  if (buf.ptr == NULL) return buf;
  if (len) memcpy(buf.ptr, data, len);
  buf.len = len;
  return buf;
}

static void free_buf(TbBuf buf) { free(buf.ptr); }

static int32_t fail(TbBuf *error_out, int32_t status, const char *message) {
  if (error_out != NULL) *error_out = buf_copy(message, strlen(message));
  return status;
}

/* ---- the sorted array ---- */

static int compare(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
  size_t n = a_len < b_len ? a_len : b_len;
  int c = n ? memcmp(a, b, n) : 0;
  if (c != 0) return c;
  return (a_len > b_len) - (a_len < b_len);
}

/* The index of the first entry >= key; *found tells whether it is equal. */
static size_t find(const store_t *s, TbSlice key, int *found) {
  size_t lo = 0, hi = s->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (compare(s->entries[mid].key, s->entries[mid].key_len, key.ptr, key.len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < s->len &&
           compare(s->entries[lo].key, s->entries[lo].key_len, key.ptr, key.len) == 0;
  return lo;
}

/* Stores value at key with a new version; 0 when out of memory. Lock held. */
static uint64_t write_entry(store_t *s, TbSlice key, TbSlice value) {
  int found;
  size_t at = find(s, key, &found);
  uint8_t *copy = malloc(value.len ? value.len : 1);
  if (copy == NULL) return 0;
  if (value.len) memcpy(copy, value.ptr, value.len);
  if (!found) {
    if (s->len == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 16;
      entry_t *grown = realloc(s->entries, cap * sizeof(entry_t));
      if (grown == NULL) { free(copy); return 0; }
      s->entries = grown;
      s->cap = cap;
    }
    uint8_t *key_copy = malloc(key.len ? key.len : 1);
    if (key_copy == NULL) { free(copy); return 0; }
    if (key.len) memcpy(key_copy, key.ptr, key.len);
    memmove(&s->entries[at + 1], &s->entries[at], (s->len - at) * sizeof(entry_t));
    s->entries[at].key = key_copy;
    s->entries[at].key_len = key.len;
    s->entries[at].value = NULL;
    s->len++;
  }
  free(s->entries[at].value);
  s->entries[at].value = copy;
  s->entries[at].value_len = value.len;
  s->entries[at].version = ++s->last_version;
  s->generation++;
  pthread_cond_broadcast(&s->changed);
  return s->entries[at].version;
}

#ifdef TB_TEST_GARBAGE
static int is_garbage(TbSlice s) {
  static const char word[] = "garbage";
  for (size_t i = 0; s.len >= 7 && i <= s.len - 7; i++)
    if (memcmp(s.ptr + i, word, 7) == 0) return 1;
  return 0;
}
#endif

/* ---- the ABI ---- */

static int32_t init(TbSlice config, void **handle_out, TbBuf *error_out) {
  (void)config; /* no settings */
  store_t *s = calloc(1, sizeof(store_t));
  if (s == NULL) return fail(error_out, TB_STATUS_ERROR, "out of memory");
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->changed, &attr);
  pthread_condattr_destroy(&attr);
  *handle_out = s;
  return TB_STATUS_OK;
}

static int32_t get(void *handle, TbSlice key, TbBuf *value_out, uint64_t *version_out,
                   TbBuf *error_out) {
  store_t *s = handle;
#ifdef TB_TEST_GARBAGE
  if (is_garbage(key)) { value_out->ptr = NULL; value_out->len = 16; return TB_STATUS_OK; }
#endif
  int found, status = TB_STATUS_NOT_FOUND;
  pthread_mutex_lock(&s->lock);
  size_t at = find(s, key, &found);
  if (found) {
    *value_out = buf_copy(s->entries[at].value, s->entries[at].value_len);
    *version_out = s->entries[at].version;
    status = value_out->ptr ? TB_STATUS_OK : fail(error_out, TB_STATUS_ERROR, "out of memory");
  }
  pthread_mutex_unlock(&s->lock);
  return status;
}

static int32_t put(void *handle, TbSlice key, TbSlice value, uint64_t *version_out,
                   TbBuf *error_out) {
  store_t *s = handle;
#ifdef TB_TEST_GARBAGE
  if (is_garbage(key)) { *error_out = buf_copy("\xff\xfe not utf-8", 13); return 42; }
#endif
  pthread_mutex_lock(&s->lock);
  uint64_t version = write_entry(s, key, value);
  pthread_mutex_unlock(&s->lock);
  if (version == 0) return fail(error_out, TB_STATUS_ERROR, "out of memory");
  *version_out = version;
  return TB_STATUS_OK;
}

static int32_t delete_(void *handle, TbSlice key, TbBuf *error_out) {
  store_t *s = handle;
  (void)error_out;
#ifdef TB_TEST_GARBAGE
  if (is_garbage(key)) return TB_STATUS_CONFLICT;
#endif
  int found;
  pthread_mutex_lock(&s->lock);
  size_t at = find(s, key, &found);
  if (found) {
    free(s->entries[at].key);
    free(s->entries[at].value);
    memmove(&s->entries[at], &s->entries[at + 1], (s->len - at - 1) * sizeof(entry_t));
    s->len--;
    s->generation++;
    pthread_cond_broadcast(&s->changed);
  }
  pthread_mutex_unlock(&s->lock);
  return found ? TB_STATUS_OK : TB_STATUS_NOT_FOUND;
}

static void put_le(uint8_t **at, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; i++) *(*at)++ = (uint8_t)(value >> (8 * i));
}

static int starts_with(const entry_t *e, TbSlice prefix) {
  return e->key_len >= prefix.len && (prefix.len == 0 || memcmp(e->key, prefix.ptr, prefix.len) == 0);
}

static int32_t list(void *handle, TbSlice prefix, TbBuf *entries_out, TbBuf *error_out) {
  store_t *s = handle;
#ifdef TB_TEST_GARBAGE
  if (is_garbage(prefix)) { *entries_out = buf_copy("\xff\xff\xff\x7f" "abc", 7); return TB_STATUS_OK; }
#endif
  int found;
  pthread_mutex_lock(&s->lock);
  size_t first = find(s, prefix, &found), end = first, size = 0;
  for (; end < s->len && starts_with(&s->entries[end], prefix); end++)
    size += 4 + s->entries[end].key_len + 8 + 4 + s->entries[end].value_len;
  TbBuf out = {malloc(size ? size : 1), size};
  if (out.ptr == NULL) {
    pthread_mutex_unlock(&s->lock);
    return fail(error_out, TB_STATUS_ERROR, "out of memory");
  }
  uint8_t *at = out.ptr;
  for (size_t i = first; i < end; i++) {
    const entry_t *e = &s->entries[i];
    put_le(&at, e->key_len, 4);
    if (e->key_len) memcpy(at, e->key, e->key_len);
    at += e->key_len;
    put_le(&at, e->version, 8);
    put_le(&at, e->value_len, 4);
    if (e->value_len) memcpy(at, e->value, e->value_len);
    at += e->value_len;
  }
  pthread_mutex_unlock(&s->lock);
  *entries_out = out;
  return TB_STATUS_OK;
}

static int32_t compare_and_swap(void *handle, TbSlice key, uint64_t expected, TbSlice value,
                                uint64_t *version_out, TbBuf *error_out) {
  store_t *s = handle;
#ifdef TB_TEST_GARBAGE
  if (is_garbage(key)) { *version_out = 0; return TB_STATUS_OK; }
#endif
  int found;
  int32_t status = TB_STATUS_OK;
  pthread_mutex_lock(&s->lock);
  size_t at = find(s, key, &found);
  uint64_t current = found ? s->entries[at].version : 0;
  if (current != expected) {
    *version_out = current;
    status = TB_STATUS_CONFLICT;
  } else if ((*version_out = write_entry(s, key, value)) == 0) {
    status = fail(error_out, TB_STATUS_ERROR, "out of memory");
  }
  pthread_mutex_unlock(&s->lock);
  return status;
}

static int32_t wait_for_change(void *handle, uint64_t after, uint32_t timeout_ms,
                               uint64_t *generation_out, TbBuf *error_out) {
  store_t *s = handle;
  (void)error_out;
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
  pthread_mutex_lock(&s->lock);
  while (s->generation == after) {
    if (pthread_cond_timedwait(&s->changed, &s->lock, &deadline) == ETIMEDOUT) break;
  }
  *generation_out = s->generation;
  pthread_mutex_unlock(&s->lock);
  return TB_STATUS_OK;
}

static int32_t close_(void *handle, TbBuf *error_out) {
  store_t *s = handle;
  (void)error_out;
  for (size_t i = 0; i < s->len; i++) { free(s->entries[i].key); free(s->entries[i].value); }
  free(s->entries);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->changed);
  free(s);
  return TB_STATUS_OK;
}

#ifdef TB_TEST_V2
static const TbStorageV2 STORAGE = {
    .struct_size = sizeof(TbStorageV2),
#else
static const TbStorageV1 STORAGE = {
#endif
    .get = get,
    .put = put,
    .delete_ = delete_,
    .list = list,
    .compare_and_swap = compare_and_swap,
    .wait_for_change = wait_for_change,
    .close = close_,
};

#ifdef TB_TEST_GARBAGE
#define NAME "c-garbage"
#elif defined(TB_TEST_V2)
#define NAME "c-memory-v2"
#else
#define NAME "c-memory"
#endif

#define TABLE_FIELDS                                     \
  .kind = TB_KIND_STORAGE,                               \
  .name = {(const uint8_t *)NAME, sizeof(NAME) - 1},     \
  .init = init, .free_buf = free_buf, .audit = NULL,     \
  .storage = &STORAGE

#ifdef TB_TEST_V2
/* With TB_TEST_V2_NEWER the table is laid out as a newer version 2 header
 * would have it: a field appended after the last one this broker knows, and
 * a struct_size that counts it. */
static const struct {
  TbPluginV2 table;
#ifdef TB_TEST_V2_NEWER
  TbHandleFn appended_later;
#endif
} PLUGIN = {
    .table = {
#if defined(TB_TEST_V2_TOO_SMALL)
        .struct_size = sizeof(size_t), /* garbage: less than the first v2 table */
#else
        .struct_size = sizeof(PLUGIN),
#endif
        TABLE_FIELDS,
    },
#ifdef TB_TEST_V2_NEWER
    .appended_later = close_,
#endif
};

uint32_t twilio_broker_plugin_abi_version(void) { return TB_ABI_VERSION; }

const TbPluginV2 *twilio_broker_plugin_v2(void) { return &PLUGIN.table; }
#else
static const TbPluginV1 PLUGIN = {TABLE_FIELDS};

uint32_t twilio_broker_plugin_abi_version(void) { return TB_ABI_VERSION; }

const TbPluginV1 *twilio_broker_plugin_v1(void) { return &PLUGIN; }
#endif
