// go-jsonl: a twilio-broker audit plugin written in Go, through cgo, against
// twilio_broker_plugin.h (plugin ABI version 2). It appends each event the
// broker hands it as one line to a file, synced before the broker answers
// the RPC it audits. Replace record() with your SIEM client.
//
// Build: `make` (go build -buildmode=c-shared, GO111MODULE=off: no module
// downloads); check: `make check` (see README.md).
//
// How the pieces fit: the functions marked //export below are C-callable;
// table.c puts them into the static plugin table and defines the two
// symbols the broker looks up. The rules of the header's preamble apply:
// every buffer handed to the broker is C.malloc'd (free_buf in table.c
// frees it), record may be called from many threads at once, and no Go
// pointer is ever handed to C (the handle is a C allocation used as a key).
package main

/*
#include <stdlib.h>
#include "twilio_broker_plugin.h"
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// sink is what init builds; record is called concurrently, so writes take
// the mutex.
type sink struct {
	mu   sync.Mutex
	file *os.File
}

// sinks maps each handle (a C allocation, so no Go pointer crosses into
// C) to its sink.
var sinks sync.Map

// fail writes message into *errorOut as a C.malloc'd buffer (the broker
// frees it through free_buf) and returns status. Never put a secret in it.
func fail(errorOut *C.TbBuf, status C.int32_t, message string) C.int32_t {
	if errorOut != nil && len(message) > 0 {
		errorOut.ptr = (*C.uint8_t)(C.CBytes([]byte(message)))
		errorOut.len = C.size_t(len(message))
	}
	return status
}

// recovered turns a panic into TB_STATUS_PANICKED: a Go panic must never
// unwind into the broker (it would crash it).
func recovered(errorOut *C.TbBuf, status *C.int32_t) {
	if r := recover(); r != nil {
		*status = fail(errorOut, C.TB_STATUS_PANICKED, fmt.Sprint("panic: ", r))
	}
}

// bytesOf copies a borrowed slice (valid for the call only) into Go memory.
func bytesOf(s C.TbSlice) []byte {
	if s.len == 0 || s.ptr == nil {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(s.ptr), C.int(s.len))
}

func lookup(handle unsafe.Pointer) *sink {
	if s, ok := sinks.Load(uintptr(handle)); ok {
		return s.(*sink)
	}
	return nil
}

// goInit parses the config ({"path": "<file>"}) and opens the file. An
// error stops the broker at start-up with this message.
//
//export goInit
func goInit(config C.TbSlice, handleOut *unsafe.Pointer, errorOut *C.TbBuf) (status C.int32_t) {
	defer recovered(errorOut, &status)
	var cfg struct {
		Path string `json:"path"`
	}
	decoder := json.NewDecoder(bytes.NewReader(bytesOf(config)))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&cfg); err != nil {
		return fail(errorOut, C.TB_STATUS_INVALID, "bad config (known keys: path): "+err.Error())
	}
	if cfg.Path == "" {
		return fail(errorOut, C.TB_STATUS_INVALID, "config.path (the output file) is required")
	}
	file, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fail(errorOut, C.TB_STATUS_INVALID, "cannot open "+err.Error())
	}
	handle := C.malloc(1)
	sinks.Store(uintptr(handle), &sink{file: file})
	*handleOut = handle
	return C.TB_STATUS_OK
}

// goRecord appends one event (a JSON object, borrowed for this call) as one
// line and syncs it. Return promptly: the broker abandons a call after the
// entry's timeout_ms.
//
//export goRecord
func goRecord(handle unsafe.Pointer, event C.TbSlice, errorOut *C.TbBuf) (status C.int32_t) {
	defer recovered(errorOut, &status)
	s := lookup(handle)
	if s == nil {
		return fail(errorOut, C.TB_STATUS_INVALID, "unknown handle")
	}
	// Raw line breaks in JSON are only whitespace: one event, one line.
	line := bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, bytesOf(event))
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.file.Write(line); err != nil {
		return fail(errorOut, C.TB_STATUS_UNAVAILABLE, "cannot write the event: "+err.Error())
	}
	if err := s.file.Sync(); err != nil {
		return fail(errorOut, C.TB_STATUS_UNAVAILABLE, "cannot sync: "+err.Error())
	}
	return C.TB_STATUS_OK
}

// goFlush makes every recorded event durable.
//
//export goFlush
func goFlush(handle unsafe.Pointer, errorOut *C.TbBuf) (status C.int32_t) {
	defer recovered(errorOut, &status)
	s := lookup(handle)
	if s == nil {
		return fail(errorOut, C.TB_STATUS_INVALID, "unknown handle")
	}
	if err := s.file.Sync(); err != nil {
		return fail(errorOut, C.TB_STATUS_UNAVAILABLE, "cannot sync: "+err.Error())
	}
	return C.TB_STATUS_OK
}

// goClose runs once at shutdown, when no other call runs: flush, close,
// forget the handle.
//
//export goClose
func goClose(handle unsafe.Pointer, errorOut *C.TbBuf) (status C.int32_t) {
	defer recovered(errorOut, &status)
	s := lookup(handle)
	if s == nil {
		return fail(errorOut, C.TB_STATUS_INVALID, "unknown handle")
	}
	sinks.Delete(uintptr(handle))
	C.free(handle)
	syncErr := s.file.Sync()
	closeErr := s.file.Close()
	if syncErr != nil || closeErr != nil {
		return fail(errorOut, C.TB_STATUS_UNAVAILABLE, "cannot sync or close the file")
	}
	return C.TB_STATUS_OK
}

// A c-shared library still needs a main package with a main function.
func main() {}
