/* sparsec runtime C API: the one boundary that pybind11, the JS glue and the CLI runner wrap.
 * No exceptions cross it; every call returns a status, and sparsec_last_error() says why. */
#ifndef SPARSEC_RT_H
#define SPARSEC_RT_H

#include <stddef.h>
#include <stdint.h>

#include "sparsec_contract.h" /* dtype, storage, feature and target codes (generated from the contract) */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sparsec_status {
  SPARSEC_OK = 0,
  SPARSEC_ERR_IO = 1,               /* file could not be read */
  SPARSEC_ERR_FORMAT = 2,           /* not an artifact, truncated, or an invalid field */
  SPARSEC_ERR_CHECKSUM = 3,         /* content does not match its checksum */
  SPARSEC_ERR_VERSION = 4,          /* artifact format version not supported */
  SPARSEC_ERR_TARGET = 5,           /* artifact built for another target */
  SPARSEC_ERR_INVALID_ARGUMENT = 6, /* bad index, size or input value */
  SPARSEC_ERR_OUT_OF_MEMORY = 7
} sparsec_status;

typedef struct sparsec_session sparsec_session;

typedef struct sparsec_tensor_info {
  const char* name;
  int32_t dtype; /* sparsec_dtype */
  int32_t ndim;
  const int64_t* dims;
  size_t nbytes;
} sparsec_tensor_info;

/* Message of the last failed call on this thread ("" if none). */
const char* sparsec_last_error(void);
/* The target this runtime was built for: "x86_64", "arm64", "wasm32", ... */
const char* sparsec_runtime_target(void);
uint32_t sparsec_format_version(void);

/* Validates the whole artifact, copies it, and allocates the one arena; run() allocates nothing. */
sparsec_status sparsec_load(const void* data, size_t size, sparsec_session** out);
sparsec_status sparsec_load_file(const char* path, sparsec_session** out);
void sparsec_free(sparsec_session* session);

int32_t sparsec_num_inputs(const sparsec_session* session);
int32_t sparsec_num_outputs(const sparsec_session* session);
sparsec_status sparsec_input_info(const sparsec_session* session, int32_t index, sparsec_tensor_info* info);
sparsec_status sparsec_output_info(const sparsec_session* session, int32_t index, sparsec_tensor_info* info);
uint64_t sparsec_arena_bytes(const sparsec_session* session);

/* Checks an artifact as sparsec_load does (every offset, size, plan and op), for any target; allocates no arena.
 * The compiler calls it before writing a file, so it never writes one that a runtime would refuse. */
sparsec_status sparsec_validate(const void* data, size_t size);

/* Thread safety: every call below takes the session's lock, so calls on one session from several threads are
 * serialised. Only sparsec_run_io makes a whole inference (inputs, run, outputs) one call; a sequence of
 * set_input / run / get_output calls from several threads can interleave. */

/* Copies nbytes (must equal the input's size) into the input's buffer. */
sparsec_status sparsec_set_input(sparsec_session* session, int32_t index, const void* data, size_t nbytes);
sparsec_status sparsec_run(sparsec_session* session);
/* One whole inference under the session's lock: inputs[i] holds input_sizes[i] bytes (the input's size);
 * outputs[i] receives output i (output_sizes[i] must equal its size), or, NULL with size 0, is skipped (e.g. a
 * training step's gradients, read with sparsec_get_output only when wanted). */
sparsec_status sparsec_run_io(sparsec_session* session, const void* const* inputs, const size_t* input_sizes,
                              void* const* outputs, const size_t* output_sizes);

/* The mutable param region (trainable parameters, optimizer state): its size, and whole-region copies out of
 * and into the session (to save and restore training state). */
uint64_t sparsec_param_bytes(const sparsec_session* session);
sparsec_status sparsec_read_params(sparsec_session* session, void* data, size_t nbytes);
sparsec_status sparsec_write_params(sparsec_session* session, const void* data, size_t nbytes);
/* Per-op timing of later runs (off by default): seconds of the last run per op, in op order. */
sparsec_status sparsec_set_profiling(sparsec_session* session, int32_t enabled);
int32_t sparsec_num_ops(const sparsec_session* session);
/* Name of op `index` (the ONNX node it came from) and its runtime op kind. */
sparsec_status sparsec_op_info(const sparsec_session* session, int32_t index, const char** name, const char** kind,
                               double* last_run_seconds);

/* Pointer to the output's buffer inside the arena, valid until the next run or free (not thread-safe: use
 * sparsec_run_io when several threads share a session). */
sparsec_status sparsec_get_output(const sparsec_session* session, int32_t index, const void** data, size_t* nbytes);

#ifdef __cplusplus
}
#endif
#endif /* SPARSEC_RT_H */
