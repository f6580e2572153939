/* libffi, from Debian's libffi-dev, for declarative plugins. */
#include <ffi.h>

/* The built-in type descriptors, as functions (they are mutable globals in C). */
static inline ffi_type *swarm_ffi_double(void) { return &ffi_type_double; }
static inline ffi_type *swarm_ffi_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *swarm_ffi_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *swarm_ffi_pointer(void) { return &ffi_type_pointer; }
