// elfutils libdwfl/libdw for offline symbolication, plus the two demanglers
// that live in runtimes we already link (libstdc++, the Swift runtime).
#include <elfutils/libdwfl.h>
#include <elfutils/libdw.h>
#include <dwarf.h>
#include <stddef.h>
#include <stdint.h>

// libstdc++ (Itanium C++ ABI). Returns a malloc'd string or NULL.
char *__cxa_demangle(const char *mangled_name, char *output_buffer,
                     size_t *length, int *status);

// Swift runtime (libswiftCore). Returns a malloc'd string or NULL when
// outputBuffer is NULL.
char *swift_demangle(const char *mangledName, size_t mangledNameLength,
                     char *outputBuffer, size_t *outputBufferSize,
                     uint32_t flags);
