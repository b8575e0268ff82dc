// Version layer for CPython 3.12 and 3.13 on x86-64: the current thread state
// in one load. These versions keep it in a thread-local variable,
// _Py_tss_tstate, that libpython does not export, so _PyThreadState_GET is a
// call into libpython and its __tls_get_addr on every allocation the walk
// records. Where that variable sits in the static TLS block (libpython loaded
// with the program, as `python` does), its offset from the thread pointer is
// the same in every thread: found once, from the symbol table of the object
// that defines it, it is read with one %fs-relative load (cpython.h).
#include "cpython.h"
#if HS_TSTATE_FROM_TLS
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

long hs_tstate_tls_offset;

static char *hs_thread_pointer(void) {
    char *tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));   // glibc's TCB starts with a pointer to itself
    return tp;
}

// st_value of the TLS symbol `name` in the ELF image `base` (its offset in the
// object's TLS block), or -1. Every offset is checked against `size`.
static long hs_find_tls_symbol(const unsigned char *base, size_t size, const char *name) {
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    if (size < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > size ||
        (size - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum)
        return -1;
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(base + eh->e_shoff);
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        const Elf64_Shdr *symtab = &sections[i];
        if (symtab->sh_type != SHT_SYMTAB || symtab->sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr *strtab = &sections[symtab->sh_link];
        if (symtab->sh_offset > size || symtab->sh_size > size - symtab->sh_offset ||
            strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset)
            continue;
        const Elf64_Sym *syms = (const Elf64_Sym *)(base + symtab->sh_offset);
        const char *strings = (const char *)(base + strtab->sh_offset);
        size_t name_len = strlen(name);
        for (size_t s = 0; s < symtab->sh_size / sizeof(Elf64_Sym); s++) {
            if (ELF64_ST_TYPE(syms[s].st_info) != STT_TLS || syms[s].st_name >= strtab->sh_size ||
                strtab->sh_size - syms[s].st_name <= name_len)
                continue;
            if (memcmp(strings + syms[s].st_name, name, name_len + 1) == 0) return (long)syms[s].st_value;
        }
    }
    return -1;
}

static long hs_tls_symbol_in_file(const char *path, const char *name) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    long found = -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        // Our mmap is libc's (this object's GOT is never patched): not recorded.
        void *image = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (image != MAP_FAILED) {
            found = hs_find_tls_symbol(image, (size_t)st.st_size, name);
            munmap(image, (size_t)st.st_size);
        }
    }
    close(fd);
    return found;
}

// The loaded object that holds `address`: its file and this thread's TLS block.
typedef struct {
    uintptr_t address;
    const char *path;
    char *tls_data;
} hs_owner_search;

static int hs_find_owner(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    hs_owner_search *search = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && search->address >= start && search->address - start < ph->p_memsz) {
            search->path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
            search->tls_data = info->dlpi_tls_data;
            return 1;
        }
    }
    return 0;
}

void hs_tstate_locate(void) {
    static int located;
    if (located) return;
    located = 1;
    hs_owner_search search = {.address = (uintptr_t)&_PyThreadState_GetCurrent};
    if (!dl_iterate_phdr(hs_find_owner, &search) || !search.tls_data) return;
    long symbol = hs_tls_symbol_in_file(search.path, "_Py_tss_tstate");
    if (symbol < 0) return;   // a stripped libpython: _PyThreadState_GET it is
    char *tp = hs_thread_pointer();
    long offset = (long)(search.tls_data + symbol - tp);
    // Static TLS lies just below the thread pointer, in the same mapping as
    // the thread's stack; a block of dynamic TLS (libpython dlopen'ed late)
    // is heap memory, never there, and its offset differs between threads.
    if (offset >= 0 || offset < -(64 << 10)) return;
    PyThreadState *const *slot = (PyThreadState *const *)(tp + offset);
    PyThreadState *current = _PyThreadState_GetCurrent();
    if (current && *slot == current) __atomic_store_n(&hs_tstate_tls_offset, offset, __ATOMIC_RELAXED);
}
#endif
