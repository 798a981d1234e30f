/* Large MAX tensors in memory this process can give back to the OS.
 *
 * Why: MAX 26.7 allocates CPU tensors through the tcmalloc built into its runtime library
 * (libAsyncRTRuntimeGlobals.so), and that tcmalloc never returns freed memory: its release
 * runs from a background thread MAX does not start, and no release call is exported. A
 * process therefore keeps the high-water mark of every graph's working memory, about twice
 * the encoder's live set for tiny.en int8, growing with each new shape (BUILD.md, memory).
 *
 * How: MAX's libraries reach that allocator through two exported functions,
 * M::AsyncRT::TCMallocGlobals::tc_new(alignment, bytes) and ::tc_delete(pointer). This
 * library defines both under the same names; loaded with RTLD_GLOBAL before MAX's
 * libraries, it is where their calls bind. Blocks of BIG_BLOCK bytes (tcmalloc's own
 * boundary for large objects) or more become private anonymous mappings; smaller ones go
 * on to the real functions, found with dlsym in the runtime library by mt_bind(). (Marking
 * the mappings for transparent huge pages, as tcmalloc's memory is, raised a one-file
 * process's peak by 5-8 MB, whole 2 MiB pages faulted in, for no speed that showed.)
 *
 * A freed block is kept for reuse by later requests that fit in it (a graph asks for the
 * same sizes every run, so windows after the first fault in no new pages); a request that
 * none fits unmaps up to as many kept bytes as it maps, and at most CACHE_LIMIT
 * bytes stay kept (the oldest go first). mt_release(keep) unmaps all but
 * the keep most recently freed bytes: the Python side calls it when a transcription ends
 * (keeping some for the next one, which would otherwise fault them in again) and, with
 * nothing kept, when the server falls idle.
 *
 * tc_delete hands every pointer it did not map here to the real tc_delete, so memory
 * allocated before this library was bound, or by tcmalloc's internal callers, is freed
 * where it came from. The one unsafe order, a block mapped here and freed by a caller
 * bound to the real tc_delete, is avoided on the Python side: this library is only
 * loaded when no MAX library is loaded yet.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#define BIG_BLOCK ((size_t)256 << 10)
#define CACHE_LIMIT ((size_t)256 << 20)
#define MAX_LIVE 1024 /* mapped blocks in use at once; past it, tcmalloc takes the rest */
#define MAX_KEPT 256

typedef void *(*new_fn)(unsigned long, unsigned long);
typedef void (*delete_fn)(void *);
static new_fn real_new;
static delete_fn real_delete;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
struct block {
    void *start;
    size_t size;
    unsigned long last_use; /* kept blocks: when freed, for oldest-first unmapping */
};
static struct block live[MAX_LIVE], kept[MAX_KEPT];
static int n_live, n_kept;
static size_t kept_bytes, live_bytes;
static unsigned long tick;
static long long n_mapped, n_reused, n_unmapped;

static void *map_block(size_t size) {
    void *start = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return start == MAP_FAILED ? NULL : start;
}

static void take_kept(int i) {
    kept_bytes -= kept[i].size;
    kept[i] = kept[--n_kept];
}

/* Takes the least recently freed kept block off the list (n_kept > 0, lock held); the caller
   unmaps it once the lock is released. */
static struct block take_oldest_kept(void) {
    int oldest = 0;
    for (int i = 1; i < n_kept; i++)
        if (kept[i].last_use < kept[oldest].last_use) oldest = i;
    struct block taken = kept[oldest];
    take_kept(oldest);
    return taken;
}

void *_ZN1M7AsyncRT15TCMallocGlobals6tc_newEmm(unsigned long alignment, unsigned long bytes) {
    if (bytes < BIG_BLOCK || alignment > 4096) return real_new(alignment, bytes);
    size_t size = (bytes + 4095) & ~(size_t)4095;
    void *start = NULL;
    pthread_mutex_lock(&lock);
    if (n_live == MAX_LIVE) {
        pthread_mutex_unlock(&lock);
        return real_new(alignment, bytes);
    }
    /* best fit: the smallest kept block that holds the request (its pages are resident
       already; a new mapping beside it would only add more) */
    int best = -1;
    for (int i = 0; i < n_kept; i++)
        if (kept[i].size >= size && (best < 0 || kept[i].size < kept[best].size)) best = i;
    struct block evicted[MAX_KEPT];
    int n_evicted = 0;
    if (best >= 0) {
        start = kept[best].start;
        size = kept[best].size;
        take_kept(best);
        n_reused++;
    } else {
        /* Nothing kept is large enough (every kept block is smaller): unmap kept blocks,
           oldest first, up to as many bytes as this one maps, so that the memory mapped in
           all stays near what is in use at once (tcmalloc would have merged such
           neighbours into the larger block). */
        size_t freed = 0;
        while (n_kept > 0 && freed < size) {
            evicted[n_evicted] = take_oldest_kept();
            freed += evicted[n_evicted++].size;
        }
        n_unmapped += n_evicted;
    }
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_evicted; i++) munmap(evicted[i].start, evicted[i].size);
    if (!start) {
        start = map_block(size);
        if (!start) return real_new(alignment, bytes);
        pthread_mutex_lock(&lock);
        n_mapped++;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    if (n_live == MAX_LIVE) { /* filled up meanwhile: give this block back */
        pthread_mutex_unlock(&lock);
        munmap(start, size);
        return real_new(alignment, bytes);
    }
    live[n_live].start = start;
    live[n_live].size = size;
    n_live++;
    live_bytes += size;
    pthread_mutex_unlock(&lock);
    return start;
}

void _ZN1M7AsyncRT15TCMallocGlobals9tc_deleteEPv(void *pointer) {
    /* Mapped blocks are page-aligned: anything else is tcmalloc's without a search. */
    if (pointer == NULL || ((uintptr_t)pointer & 4095) != 0) {
        real_delete(pointer);
        return;
    }
    struct block freed = {NULL, 0, 0}, evicted[MAX_KEPT + 1];
    int n_evicted = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_live; i++)
        if (live[i].start == pointer) {
            freed = live[i];
            live[i] = live[--n_live];
            live_bytes -= freed.size;
            break;
        }
    if (freed.start) {
        if (freed.size > CACHE_LIMIT) {
            evicted[n_evicted++] = freed;
        } else {
            while (n_kept > 0 && (n_kept == MAX_KEPT || kept_bytes + freed.size > CACHE_LIMIT))
                evicted[n_evicted++] = take_oldest_kept();
            freed.last_use = ++tick;
            kept[n_kept++] = freed;
            kept_bytes += freed.size;
        }
        n_unmapped += n_evicted;
    }
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_evicted; i++) munmap(evicted[i].start, evicted[i].size);
    if (!freed.start) real_delete(pointer);
}

/* Finds the real allocator in the runtime library at path (already loaded). 0 on success. */
int mt_bind(const char *path) {
    void *library = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!library) return 1;
    new_fn found_new = (new_fn)dlsym(library, "_ZN1M7AsyncRT15TCMallocGlobals6tc_newEmm");
    delete_fn found_delete = (delete_fn)dlsym(library, "_ZN1M7AsyncRT15TCMallocGlobals9tc_deleteEPv");
    if (!found_new || !found_delete) return 2;
    real_new = found_new;
    real_delete = found_delete;
    return 0;
}

/* Unmaps kept blocks, the least recently freed first, until at most keep bytes stay
   kept; returns the bytes given back. */
long long mt_release(long long keep) {
    struct block gone[MAX_KEPT];
    int n_gone = 0;
    long long bytes = 0;
    pthread_mutex_lock(&lock);
    while (n_kept > 0 && (long long)kept_bytes > keep) {
        gone[n_gone] = take_oldest_kept();
        bytes += (long long)gone[n_gone++].size;
    }
    n_unmapped += n_gone;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n_gone; i++) munmap(gone[i].start, gone[i].size);
    return bytes;
}

/* out: bytes in use, bytes kept, blocks mapped, reused, unmapped so far. */
void mt_stats(long long out[5]) {
    pthread_mutex_lock(&lock);
    out[0] = (long long)live_bytes;
    out[1] = (long long)kept_bytes;
    out[2] = n_mapped;
    out[3] = n_reused;
    out[4] = n_unmapped;
    pthread_mutex_unlock(&lock);
}
