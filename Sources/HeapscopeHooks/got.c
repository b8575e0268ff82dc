// GOT patching: point every loaded object's relocation slots for the
// allocation functions at our hooks (native_hooks.c), and back again. One
// mechanism serves `run`, the Tracker API and attach. See DESIGN.md §3.
#define _GNU_SOURCE
#include "internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *hs_malloc(size_t);
void hs_free(void *);
void *hs_calloc(size_t, size_t);
void *hs_realloc(void *, size_t);
int hs_posix_memalign(void **, size_t, size_t);
void *hs_aligned_alloc(size_t, size_t);
void *hs_memalign(size_t, size_t);
void *hs_valloc(size_t);
void *hs_pvalloc(size_t);
void *hs_mmap(void *, size_t, int, int, int, off_t);
int hs_munmap(void *, size_t);
void *hs_dlopen(const char *, int);
void *hs_dlsym(void *, const char *);
void *hs_dlvsym(void *, const char *, const char *);
void hs__exit(int);
int hs_dlclose(void *);
int hs_execv(const char *, char *const[]);
int hs_execve(const char *, char *const[], char *const[]);
int hs_execvp(const char *, char *const[]);
int hs_fexecve(int, char *const[], char *const[]);

typedef struct {
    const char *name;
    void *hook;
} hs_symbol_hook;

static const hs_symbol_hook hs_hooks[] = {
    {"malloc", (void *)hs_malloc},
    {"free", (void *)hs_free},
    {"calloc", (void *)hs_calloc},
    {"realloc", (void *)hs_realloc},
    {"posix_memalign", (void *)hs_posix_memalign},
    {"aligned_alloc", (void *)hs_aligned_alloc},
    {"memalign", (void *)hs_memalign},
    {"valloc", (void *)hs_valloc},
    {"pvalloc", (void *)hs_pvalloc},
    {"mmap", (void *)hs_mmap},
    {"mmap64", (void *)hs_mmap},
    {"munmap", (void *)hs_munmap},
    {"dlopen", (void *)hs_dlopen},
    {"dlsym", (void *)hs_dlsym},
    {"dlvsym", (void *)hs_dlvsym},
    {"_exit", (void *)hs__exit},
    {"dlclose", (void *)hs_dlclose},
    {"execv", (void *)hs_execv},
    {"execve", (void *)hs_execve},
    {"execvp", (void *)hs_execvp},
    {"fexecve", (void *)hs_fexecve},
};
#define HS_HOOK_COUNT (sizeof(hs_hooks) / sizeof(hs_hooks[0]))

typedef struct {
    int install;
    int changed;
    uintptr_t own_base;
} hs_patch_run;

static int hs_skip_object(const struct dl_phdr_info *info, const hs_patch_run *run) {
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (info->dlpi_addr == run->own_base) return 1;   // ourselves
    // ld.so and the vdso run before us or make no heap calls we can see;
    // libc's internal calls do not go through its GOT.
    return strstr(name, "linux-vdso") || strstr(name, "ld-linux") || strstr(name, "/libc.so");
}

// Values in the dynamic section are usually relocated by ld.so; where they
// are not (a read-only dynamic section), they are offsets from the base.
static uintptr_t hs_dyn_ptr(uintptr_t value, uintptr_t base) {
    return value < base ? value + base : value;
}

static void hs_write_slot(void **slot, void *value, uintptr_t relro_start, uintptr_t relro_end) {
    if (*slot == value) return;
    uintptr_t page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t page = (uintptr_t)slot & ~(page_size - 1);
    int in_relro = (uintptr_t)slot >= relro_start && (uintptr_t)slot < relro_end;
    if (in_relro && mprotect((void *)page, page_size, PROT_READ | PROT_WRITE) != 0) return;
    *slot = value;
    if (in_relro) mprotect((void *)page, page_size, PROT_READ);
}

// What each patched slot held before, to put back as it was. Looking the
// function up again (dlsym) is wrong in a non-PIE executable that takes a
// function's address (Debian's python3): dlsym gives the executable's own PLT
// entry, its canonical address, and that entry would then jump to itself.
// An open-addressing table keyed by slot address, in mmap'ed memory, used
// under hs_patch_mutex only.
typedef struct {
    void **slot;
    void *original;
} hs_saved_slot;

static hs_saved_slot *hs_saved;
static size_t hs_saved_capacity, hs_saved_count;

static hs_saved_slot *hs_saved_find(void **slot) {
    size_t mask = hs_saved_capacity - 1;
    for (size_t i = ((uintptr_t)slot >> 3) & mask;; i = (i + 1) & mask)
        if (hs_saved[i].slot == slot || hs_saved[i].slot == NULL) return &hs_saved[i];
}

static int hs_save_slot(void **slot, void *original) {
    if ((hs_saved_count + 1) * 2 > hs_saved_capacity) {
        size_t old_capacity = hs_saved_capacity, capacity = old_capacity ? old_capacity * 2 : 1024;
        hs_saved_slot *old = hs_saved;
        void *table = mmap(NULL, capacity * sizeof *old, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (table == MAP_FAILED) return -1;
        hs_saved = table;
        hs_saved_capacity = capacity;
        for (size_t i = 0; i < old_capacity; i++)
            if (old[i].slot) *hs_saved_find(old[i].slot) = old[i];
        if (old) munmap(old, old_capacity * sizeof *old);
    }
    hs_saved_slot *entry = hs_saved_find(slot);
    if (!entry->slot) {
        entry->slot = slot;
        hs_saved_count++;
    }
    entry->original = original;
    return 0;
}

static void hs_patch_relocations(const ElfW(Rela) * rela, size_t count, uintptr_t base, const ElfW(Sym) * symtab,
                                 const char *strtab, hs_patch_run *run, uintptr_t relro_start, uintptr_t relro_end) {
    for (size_t i = 0; i < count; i++) {
        unsigned long type = ELF64_R_TYPE(rela[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
        const char *name = strtab + symtab[ELF64_R_SYM(rela[i].r_info)].st_name;
        for (size_t h = 0; h < HS_HOOK_COUNT; h++) {
            if (strcmp(name, hs_hooks[h].name) != 0) continue;
            void **slot = (void **)(base + rela[i].r_offset);
            if (run->install) {
                // A slot we could not restore later is left alone.
                if (*slot != hs_hooks[h].hook && hs_save_slot(slot, *slot) == 0) {
                    hs_write_slot(slot, hs_hooks[h].hook, relro_start, relro_end);
                    run->changed++;
                }
            } else if (*slot == hs_hooks[h].hook) {
                // Our hooks are hidden, so only our patching puts one in a slot:
                // the slot is in the table. A lazy-binding stub put back binds
                // again on the next call.
                hs_write_slot(slot, hs_saved_find(slot)->original, relro_start, relro_end);
                run->changed++;
            }
            break;
        }
    }
}

static int hs_patch_object(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    hs_patch_run *run = data;
    if (hs_skip_object(info, run)) return 0;
    uintptr_t base = info->dlpi_addr;
    const ElfW(Dyn) *dynamic = NULL;
    uintptr_t relro_start = 0, relro_end = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC) dynamic = (const ElfW(Dyn) *)(base + ph->p_vaddr);
        if (ph->p_type == PT_GNU_RELRO) {
            relro_start = base + ph->p_vaddr;
            relro_end = relro_start + ph->p_memsz;
        }
    }
    if (!dynamic) return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t jmprel_size = 0, rela_size = 0;
    for (const ElfW(Dyn) *d = dynamic; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)hs_dyn_ptr(d->d_un.d_ptr, base); break;
        case DT_STRTAB: strtab = (const char *)hs_dyn_ptr(d->d_un.d_ptr, base); break;
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)hs_dyn_ptr(d->d_un.d_ptr, base); break;
        case DT_PLTRELSZ: jmprel_size = d->d_un.d_val; break;
        case DT_RELA: rela = (const ElfW(Rela) *)hs_dyn_ptr(d->d_un.d_ptr, base); break;
        case DT_RELASZ: rela_size = d->d_un.d_val; break;
        }
    }
    if (!symtab || !strtab) return 0;
    if (jmprel)
        hs_patch_relocations(jmprel, jmprel_size / sizeof(ElfW(Rela)), base, symtab, strtab, run, relro_start,
                             relro_end);
    if (rela)
        hs_patch_relocations(rela, rela_size / sizeof(ElfW(Rela)), base, symtab, strtab, run, relro_start, relro_end);
    return 0;
}

// Two threads calling dlopen at once must not interleave their mprotect calls.
static pthread_mutex_t hs_patch_mutex = PTHREAD_MUTEX_INITIALIZER;

int hs_patch_got(int install) {
    pthread_mutex_lock(&hs_patch_mutex);
    Dl_info self;
    hs_patch_run run = {install, 0, 0};
    if (dladdr((void *)hs_patch_got, &self)) {
        struct link_map *map = NULL;
        // dli_fbase is the ELF header; the link-time base is what dl_iterate_phdr reports.
        void *handle = dlopen(self.dli_fname, RTLD_NOLOAD | RTLD_LAZY);
        if (handle && dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map) run.own_base = map->l_addr;
        if (handle) dlclose(handle);
    }
    dl_iterate_phdr(hs_patch_object, &run);
    pthread_mutex_unlock(&hs_patch_mutex);
    return run.changed;
}
