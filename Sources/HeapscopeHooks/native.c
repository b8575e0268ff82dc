// Native stacks (libunwind) and the list of loaded objects, for --native.
// Symbols are never looked up here: a report resolves return addresses
// offline, from the objects and build ids recorded with hs_mappings_collect.
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include "internal.h"

#include <elf.h>
#include <libunwind.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Our own code's address range: the first frames of every backtrace are the
// hook's, and belong to no one's report.
static uintptr_t hs_own_start, hs_own_end;

static int hs_find_own(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    uintptr_t probe = (uintptr_t)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        if (probe >= start && probe < end) {
            hs_own_start = start;
            hs_own_end = end;
            return 1;
        }
    }
    return 0;
}

void hs_walk_native_stack(hs_thread *t) {
    if (!hs_own_end) dl_iterate_phdr(hs_find_own, (void *)(uintptr_t)hs_walk_native_stack);
    void *ips[HS_MAX_NATIVE_FRAMES];
    int n = unw_backtrace(ips, HS_MAX_NATIVE_FRAMES);
    int first = 0;
    while (first < n && (uintptr_t)ips[first] >= hs_own_start && (uintptr_t)ips[first] < hs_own_end) first++;
    uint32_t depth = 0;
    for (int i = first; i < n; i++) t->native_ip[depth++] = (uintptr_t)ips[i];
    t->native_depth = depth;
}

// ---- Loaded objects ---------------------------------------------------------------

typedef struct {
    hs_mapping *items;
    int count, capacity;
} hs_mapping_list;

static void hs_read_build_id(const struct dl_phdr_info *info, hs_mapping *m) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *note = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof(ElfW(Nhdr));
            const uint8_t *desc = (const uint8_t *)(name + ((note->n_namesz + 3) & ~3u));
            if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                note->n_descsz <= sizeof m->build_id) {
                memcpy(m->build_id, desc, note->n_descsz);
                m->build_id_len = note->n_descsz;
                return;
            }
            p = (const char *)desc + ((note->n_descsz + 3) & ~3u);
        }
    }
}

static int hs_collect_one(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    hs_mapping_list *list = data;
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 64;
        hs_mapping *grown = realloc(list->items, (size_t)capacity * sizeof(hs_mapping));
        if (!grown) return 1;
        list->items = grown;
        list->capacity = capacity;
    }
    hs_mapping *m = &list->items[list->count];
    memset(m, 0, sizeof *m);
    const char *name = info->dlpi_name;
    if (!name || !*name) {
        // The main program has no name here.
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = 0;
        m->path = strdup(exe);
    } else {
        m->path = strdup(name);
    }
    m->base = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum && m->segments < HS_MAX_SEGMENTS; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        m->segment_start[m->segments] = info->dlpi_addr + ph->p_vaddr;
        m->segment_size[m->segments] = ph->p_memsz;
        m->segments++;
    }
    hs_read_build_id(info, m);
    list->count++;
    return 0;
}

int hs_mappings_collect(hs_mapping **out) {
    hs_mapping_list list = {0};
    dl_iterate_phdr(hs_collect_one, &list);
    *out = list.items;
    return list.count;
}

void hs_mappings_free(hs_mapping *mappings, int count) {
    for (int i = 0; i < count; i++) free((void *)mappings[i].path);
    free(mappings);
}
