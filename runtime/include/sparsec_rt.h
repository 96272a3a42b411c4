/* sparsec runtime C API: the one boundary that pybind11, the JS glue and the CLI runner wrap.
 * No exceptions cross it; every call returns a status, and sparsec_last_error() says why. */
#ifndef SPARSEC_RT_H
#define SPARSEC_RT_H

#include <stddef.h>
#include <stdint.h>

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

typedef enum sparsec_dtype {
  SPARSEC_F32 = 1,
  SPARSEC_I64 = 2,
  SPARSEC_I32 = 3,
  SPARSEC_U8 = 4,
  SPARSEC_I8 = 5
} sparsec_dtype;

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

/* Copies nbytes (must equal the input's size) into the input's buffer. */
sparsec_status sparsec_set_input(sparsec_session* session, int32_t index, const void* data, size_t nbytes);
sparsec_status sparsec_run(sparsec_session* session);
/* Per-op timing of later runs (off by default): seconds of the last run per op, in op order. */
sparsec_status sparsec_set_profiling(sparsec_session* session, int32_t enabled);
int32_t sparsec_num_ops(const sparsec_session* session);
/* Name of op `index` (the ONNX node it came from) and its runtime op kind. */
sparsec_status sparsec_op_info(const sparsec_session* session, int32_t index, const char** name, const char** kind,
                               double* last_run_seconds);

/* Pointer to the output's buffer inside the arena, valid until the next run or free. */
sparsec_status sparsec_get_output(const sparsec_session* session, int32_t index, const void** data, size_t* nbytes);

#ifdef __cplusplus
}
#endif
#endif /* SPARSEC_RT_H */
