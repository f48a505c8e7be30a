#pragma once
// Process-wide allocator setting for tensor work, and memory on transparent huge pages.
//
// libtorch's CPU tensors come from malloc, and glibc serves every block over 32 MiB with a fresh
// mmap that munmap returns on free: each training step then faults in its activations and
// gradients page by page again (measured on the PyTorch reference step of the 110M model at
// 2 x 512 tokens: 421,000 minor faults and 3.1 s of system time per step). keep_freed_memory()
// makes glibc serve large blocks from its heap and keep freed memory for reuse (no mmap, no
// trimming), so after the first step the same pages are reused: 16,000 faults per step, with the
// same peak RSS. Memory is not handed back to the system until the process exits.
//
// Call it once at startup, before other threads start. METAMATH_MALLOC=default skips it.
#include <cstddef>

namespace metamath {

// Returns true when the setting was applied.
bool keep_freed_memory();

// Huge pages: a decode step streams every weight once from memory, and with 4 KiB pages the
// tiles that read 8 weight rows side by side cross a page, and miss the TLB, every 4 KiB of each
// row. Debian's default THP mode is `madvise`, so malloc'd memory never gets 2 MiB pages. Blocks
// from alloc_huge_pages() are 2 MiB aligned and advised (MADV_HUGEPAGE) before their first touch,
// so the kernel backs them with huge pages where it can (plain pages otherwise: same results).
// Measured on a 2-core Xeon (bench/README.md, seventh session): batch-1 decode bf16 97-104 ->
// 120-125 tok/s, q8 182-195 -> 251-263 tok/s.
//
// Whether to use them: METAMATH_HUGE_PAGES=on (the default when unset) or off (for comparing);
// any other value throws metamath::Error naming the variable.
bool huge_pages_wanted();

// One transparent huge page (x86-64).
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// `bytes` of zeroed anonymous memory, kHugePageBytes aligned (and rounded up to a multiple of
// it) and advised as huge pages; nullptr when the mapping fails. Free with
// free_huge_pages(p, bytes), the same byte count.
void* alloc_huge_pages(std::size_t bytes);
void free_huge_pages(void* p, std::size_t bytes);

}  // namespace metamath
